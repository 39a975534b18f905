"""Jobs as each person's own cluster account (GPUBOT_SLURM_JWT_KEY, GPUBOT_SLURM_ACCOUNTS).

``ClusterAccounts`` maps a Slack user to their login on the cluster, from a file the lab's
admin keeps (one ``<Slack user id> <login>`` per line, ``#`` comments; re-read when it
changes). ``TokenMinter`` signs short-lived slurmrestd tokens for those logins with the
cluster's own JWT key (``AuthAltParameters=jwt_key=…``), as ``scontrol token
username=<login>`` would: the job is then that person's (their uid, their fair-share,
their files), while cancel, time-limit updates and listings stay with the operator
account of GPUBOT_SLURM_TOKEN_FILE. Holding that key is holding every cluster account's
Slurm identity: it is read from a file only the bot's user may read, never logged.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import jwt

from bot.domain.errors import ContainerStartError

_LOGIN = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
TOKEN_LIFESPAN_S = 600  # a job submission needs seconds; a leaked token is soon useless


class ClusterAccounts:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._read: tuple[float, dict[str, str]] | None = None

    def login(self, user_id: str) -> str:
        """The person's cluster login; refuses, saying what to do, when there is none."""
        found = self._table().get(user_id)
        if found is None:
            raise ContainerStartError(
                "Your Slack account is not linked to an account on the cluster, so no job can "
                "run as you; ask an admin to add you to GPUBOT_SLURM_ACCOUNTS.",
                detail=f"{user_id} is not in {self._path}")
        return found

    def _table(self) -> dict[str, str]:
        with self._lock:
            try:
                mtime = self._path.stat().st_mtime
                if self._read is None or self._read[0] != mtime:
                    self._read = (mtime, parse_accounts(self._path.read_text()))
            except OSError as exc:
                raise ContainerStartError(f"Cannot read the cluster accounts file {self._path}.",
                                          detail=str(exc)) from exc
            return self._read[1]


def parse_accounts(text: str) -> dict[str, str]:
    """``U0123ABCD alice`` per line; a line that is not that is skipped."""
    table = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) == 2 and _LOGIN.fullmatch(fields[1]) and fields[1] != "root":
            table[fields[0]] = fields[1]
    return table


class TokenMinter:
    def __init__(self, key_file: Path, lifespan_s: int = TOKEN_LIFESPAN_S) -> None:
        self._key_file, self._lifespan = key_file, lifespan_s
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, str]] = {}  # login -> (expiry, token)

    def token(self, login: str) -> str:
        """A token for ``login``, reused until half its life is gone."""
        now = time.time()
        with self._lock:
            kept = self._tokens.get(login)
            if kept is not None and kept[0] - now > self._lifespan / 2:
                return kept[1]
            try:
                key = self._key_file.read_bytes()
            except OSError as exc:
                raise ContainerStartError(f"Cannot read the cluster's JWT key {self._key_file}.",
                                          detail=str(exc)) from exc
            expiry = int(now) + self._lifespan
            token = jwt.encode({"iat": int(now), "exp": expiry, "sun": login}, key,
                               algorithm="HS256")
            self._tokens[login] = (expiry, token)
            return token
