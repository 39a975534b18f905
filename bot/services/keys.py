"""SSH keys for a person's leases (issue 13.2): ``/gpu key add|list|remove``, what a
lease's container gets (authorized keys, host key, login), and what its access DM says.

A lease runs sshd when it was granted an SSH port (GPUBOT_SSH=true then): ``ssh_port``
on the lease is the switch, so a lease keeps SSH for its life whatever the setting does
meanwhile. Keys changed during a lease reach its running container through the outbox
(``ssh_keys`` effect, redone after a crash): a removed key stops opening new sessions
within seconds; sessions already open are not cut.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.db.engine import Session
from bot.db.keys import KeyRepo
from bot.db.repo import LeaseRepo
from bot.domain import ssh
from bot.domain.errors import DomainError
from bot.domain.lease import Lease
from bot.services.outbox import Effect, EffectKind, EffectType, Outbox
from bot.services.resources import Resources

log = logging.getLogger(__name__)


class KeyService:
    def __init__(self, res: Resources, outbox: Outbox) -> None:
        self.res, self.outbox = res, outbox

    def add(self, *, user_id: str, text: str) -> ssh.PublicKey:
        """Parse, check and keep one public key. Raises ``ssh.InvalidKey`` (a private
        key, a weak or unreadable one) or DomainError (a duplicate, too many)."""
        key = ssh.parse_public_key(text)  # before any write: a refusal stores nothing
        now = self.res.clock.now()

        def work(session: Session) -> None:
            LeaseRepo(session).lock_user(user_id, now=now)  # one change at a time per person
            keys = KeyRepo(session)
            held = keys.of_user(user_id)
            if any(k.fingerprint == key.fingerprint for k in held):
                raise DomainError(f"That key ({key.fingerprint}) is already on file.")
            if len(held) >= ssh.MAX_KEYS_PER_USER:
                raise DomainError(f"You have {len(held)} keys on file, the most allowed; "
                                  f"remove one first (`/gpu key list`, `/gpu key remove <n>`).")
            keys.add(user_id, public_key=key.openssh, fingerprint=key.fingerprint,
                     comment=key.comment, now=now)
            self._follow(session, user_id, action="key add", detail=key.fingerprint)

        self.res.db.run(work)
        return key

    def list(self, *, user_id: str) -> list[ssh.SavedKey]:
        with self.res.db.transaction() as session:
            return KeyRepo(session).of_user(user_id)

    def remove(self, *, user_id: str, number: int) -> ssh.SavedKey:
        """Remove the ``number``-th key of ``/gpu key list``; live leases stop taking it."""
        now = self.res.clock.now()

        def work(session: Session) -> ssh.SavedKey:
            LeaseRepo(session).lock_user(user_id, now=now)
            keys = KeyRepo(session)
            held = keys.of_user(user_id)
            if not 1 <= number <= len(held):
                raise DomainError("You have no SSH keys on file; add one with `/gpu key add "
                                  "ssh-ed25519 AAAA…`." if not held else
                                  f"You have {len(held)} key(s): say `/gpu key remove 1`"
                                  f"{f' … {len(held)}' if len(held) > 1 else ''}.")
            gone = held[number - 1]
            keys.remove(gone.id)
            self._follow(session, user_id, action="key remove", detail=gone.fingerprint)
            return gone

        return self.res.db.run(work)

    def _follow(self, session: Session, user_id: str, *, action: str, detail: str) -> None:
        """Audit the change and owe each live SSH lease of the person its new keys."""
        leases = KeyRepo(session).live_ssh_leases(user_id)
        LeaseRepo(session).audit(at=self.res.clock.now(), actor=user_id, action=action,
                                 detail=detail)
        self.outbox.owe(session, [Effect(EffectKind.SSH_KEYS, lease) for lease in leases])


# ------------------------------------------------------------ a lease's container
def authorized_keys_of(res: Resources, user_id: str) -> str:
    with res.db.transaction() as session:
        return ssh.authorized_keys([k.line for k in KeyRepo(session).of_user(user_id)])


def ssh_fields(res: Resources, lease: Lease, password: str) -> dict[str, Any]:
    """``ContainerSpec`` fields for SSH: none for a lease without an SSH port."""
    if not lease.ssh_port or lease.id is None:
        return {}
    return {"ssh_port": lease.ssh_port,
            "ssh_host_key": ssh.host_key(password, lease.id).private_openssh,
            "authorized_keys": authorized_keys_of(res, lease.user_id),
            "login": ssh.login_name(lease.user_id)}


def ssh_access(res: Resources, lease: Lease, password: str) -> ssh.SshAccess | None:
    """The access DM's SSH part: None for a lease without an SSH port."""
    if not lease.ssh_port or lease.id is None:
        return None
    key = ssh.host_key(password, lease.id)
    with res.db.transaction() as session:
        on_file = len(KeyRepo(session).of_user(lease.user_id))
    return ssh.SshAccess(lease_id=lease.id, host=res.config.public_host, port=lease.ssh_port,
                         login=ssh.login_name(lease.user_id), host_key=key.public,
                         fingerprint=key.fingerprint, keys_on_file=on_file)


def register_key_effects(outbox: Outbox, res: Resources) -> None:
    """``ssh_keys``: write the person's current keys into a live lease's container. Read
    when performed, not when owed: a redo after a crash hands in the keys as they are."""

    def push(effect: Effect) -> None:
        lease = effect.lease
        res.runtime.set_authorized_keys(lease.id or 0, authorized_keys_of(res, lease.user_id))

    outbox.register(EffectKind.SSH_KEYS, EffectType(
        push, lambda lease, now: lease.status.live and lease.ssh_port is not None))
