"""slurmrestd's REST API (OpenAPI v0.0.38, Slurm 22.05+), over the standard library.

Every request carries the service account's JWT (re-read from GPUBOT_SLURM_TOKEN_FILE
when the file changes, so a rotated token needs no restart) in ``X-SLURM-USER-TOKEN`` and
its user in ``X-SLURM-USER-NAME``. Two kinds of failure are kept apart on purpose:
``SlurmUnavailable`` (no answer, a proxy error, an answer that is not Slurm's) must never
be read as "the job is gone" (batchspawner issue #315); ``SlurmRefused`` is Slurm's own
"no" with its error list. ``job`` returns None only when Slurm itself says "Invalid job id".
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bot.adapters.slurm_auth import TokenMinter
from bot.domain.errors import ContainerStartError

log = logging.getLogger(__name__)

API = "/slurm/v0.0.38"
_INVALID_JOB_ID = 2017  # ESLURM_INVALID_JOB_ID

# The controller is reached directly: a proxy from the environment is never wanted here.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SlurmUnavailable(ContainerStartError):
    """slurmrestd or the controller did not answer: nothing is known about any job."""


class SlurmRefused(ContainerStartError):
    """Slurm answered with errors (``detail`` holds them)."""

    def __init__(self, message: str, *, detail: str | None = None, numbers: tuple[int, ...] = ()) -> None:
        super().__init__(message, detail=detail)
        self.numbers = numbers


class SlurmRest:
    def __init__(self, url: str, *, token_file: Path, user: str, timeout: float = 10.0,
                 minter: TokenMinter | None = None) -> None:
        self._base = url.rstrip("/")
        self._minter = minter  # signs tokens for other logins (jobs as each person)
        self._token_file = token_file
        self._user = user
        self._timeout = timeout
        self._token: tuple[float, str] | None = None  # (mtime, token)

    # ---------------------------------------------------------------- the calls
    def jobs(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/jobs").get("jobs") or [])

    def job(self, job_id: int) -> dict[str, Any] | None:
        try:
            found = self._call("GET", f"/job/{job_id}").get("jobs") or []
        except SlurmRefused as exc:
            if _INVALID_JOB_ID in exc.numbers:
                return None
            raise
        return found[0] if found else None

    def submit(self, script: str, job: dict[str, Any], *, as_user: str | None = None) -> int:
        """Submit as the service account, or ``as_user`` with a token the minter signs."""
        answer = self._call("POST", "/job/submit", {"script": script, "job": job}, as_user=as_user)
        return int(answer["job_id"])

    def cancel(self, job_id: int) -> None:
        """scancel: SIGTERM to every process of the job, SIGKILL after KillWait."""
        try:
            self._call("DELETE", f"/job/{job_id}")
        except SlurmRefused as exc:
            if _INVALID_JOB_ID not in exc.numbers and not _already_done(exc):
                raise

    def update(self, job_id: int, fields: dict[str, Any]) -> None:
        self._call("POST", f"/job/{job_id}", fields)

    def nodes(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/nodes").get("nodes") or [])

    def partition(self, name: str) -> dict[str, Any] | None:
        found = self._call("GET", f"/partition/{name}").get("partitions") or []
        return found[0] if found else None

    def ping(self) -> dict[str, Any]:
        return self._call("GET", "/ping")

    def accounting_user(self, name: str) -> dict[str, Any] | None:
        """slurmdbd's record of a user (admin level, associations)."""
        answer = self._call("GET", f"/user/{name}", api="/slurmdb/v0.0.38")
        users = answer.get("users") or []
        return users[0] if users else None

    # ----------------------------------------------------------------- plumbing
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              *, api: str = API, as_user: str | None = None) -> dict[str, Any]:
        url = f"{self._base}{api}{path}"
        if as_user is not None and self._minter is None:
            raise SlurmRefused(f"Cannot act as {as_user}: no cluster JWT key (GPUBOT_SLURM_JWT_KEY).")
        user = as_user or self._user
        token = self._minter.token(as_user) if as_user and self._minter else self._read_token()
        request = urllib.request.Request(
            url, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token,
                     "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with _OPENER.open(request, timeout=self._timeout) as response:
                raw, status = response.read(), int(response.status)
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        except OSError as exc:  # refused, reset, timed out, DNS
            raise SlurmUnavailable(
                "The Slurm cluster (slurmrestd) is not reachable; nothing was changed there.",
                detail=f"{method} {url}: {exc}") from exc
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            answer = None
        if not isinstance(answer, dict):  # a proxy's error page, not slurmrestd
            raise SlurmUnavailable("The Slurm cluster answered with something that is not Slurm's API.",
                                   detail=f"{method} {url}: HTTP {status} {raw[:200]!r}")
        errors = [e for e in answer.get("errors") or [] if isinstance(e, dict)]
        if errors or status >= 400:
            text = "; ".join(str(e.get("description") or e.get("error") or e) for e in errors)
            numbers = tuple(int(e.get("error_number") or 0) for e in errors)
            if status in (401, 403):
                raise SlurmRefused("Slurm refused gpubot's token (GPUBOT_SLURM_TOKEN_FILE, "
                                   "GPUBOT_SLURM_USER).", detail=f"HTTP {status} {text}")
            if not errors and status >= 500:  # slurmrestd up, controller not: unknown
                raise SlurmUnavailable("The Slurm controller is not answering.",
                                       detail=f"{method} {url}: HTTP {status}")
            if _controller_down(numbers):
                raise SlurmUnavailable("The Slurm controller is not answering.", detail=text)
            raise SlurmRefused(f"Slurm refused the request: {text or f'HTTP {status}'}",
                               detail=f"{method} {url}: HTTP {status} {text}", numbers=numbers)
        return answer

    def _read_token(self) -> str:
        try:
            mtime = self._token_file.stat().st_mtime
            if self._token is None or self._token[0] != mtime:
                self._token = (mtime, self._token_file.read_text().strip())
        except OSError as exc:
            raise SlurmRefused(f"Cannot read the Slurm token file {self._token_file}.",
                               detail=str(exc)) from exc
        return self._token[1]


def _already_done(exc: SlurmRefused) -> bool:
    text = (exc.detail or "").lower()
    return "already completing or completed" in text or "already done" in text


# slurm_errno.h: SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT / communication errors (1000-1099),
# ESLURM_DAEMON_DOWN-style "Unable to contact slurm controller" (1007, 1008, 5004)
def _controller_down(numbers: tuple[int, ...]) -> bool:
    return any(1000 <= n < 1100 or n in (5004, 1007, 1008) for n in numbers)
