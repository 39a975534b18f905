"""The run folders of the Slurm engine's jobs, on the cluster's shared storage: one per
lease (``<state root>/gpubot-run/lease-<id>``), owned by the job's user, mode 0700. It
holds the password hash (0600, read by the job, never on argv), the job's placement
report and its output. ``stop`` removes it, which is how an ended job reads as removed."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

from bot.adapters.slurm_script import OUTPUT_FILE
from bot.domain.errors import ContainerStartError


class RunFolders:
    def __init__(self, state_root: Path) -> None:
        self.root = state_root / "gpubot-run"

    def path(self, lease_id: int) -> Path:
        return self.root / f"lease-{lease_id}"

    def fresh(self, lease_id: int, uid: int, gid: int) -> Path:
        run = self.path(lease_id)
        shutil.rmtree(run, ignore_errors=True)  # a previous job's files: never reused
        run.mkdir(parents=True, mode=0o700)
        if os.geteuid() == 0:
            os.chown(run, uid, gid)
        return run

    def remove(self, lease_id: int) -> None:
        shutil.rmtree(self.path(lease_id), ignore_errors=True)

    def log_tail(self, lease_id: int, lines: int = 20) -> str:
        try:
            text = (self.path(lease_id) / OUTPUT_FILE).read_text(errors="replace")
        except OSError as exc:
            return f"(job output unavailable: {exc})"
        return "\n".join(text.strip().splitlines()[-lines:])


def write_private(path: Path, text: str, uid: int, gid: int) -> None:
    """A new file only its owner (``uid``) may read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    if os.geteuid() == 0:
        os.chown(path, uid, gid)


def job_user(name: str, *, person: bool = False) -> tuple[int, int]:
    """uid and gid of the account a job runs as (``person``: a lab member's own)."""
    try:
        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        if person:  # their workspace and run folder must be theirs: we need their uid
            raise ContainerStartError(
                f"The cluster account {name} is unknown on the bot's host, so its files "
                f"cannot be made theirs; the host must see the cluster's accounts.") from None
        return os.geteuid(), os.getegid()  # the service account: then it must be us
