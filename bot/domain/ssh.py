"""SSH access to a lease (issue 13.2), pure: users' public keys checked, the lease's host
key, the login name.

Public keys are parsed with ``cryptography`` (``load_ssh_public_key``), not by pattern:
a key that does not load is refused. Accepted: ed25519, ecdsa (nistp256/384/521) and RSA
of at least 3072 bits. A private key pasted by mistake is refused with advice to make a
new one: it went through Slack, so it must count as compromised.

The host key of a lease is an ed25519 key derived (HKDF) from the lease's Jupyter
password. Why derive rather than store: sshd runs as the lease's user (no root in the
container), so whoever holds the password (a Jupyter terminal) can read the host key
file anyway; deriving it exposes nothing new, needs no column, and lets the bot show the
same public key in every access DM (``/gpu password``) for as long as the lease holds
its password, without asking the container.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.domain.errors import DomainError

MIN_RSA_BITS = 3072
MAX_KEYS_PER_USER = 10
SSH_PORT_IN_CONTAINER = 2222  # unprivileged: sshd runs as the lease's user
_HOST_KEY_INFO = b"gpubot ssh host key v1"
# A private key in any of the usual wrappings (OpenSSH, PEM/PKCS#1/PKCS#8, PuTTY).
PRIVATE_KEY_MARK = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|PuTTY-User-Key-File-",
                              re.IGNORECASE)
_TYPES = {"ssh-ed25519": "ed25519", "ecdsa-sha2-nistp256": "ecdsa",
          "ecdsa-sha2-nistp384": "ecdsa", "ecdsa-sha2-nistp521": "ecdsa", "ssh-rsa": "rsa"}
_REFUSED_TYPES = {
    "ssh-dss": "DSA keys are too weak and OpenSSH no longer accepts them",
    "sk-ssh-ed25519@openssh.com": "security-key (FIDO) keys are not supported yet",
    "sk-ecdsa-sha2-nistp256@openssh.com": "security-key (FIDO) keys are not supported yet",
}
_MAKE_ONE = "Make one with `ssh-keygen -t ed25519` and paste the `.pub` file's line."
_LOGIN = re.compile(r"[a-z][a-z0-9]{0,31}")


class InvalidKey(DomainError):
    pass


@dataclass(frozen=True)
class PublicKey:
    kind: str  # ed25519, ecdsa, rsa
    bits: int
    openssh: str  # "<type> <base64>", normalised, without the comment
    fingerprint: str  # "SHA256:…" as `ssh-keygen -l` prints it
    comment: str = ""

    @property
    def line(self) -> str:
        """The authorized_keys line."""
        return f"{self.openssh} {self.comment}".strip()


@dataclass(frozen=True)
class SavedKey:
    """A key on file; ``number`` is its place in ``/gpu key list`` (oldest first)."""

    id: int
    number: int
    openssh: str
    fingerprint: str
    comment: str
    added_at: datetime

    @property
    def line(self) -> str:
        return f"{self.openssh} {self.comment}".strip()

    @property
    def kind(self) -> str:
        return _TYPES.get(self.openssh.split()[0], self.openssh.split()[0])


@dataclass(frozen=True)
class SshAccess:
    """What the access DM says about SSH to one lease."""

    lease_id: int
    host: str
    port: int
    login: str
    host_key: str  # "ssh-ed25519 AAAA…" (for known_hosts)
    fingerprint: str  # SHA256:… (what ssh shows on first contact)
    keys_on_file: int  # 0: the DM says how to add one

    @property
    def alias(self) -> str:
        return f"gpubot-{self.lease_id}"

    @property
    def command(self) -> str:
        return f"ssh -p {self.port} {self.login}@{self.host}"


def looks_private(text: str) -> bool:
    return bool(PRIVATE_KEY_MARK.search(text))


def parse_public_key(text: str) -> PublicKey:
    """One OpenSSH public key line (``ssh-ed25519 AAAA… comment``). Raises InvalidKey
    with what to do instead."""
    if looks_private(text):
        raise InvalidKey("That is a *private* key: never paste it anywhere. It has passed "
                         "through Slack now, so treat it as compromised: delete it, make a "
                         "new pair with `ssh-keygen -t ed25519`, and add the new `.pub` line "
                         "(`/gpu key add ssh-ed25519 AAAA…`).")
    words = text.split()
    if not words:
        raise InvalidKey(f"Paste your public key after `/gpu key add`. {_MAKE_ONE}")
    start = next((i for i, w in enumerate(words) if w in _TYPES or w in _REFUSED_TYPES), None)
    if start is None or len(words) < start + 2:
        raise InvalidKey(f"That is not an OpenSSH public key (they start with `ssh-ed25519 "
                         f"AAAA`). {_MAKE_ONE}")
    key_type, blob_text = words[start], words[start + 1]
    if key_type in _REFUSED_TYPES:
        raise InvalidKey(f"{_REFUSED_TYPES[key_type]}. {_MAKE_ONE}")
    try:
        blob = base64.b64decode(blob_text, validate=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            key = serialization.load_ssh_public_key(f"{key_type} {blob_text}".encode())
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        raise InvalidKey(f"That key does not read as a {key_type} public key (cut short when "
                         f"pasted?). {_MAKE_ONE}") from None
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        if bits < MIN_RSA_BITS:
            raise InvalidKey(f"That RSA key has {bits} bits; at least {MIN_RSA_BITS} are "
                             f"needed. {_MAKE_ONE}")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.curve.key_size
    elif isinstance(key, ed25519.Ed25519PublicKey):
        bits = 256
    else:  # pragma: no cover - the type word was checked above
        raise InvalidKey(f"That kind of key is not accepted. {_MAKE_ONE}")
    comment = " ".join(words[start + 2:])[:200]
    return PublicKey(kind=_TYPES[key_type], bits=bits, openssh=f"{key_type} {blob_text}",
                     fingerprint=fingerprint(blob), comment=comment)


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a key blob (the base64 part, decoded)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def authorized_keys(lines: list[str]) -> str:
    """The authorized_keys file: one key a line, and options that keep each key to what
    a shell, scp and VS Code need (no agent, X11 or remote forwarding, whatever sshd's
    own configuration says)."""
    return "".join(f"restrict,port-forwarding,pty {line}\n" for line in lines)


# ---------------------------------------------------------------- the lease's host key
@dataclass(frozen=True)
class HostKey:
    private_openssh: str = field(repr=False)  # the sshd HostKey file
    public: str  # "ssh-ed25519 AAAA…": the known_hosts line's key
    fingerprint: str


def host_key(password: str, lease_id: int) -> HostKey:
    """The lease's ed25519 host key: the same for the same password and lease, always."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=f"lease {lease_id}".encode(),
                info=_HOST_KEY_INFO).derive(password.encode())
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    blob = base64.b64decode(public.split()[1])
    return HostKey(private_openssh=private, public=public, fingerprint=fingerprint(blob))


def login_name(user_id: str) -> str:
    """The lease's login: the Slack user id in lower case (``U012AB`` → ``u012ab``), one
    per person; the container's passwd entry (nss_wrapper) carries it."""
    name = user_id.lower()
    if not _LOGIN.fullmatch(name):
        raise DomainError(f"{user_id!r} cannot be a login name.")
    return name
