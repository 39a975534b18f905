"""The outbox: every effect owed outside the database after a commit.

An *effect* (stop a container, send a DM, …) is owed by the transaction that changes the
state which calls for it. The protocol, in full:

1. **Owe, in the caller's transaction.** ``Outbox.owe(session, effects)`` writes one
   *intent* row per effect (``bot.db.outbox``) in the same transaction as the state, and
   arranges for the effects to be performed once that transaction commits. A kind that
   is not registered is refused right there (``UnknownEffect``), never later.
2. **Perform after the commit**, effect by effect, each in its own ``try`` so one bad
   lease never stops the others; each success is *acknowledged* with a ``<kind>.done``
   row (written in bulk, at least every ``ACK_FLUSH_SECONDS``).
3. **Resume after a crash** (``Outbox.resume``, run by the reconciler): an intent with no
   later acknowledgement, older than ``retry_after``, is owed by a dead (or failing)
   process. Its lease is locked and re-read, the old intent is closed, and, if the
   kind's ``still_owed`` says so for the lease as it is now, a fresh intent is written
   and the effect performed again. Retries stop ``horizon`` after the intent.

Effects are therefore *at least once*: a crash between an effect and its acknowledgement
repeats that one effect, so every performer is idempotent or harmless to repeat. Without
a crash each effect happens exactly once, also with two bot processes
(tests/integration/test_two_instances.py). Adding a kind is one ``register`` call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from bot.crashpoints import crashpoint
from bot.db.engine import Database, Session, after_commit
from bot.db.outbox import IntentRow, OutboxStore
from bot.db.sweeps import SweepRepo
from bot.domain.lease import Lease
from bot.ports import Clock

log = logging.getLogger(__name__)
ACK_FLUSH_SECONDS = 5.0  # wall time of effects between two bulk acknowledgements


class EffectKind(str, Enum):
    """The action names of intent rows; stable, since old rows are read back."""

    STOP = "stop"  # stop the lease's container, then free its port
    START = "start"  # start a lease granted from the queue
    ACCESS = "access"  # the access DM
    CLAIM_FAILED = "claim_failed"
    EXPIRE = "expire"  # the "your lease has ended" DM
    REMIND = "remind"
    CONTAINER_DIED = "container_died"
    DECIDED = "decided"  # an approval decision, to the requester and the admin channel
    APPROVAL_TIMEOUT = "approval_timeout"
    QUEUE_TIMEOUT = "queue_timeout"  # the request waited too long; its holder is told
    IDLE_WARNING = "idle_warning"  # "reclaimed at … unless you are still using it"
    IDLE_RECLAIMED = "idle_reclaimed"
    WITHDRAWN = "withdrawn"  # a pending request was released: its admin message says so
    SSH_KEYS = "ssh_keys"  # a live lease's container gets its holder's current SSH keys
    ROUTE_ADD = "route_add"  # the lease's HTTPS host on the proxy (bot/services/routes.py)
    ROUTE_REMOVE = "route_remove"
    TIME_LIMIT = "time_limit"  # an extend moves the engine's own kill (Slurm's time limit)


class UnknownEffect(Exception):
    """An intent of a kind nobody registered: a programming error, caught when written."""


@dataclass(frozen=True)
class Effect:
    kind: EffectKind
    lease: Lease
    detail: str | None = None  # kept in the intent row, given back on a redo
    redo: bool = False  # owed by a dead process


@dataclass(frozen=True)
class EffectType:
    perform: Callable[[Effect], None]
    still_owed: Callable[[Lease, datetime], bool]  # on a redo, for the lease as it is now
    # state that may change only once the effect is confirmed, written in the
    # acknowledging transaction, in bulk: (session, lease ids)
    on_done: Callable[[Session, list[int]], None] | None = None


class Outbox:
    def __init__(self, db: Database, clock: Clock, *, retry_after: timedelta,
                 horizon: timedelta, batch_size: int = 200) -> None:
        self.db, self.clock = db, clock
        self.retry_after, self.horizon, self.batch_size = retry_after, horizon, batch_size
        self._types: dict[EffectKind, EffectType] = {}

    def register(self, kind: EffectKind, effect_type: EffectType) -> None:
        self._types[kind] = effect_type

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind.value for kind in self._types)

    # --------------------------------------------------------------------- owe
    def owe(self, session: Session, effects: Sequence[Effect]) -> None:
        """Write the intents in ``session``'s transaction; perform them after it commits."""
        if not effects:
            return
        unknown = {e.kind for e in effects if e.kind not in self._types}
        if unknown:
            raise UnknownEffect(f"no effect registered for {sorted(k.value for k in unknown)}")
        OutboxStore(session).write(
            [IntentRow(e.lease.id or 0, e.kind.value, e.detail) for e in effects],
            now=self.clock.now())
        after_commit(session, lambda: self._after_commit(effects))

    def _after_commit(self, effects: Sequence[Effect]) -> None:
        for kind in dict.fromkeys(e.kind for e in effects):
            crashpoint(f"{kind.value}.after_commit")
        self.perform(effects)

    # ----------------------------------------------------------------- perform
    def perform(self, effects: Sequence[Effect]) -> int:
        """Carry out effects one by one; acknowledge the ones that succeeded."""
        done: list[Effect] = []
        flushed = time.monotonic()
        for effect in effects:
            try:
                self._types[effect.kind].perform(effect)
                done.append(effect)
            except Exception:
                log.exception("lease %s: %s effect failed; it will be retried",
                              effect.lease.id, effect.kind.value)
            if done and time.monotonic() - flushed > ACK_FLUSH_SECONDS:
                self._acknowledge(done)
                done, flushed = [], time.monotonic()
        self._acknowledge(done)
        return len(effects)

    def _acknowledge(self, effects: Sequence[Effect]) -> None:
        if not effects:
            return
        rows = [IntentRow(e.lease.id or 0, e.kind.value) for e in effects]
        by_kind: dict[EffectKind, list[int]] = {}
        for effect in effects:
            by_kind.setdefault(effect.kind, []).append(effect.lease.id or 0)

        def work(session: Session) -> None:
            OutboxStore(session).acknowledge(rows, now=self.clock.now())
            for kind, lease_ids in by_kind.items():
                on_done = self._types[kind].on_done
                if on_done is not None:
                    on_done(session, lease_ids)

        try:
            self.db.run(work)
        except Exception:  # the effects will be repeated once: at least once, never lost
            log.exception("could not acknowledge %d effect(s)", len(rows))

    # ------------------------------------------------------------------ resume
    def resume(self) -> int:
        """Redo what dead processes owe (see the module docstring); returns how many
        effects were performed again."""
        now = self.clock.now()
        since, before = now - self.horizon - self.retry_after, now - self.retry_after
        resumed = 0

        def work(session: Session) -> tuple[int, int, list[Effect]]:
            store = OutboxStore(session)
            seen = store.owed(kinds=self.kinds, before=before, since=since,
                              limit=self.batch_size)
            if not seen:
                return 0, 0, []
            locked = SweepRepo(session).lock_any({r.lease_id for r in seen})
            owed = store.owed(kinds=self.kinds, before=before, since=since,  # after the lock
                              limit=self.batch_size, lease_ids=locked)
            store.acknowledge(owed, now=now, detail="retrying")
            effects = [Effect(EffectKind(r.kind), locked[r.lease_id], r.detail, redo=True)
                       for r in owed
                       if self._types[EffectKind(r.kind)].still_owed(locked[r.lease_id], now)]
            store.write([IntentRow(e.lease.id or 0, e.kind.value, e.detail) for e in effects],
                        now=now)
            return len(seen), len(owed), effects

        while True:
            seen, closed, effects = self.db.run(work)
            for effect in effects:
                log.warning("lease %s: redoing the unacknowledged %s effect",
                            effect.lease.id, effect.kind.value)
            resumed += self.perform(effects)
            if not closed or seen < self.batch_size:  # done, or the rest is locked elsewhere
                return resumed

    def pending(self) -> int:
        """Intents within the horizon not yet acknowledged (for metrics)."""
        since = self.clock.now() - self.horizon - self.retry_after
        return self.db.run(lambda s: OutboxStore(s).count_owed(kinds=self.kinds, since=since))

    def prune(self, *, effects_older_than: timedelta, audit_older_than: timedelta) -> int:
        """Delete acknowledged effects older than the first, the rest of the audit trail
        older than the second (the ``prune`` job); an unacknowledged intent is never
        deleted. Returns the rows deleted."""
        now = self.clock.now()

        def work(session: Session) -> int:
            store = OutboxStore(session)
            return (store.prune(kinds=self.kinds, before=now - effects_older_than)
                    + store.prune_audit(effect_kinds=self.kinds, before=now - audit_older_than))

        return self.db.run(work)
