"""Per-user workspace folders on the Docker host (helpers of ``bot.adapters.docker``).

A workspace is ``<root>/<Slack user id>``: owned by its person's own uid and gid (one per
Slack user, GPUBOT_UID_RANGE), mode 0700, bind-mounted at /workspace. It outlives every
container; nothing here ever deletes or empties one.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from bot.domain.errors import ContainerStartError
from bot.ports import ContainerSpec

WORKSPACE_UID = 1000  # the image's own user; leases run as their person's uid
WORKSPACE_MODE = 0o700

_SLACK_USER_ID = re.compile(r"[A-Z0-9]{1,64}")
_GPU_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,127}")  # GPU-…, MIG-…, MIG-GPU-…/1/0


def validate_user_id(user_id: str) -> str:
    """A Slack user id ([A-Z0-9]+), also used as a folder name: anything else is refused."""
    if not _SLACK_USER_ID.fullmatch(user_id):
        raise ContainerStartError(
            f"Refusing to start a container for user id {user_id!r}: "
            "a Slack user id has only capital letters and digits."
        )
    return user_id


def validate_gpu_uuids(gpu_uuids: tuple[str, ...]) -> tuple[str, ...]:
    for uuid in gpu_uuids:
        if not _GPU_UUID.fullmatch(uuid):
            raise ContainerStartError(
                f"Refusing to start a container for GPU id {uuid!r}: not a GPU UUID."
            )
    return gpu_uuids


def validate_spec(spec: ContainerSpec) -> None:
    """What every engine refuses before it starts anything: ids that could escape a path
    or a label, a port that is none, Jupyter without a password."""
    validate_user_id(spec.user_id)
    validate_gpu_uuids(spec.gpu_uuids)
    if not 1 <= spec.port <= 65535:
        raise ContainerStartError(f"Port {spec.port} is not a TCP port.")
    if not spec.password_hash:
        raise ContainerStartError("Refusing to start Jupyter without a password hash.")


def prepare_workspace(root: Path, user_id: str, uid: int = WORKSPACE_UID) -> Path:
    """Create ``root/user_id`` if missing and make it its person's (``uid``: their own
    uid and gid), mode 0700.

    Only the folder itself is touched (never its content). A symlink or a non-folder in
    its place is refused rather than followed.
    """
    validate_user_id(user_id)
    try:
        root.mkdir(mode=0o755, parents=True, exist_ok=True)
        path = root / user_id
        try:
            os.mkdir(path, WORKSPACE_MODE)
        except FileExistsError:
            pass
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode):
            raise ContainerStartError(
                f"The workspace {path} is not a plain folder (a symlink or a file is in its "
                "place); an administrator must fix it."
            )
        if (info.st_uid, info.st_gid) != (uid, uid):
            os.chown(path, uid, uid, follow_symlinks=False)
        if stat.S_IMODE(info.st_mode) != WORKSPACE_MODE:
            os.chmod(path, WORKSPACE_MODE)
    except PermissionError as exc:
        raise ContainerStartError(
            f"Cannot prepare the workspace folder under {root}: the bot needs the right to "
            f"create it and give it to uid {uid} (run it as root, or pre-create the "
            f"folder owned by {uid}:{uid}, mode 0700).",
            detail=str(exc),
        ) from exc
    except OSError as exc:
        raise ContainerStartError(
            f"Cannot prepare the workspace folder under {root}.", detail=str(exc)
        ) from exc
    return path


def workspace_usage(root: Path, user_id: str) -> int | None:
    """Bytes the user's workspace takes on disk (allocated blocks, like ``du -s``; a file
    with several hard links counted once; symlinks not followed), or None when the user
    has no workspace. Costs one ``lstat`` per file: call it off Slack's 3-second ack."""
    validate_user_id(user_id)
    top = root / user_id
    try:
        info = os.lstat(top)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return None
    total, seen = info.st_blocks * 512, set()
    stack = [str(top)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:  # removed meanwhile, or unreadable: count what can be seen
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    return total
