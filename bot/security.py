"""Jupyter passwords: generation, jupyter_server hashing, and encryption at rest.

The plaintext exists only (a) encrypted with Fernet in the database, so the bot can
re-send it by DM, and (b) in the access DM itself. Keys rotate through MultiFernet:
``GPUBOT_SECRET_KEY`` holds keys newest first; old ciphertexts still decrypt, and
``Vault.rotate`` re-encrypts them under the newest key.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path

from argon2 import PasswordHasher
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger(__name__)

# No 0/O, 1/l/I, and nothing a shell, URL or Slack markup would mangle.
ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
PASSWORD_LENGTH = 20
# jupyter_server.auth.security.passwd uses the same algorithm; its check accepts any
# argon2 parameters, so a cheaper-than-default cost keeps claims fast.
_HASHER = PasswordHasher(time_cost=3, memory_cost=19456, parallelism=1)
_HASH_SLOTS = threading.BoundedSemaphore(4)


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    if length < 16:
        raise ValueError("passwords are at least 16 characters")
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def hash_jupyter_password(password: str) -> str:
    """The ``argon2:$argon2id$...`` form jupyter_server accepts as hashed_password.
    At most ``HASH_SLOTS`` hashes run at once: each needs 19 MiB, so a burst of claims
    would otherwise multiply the bot's memory."""
    with _HASH_SLOTS:
        return "argon2:" + _HASHER.hash(password)


def verify_jupyter_password(hashed: str, password: str) -> bool:
    algorithm, _, digest = hashed.partition(":")
    if algorithm != "argon2":
        return False
    try:
        return _HASHER.verify(digest, password)
    except Exception:  # argon2 raises VerifyMismatchError / InvalidHash
        return False


class SecretKeyError(Exception):
    pass


class Vault:
    """Encrypts and decrypts secrets with MultiFernet (first key encrypts)."""

    def __init__(self, keys: list[str] | tuple[str, ...]) -> None:
        if not keys:
            raise SecretKeyError("no secret key configured (GPUBOT_SECRET_KEY)")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except (ValueError, TypeError):
            raise SecretKeyError(
                "GPUBOT_SECRET_KEY holds a value that is not a Fernet key; create one with "
                "`python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`"
            ) from None

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a stored password cannot be decrypted with the configured keys; was an "
                "old key removed from GPUBOT_SECRET_KEY?"
            ) from None

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted under the newest key (``gpubot secrets rotate``)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError("a stored password cannot be decrypted with any configured "
                                 "key") from None


def load_or_create_key_file(path: Path) -> list[str]:
    """Keys from ``path`` (one per line, newest first); create it (0600) if missing.

    A file that anyone but its owner may read or write is refused, not warned about: by
    then the key may have been copied (or replaced), and with it every stored password
    is readable. The admin fixes the mode (and rotates, if in doubt) and starts again."""
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SecretKeyError(f"the secret key file {path} is open to other users (mode "
                                 f"{mode:o}); `chmod 600 {path}`, and if others may have "
                                 f"read it, rotate the key (`gpubot secrets rotate`)")
        keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not keys:
            raise SecretKeyError(f"the secret key file {path} holds no key")
        return keys
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    log.warning("created a new secret key file at %s (keep it: it decrypts stored "
                "Jupyter passwords)", path)
    return [key]
