"""Host firewall rules that keep lease containers off the host and off each other
(helpers of ``bot.adapters.docker`` and ``gpubot doctor``).

A container reaches every service of its host through its bridge's gateway address (or
any other host address): those packets are the host's own INPUT, which Docker never
filters. Every lease's bridge is ``gpb<lease id>`` (``docker_network``), so two rules,
for IPv4 and IPv6, cover all leases at once:

- INPUT from ``gpb+`` is rejected unless it answers a connection the host opened (the bot
  polling Jupyter through docker-proxy; the published port itself comes in on the
  host's own interfaces, never from ``gpb+``);
- FORWARD from ``gpb+`` to ``gpb+`` is rejected: dockerd's own isolation between bridges
  does the same, but not on an engine run with ``--iptables=false``.

Egress (pip installs) is forwarded and masqueraded as before. The rules are inserted
first in their chains, checked (``-C``) before every start and re-added when gone (a
firewall reload flushes them); that needs root or CAP_NET_ADMIN. A bot without them
(deploy/: an unprivileged user in the docker group) relies on root having run
``python -m bot.adapters.docker_firewall`` (e.g. systemd ``ExecStartPre=+``), and every
start proves the result: ``host_reached_from`` connects from inside the new container to
a listener of the bot's on the gateway, and a lease that gets through is not handed out.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from bot.adapters.docker_network import BRIDGE_PREFIX
from bot.domain.errors import ContainerStartError

log = logging.getLogger(__name__)

LEASES = f"{BRIDGE_PREFIX}+"
RULES: tuple[tuple[str, ...], ...] = (
    ("INPUT", "-i", LEASES, "-m", "conntrack", "!", "--ctstate", "ESTABLISHED,RELATED",
     "-m", "comment", "--comment", "gpubot: leases never reach host services", "-j", "REJECT"),
    ("FORWARD", "-i", LEASES, "-o", LEASES,
     "-m", "comment", "--comment", "gpubot: leases never reach each other", "-j", "REJECT"),
)
TOOLS = ("iptables", "ip6tables")


class FirewallError(Exception):
    """The rules cannot be checked or installed; the message says why and what to do."""


@dataclass(frozen=True)
class Rule:
    tool: str
    spec: tuple[str, ...]

    def command(self, action: str) -> list[str]:
        return [self.tool, "-w", "5", action, *self.spec]

    def shown(self) -> str:
        return " ".join([self.tool, "-I", *self.spec[:1], "1", *self.spec[1:]])


def rules() -> list[Rule]:
    return [Rule(tool, spec) for tool in TOOLS for spec in RULES]


def missing() -> list[Rule]:
    """The rules not in place now. Raises ``FirewallError`` when it cannot tell."""
    return [rule for rule in rules() if not _present(rule)]


def ensure() -> list[Rule]:
    """Insert every missing rule first in its chain; the rules that were added."""
    added = []
    for rule in missing():
        _run(rule.command("-I"), what=f"add {rule.shown()!r}")
        added.append(rule)
    return added


def _present(rule: Rule) -> bool:
    result = _call(rule.command("-C"))
    if result.returncode == 0:
        return True
    text = (result.stderr or "").lower()
    # -C says "does a matching rule exist?" (exit 1) or fails for another reason (2, 3, 4).
    if result.returncode == 1 and ("does a matching rule exist" in text or "bad rule" in text
                                   or not text.strip()):
        return False
    raise FirewallError(_why(rule.tool, result.stderr, "check"))


def _run(command: list[str], *, what: str) -> None:
    result = _call(command)
    if result.returncode != 0:
        raise FirewallError(_why(command[0], result.stderr, what))


def _call(command: list[str]) -> subprocess.CompletedProcess[str]:
    if shutil.which(command[0]) is None:
        raise FirewallError(
            f"`{command[0]}` is not installed, so leases cannot be kept off this host's "
            "services: install iptables (which also provides ip6tables)")
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def _why(tool: str, stderr: str, what: str) -> str:
    detail = (stderr or "").strip().splitlines()[-1:] or ["no message"]
    hint = ("run the bot as root (or with CAP_NET_ADMIN)"
            if "permission" in detail[0].lower() or "not permitted" in detail[0].lower()
            else "see the message")
    return f"{tool} could not {what}: {detail[0]} ({hint})"


# Run inside the lease container as its user: which of argv's host:port answer.
_PROBE = """
import json, socket, sys
reached = []
for host, port in json.loads(sys.argv[1]):
    try:
        socket.create_connection((host, port), timeout=2).close()
        reached.append(f"{host}:{port}")
    except OSError:
        pass
print(json.dumps(reached))
"""


def host_reached_from(container: Any, *, user: str) -> list[str]:
    """The host addresses (``gateway:port``) code in ``container`` reached: a listener of
    this process on all addresses, asked for through each of the container's gateways.
    Empty means isolated. Raises ``FirewallError`` when the probe cannot run."""
    container.reload()
    networks = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    gateways = [n["Gateway"] for n in networks.values() if n.get("Gateway")]
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen(8)
        targets = [(gateway, listener.getsockname()[1]) for gateway in gateways]
        code, out = container.exec_run(
            ["sh", "-c", 'exec "$(command -v gpubot-python || command -v python3)" "$@"',
             "probe", "-c", _PROBE, json.dumps(targets)], user=user)
    text = out.decode(errors="replace").strip()
    try:
        reached = json.loads(text.splitlines()[-1]) if code == 0 else None
    except (ValueError, IndexError):
        reached = None
    if not isinstance(reached, list):
        raise FirewallError(f"the isolation probe did not run in the container (exit {code}): "
                            f"{text[-300:]}")
    return [str(item) for item in reached]


def try_ensure(noted: set[str]) -> None:
    """``ensure`` where this process may; a reason it may not is logged once (``noted``),
    as root may have installed the rules: ``require_isolated`` decides."""
    try:
        for rule in ensure():
            log.warning("lease isolation rule was missing; added: %s", rule.shown())
    except FirewallError as exc:
        if str(exc) not in noted:
            noted.add(str(exc))
            log.warning("cannot manage the lease firewall rules (%s); relying on root having "
                        "run `python -m bot.adapters.docker_firewall`", exc)


def require_isolated(container: Any, *, user: str) -> None:
    """Raise ``ContainerStartError`` unless code in the started ``container`` is kept off
    this host's services: no lease is handed out otherwise."""
    try:
        reached = host_reached_from(container, user=user)
        problem = f"code in the container reached {', '.join(reached)}" if reached else ""
    except FirewallError as exc:
        problem = str(exc)
    if problem:
        raise ContainerStartError(
            "This host does not keep lease containers off its own services, so the Jupyter "
            "container was removed. An administrator must install the firewall rules: as "
            "root, `python -m bot.adapters.docker_firewall` (see `gpubot doctor`).",
            detail=problem)


def main() -> int:
    """``python -m bot.adapters.docker_firewall`` (as root): install the rules now."""
    try:
        added = ensure()
    except FirewallError as exc:
        print(f"gpubot firewall: {exc}", file=sys.stderr)
        return 1
    for rule in added:
        print(f"added: {rule.shown()}")
    print(f"gpubot firewall: all {len(rules())} lease isolation rules are in place")
    return 0


if __name__ == "__main__":
    sys.exit(main())
