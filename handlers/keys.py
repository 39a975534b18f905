"""SSH on the chat side (issue 13.2): ``/gpu key add|list|remove`` and the access DM's SSH
part (the command, a ready ``~/.ssh/config`` block, the known_hosts line with the lease's
host key, its fingerprint). Pure Block Kit over the facade; the console renders it too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.domain.ssh import SavedKey, SshAccess
from bot.services.facade import UseCases
from handlers.grammar import Command

Blocks = list[dict[str, Any]]
ADD_ONE = ("Add your public key with `/gpu key add ssh-ed25519 AAAA…`: the one line of "
           "`~/.ssh/id_ed25519.pub` (none yet? `ssh-keygen -t ed25519` makes it).")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def handle_key(bot: UseCases, user: str, cmd: Command) -> tuple[str, Blocks]:
    """``/gpu key …``: the reply (ephemeral). The service refuses bad keys."""
    if cmd.action == "add":
        key = bot.keys.add(user_id=user, text=cmd.arg or "")
        text = (f"Added your {key.kind} key {key.fingerprint}"
                f"{f' ({key.comment})' if key.comment else ''}. Your leases with SSH take it "
                f"from now on, running ones included.")
        return text, [_section(f":key: {text}")]
    if cmd.action == "remove":
        gone = bot.keys.remove(user_id=user, number=int(cmd.arg or 0))
        text = (f"Removed key {gone.number}, {gone.fingerprint}"
                f"{f' ({gone.comment})' if gone.comment else ''}. It opens none of your "
                f"leases any more (SSH sessions already open stay).")
        return text, [_section(text)]
    return key_list(bot.keys.list(user_id=user))


def key_list(keys: Sequence[SavedKey]) -> tuple[str, Blocks]:
    if not keys:
        return "You have no SSH keys on file.", [_section("You have no SSH keys on file."),
                                                  _context(ADD_ONE)]
    lines = [f"`{k.number}`  {k.kind}  `{k.fingerprint}`  {k.comment or ''}".rstrip()
             for k in keys]
    text = f"Your SSH keys ({len(keys)}):"
    return text, [_section(text + "\n" + "\n".join(lines)),
                  _context("`/gpu key remove <n>` removes one; `/gpu key add …` adds one.")]


# ------------------------------------------------------------------ the access DM
def ssh_text(ssh: SshAccess | None) -> str:
    """For the DM's ``text`` fallback: the command, nothing secret."""
    return f" SSH: `{ssh.command}`" if ssh else ""


def ssh_config(ssh: SshAccess) -> str:
    """``~/.ssh/config``: the alias is the lease, and so is the known_hosts entry
    (HostKeyAlias): a port the next lease reuses never trips over this host key."""
    return (f"Host {ssh.alias}\n    HostName {ssh.host}\n    Port {ssh.port}\n"
            f"    User {ssh.login}\n    HostKeyAlias {ssh.alias}\n")


def known_hosts_line(ssh: SshAccess) -> str:
    return f"{ssh.alias} {ssh.host_key}"


def ssh_blocks(ssh: SshAccess | None) -> Blocks:
    if ssh is None:
        return []
    blocks: Blocks = [_section(f"*SSH* (VS Code Remote-SSH, scp): `{ssh.command}`")]
    if ssh.keys_on_file == 0:
        blocks.append(_section(f":warning: You have no SSH key on file yet, so SSH will not "
                               f"let you in. {ADD_ONE} It reaches this lease at once."))
    blocks += [
        _section(f"For VS Code, add to `~/.ssh/config`:\n```{ssh_config(ssh)}```\n"
                 f"and to `~/.ssh/known_hosts` (the lease's own host key):\n"
                 f"```{known_hosts_line(ssh)}```"),
        _context(f"Host key fingerprint `{ssh.fingerprint}`: ssh shows the same on first "
                 f"contact. Then `ssh {ssh.alias}`, or Remote-SSH: Connect to Host → "
                 f"`{ssh.alias}`."),
    ]
    return blocks
