"""``deploy/``: the systemd unit and the compose file are what their tools accept, and
keep what the bot needs to work (Docker socket, NVML devices, state, workspaces).

``systemd-analyze verify`` and ``docker compose config`` are the real tools; they are
installed from Debian when missing and the tests run as root (``tests.support.tools``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bot.bootstrap_access import is_loopback_host
from tests.ops.slack_usage import ROOT
from tests.support.tools import compose_command, tool

UNIT = ROOT / "deploy" / "systemd" / "gpubot.service"
COMPOSE = ROOT / "deploy" / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
INSTALLED_GPUBOT = "/opt/gpubot/.venv/bin/gpubot"
INSTALLED_PYTHON = "/opt/gpubot/.venv/bin/python"  # ExecStartPre: the firewall rules


def default_setting(name: str) -> str:
    match = re.search(rf"^{name}=(.*)$", (ROOT / ".env.example").read_text(), re.M)
    assert match, f"{name} has no default in .env.example"
    return match.group(1).strip()


def unit_service() -> dict[str, list[str]]:
    """[Service] of the unit: key -> every value given (systemd keys may repeat)."""
    section, found = None, {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def verify(unit_text: str, tmp_path: Path) -> str:
    """``systemd-analyze verify`` of ``unit_text``: its complaints about the unit."""
    analyze = tool("systemd-analyze", "systemd")
    path = tmp_path / "gpubot.service"
    path.write_text(unit_text)
    done = subprocess.run([analyze, "verify", "--man=no", str(path)], capture_output=True,
                          text=True, timeout=120)
    output = (done.stdout + done.stderr).strip()
    complaints = [line for line in output.splitlines() if "gpubot.service" in line]
    return "\n".join(complaints) or (output if done.returncode else "")


def installed(unit_text: str) -> str:
    """The unit as on a server: verify checks that ExecStart's program exists, so point it
    at this venv's gpubot (the one pip installed, as /opt/gpubot/.venv's on the server)."""
    gpubot = Path(sys.executable).with_name("gpubot")
    assert gpubot.is_file(), f"{gpubot} missing: pip install -e . first"
    assert INSTALLED_GPUBOT in unit_text and INSTALLED_PYTHON in unit_text
    return (unit_text.replace(INSTALLED_GPUBOT, str(gpubot))
            .replace(INSTALLED_PYTHON, str(Path(sys.executable))))


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    problems = verify(installed(UNIT.read_text()), tmp_path)
    assert not problems, problems


def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The check has teeth: a misspelt directive and a missing program are reported."""
    text = installed(UNIT.read_text())
    assert "ProtectHomes" in verify(text.replace("ProtectHome=", "ProtectHomes="), tmp_path)
    assert "not executable" in verify(re.sub(r"ExecStart=\S+", "ExecStart=/nonexistent/gpubot",
                                             text), tmp_path)


def syscalls(group_or_call: str, analyze: str, seen: set[str] | None = None) -> set[str]:
    """A syscall filter set (``@system-service``), expanded through its nested sets."""
    if not group_or_call.startswith("@"):
        return {group_or_call}
    seen = seen if seen is not None else set()
    if group_or_call in seen:
        return set()
    seen.add(group_or_call)
    out = subprocess.run([analyze, "syscall-filter", group_or_call], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    names = [line.strip() for line in out.splitlines()[1:] if line.startswith(" ")]
    return set().union(*(syscalls(n, analyze, seen) for n in names
                         if n and not n.startswith("#")))


def test_the_unit_runs_as_its_own_user_with_docker_state_and_config() -> None:
    svc = unit_service()
    assert svc["User"] == ["gpubot"] and svc["Group"] == ["gpubot"]
    assert "docker" in " ".join(svc["SupplementaryGroups"]).split()
    assert svc["EnvironmentFile"] == ["/etc/gpubot/gpubot.env"]
    # SQLite file and key: the default DATABASE_URL is relative to the working directory,
    # and the key file goes next to the database, so both land in the state directory.
    assert svc["StateDirectory"] == ["gpubot"] and svc["WorkingDirectory"] == ["/var/lib/gpubot"]
    assert default_setting("DATABASE_URL") == "sqlite:///gpubot.db"
    assert svc["ExecStart"] == [f"{INSTALLED_GPUBOT} serve"]


def test_the_hardening_still_lets_the_bot_work() -> None:
    svc = unit_service()
    analyze = tool("systemd-analyze", "systemd")
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "ProtectKernelModules",
                "RestrictSUIDSGID", "LockPersonality"):
        assert svc.get(key) == ["yes"], key
    assert svc["ProtectSystem"] == ["strict"]
    # Writable: the workspace root the bot creates user folders in.
    assert default_setting("GPUBOT_WORKSPACE_ROOT") in " ".join(svc["ReadWritePaths"]).split()
    # Devices: /dev/nvidia* must stay reachable for NVML.
    assert "PrivateDevices" not in svc and svc.get("DevicePolicy", ["auto"]) == ["auto"]
    # The Docker socket is a unix socket; Slack and Jupyter probes are TCP.
    families = " ".join(svc["RestrictAddressFamilies"]).split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
    # Handing a workspace to uid 1000 needs chown (and chmod of a folder it then does
    # not own); both capabilities kept, and the calls allowed by the filter.
    for key in ("CapabilityBoundingSet", "AmbientCapabilities"):
        assert {"CAP_CHOWN", "CAP_FOWNER"} <= set(" ".join(svc[key]).split()), key
    allowed: set[str] = set()
    for line in svc["SystemCallFilter"]:
        deny = line.startswith("~")
        names = set().union(*(syscalls(n, analyze) for n in line.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    needed = {"ioctl", "openat", "connect", "socket", "fchownat", "chown", "lchown", "fchmodat",
              "mkdir", "mmap", "clone3", "futex", "epoll_wait", "getrandom"}
    assert needed <= allowed, f"SystemCallFilter blocks {sorted(needed - allowed)}"
    assert "MemoryDenyWriteExecute" not in svc  # ctypes/cffi callbacks


def compose_config(tmp_path: Path, env_lines: list[str], compose_text: str | None = None
                   ) -> subprocess.CompletedProcess[str]:
    """``docker compose config`` on a copy of deploy/ next to a ``.env`` made from
    .env.example, run as docs/install.md says (from the repository root)."""
    (tmp_path / "deploy").mkdir(parents=True)
    (tmp_path / "deploy" / "compose.yaml").write_text(compose_text or COMPOSE.read_text())
    shutil.copy(DOCKERFILE, tmp_path / "deploy" / "Dockerfile")
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text() + "\n".join(env_lines) + "\n")
    return subprocess.run([*compose_command(), "-p", "gpubot", "--env-file", str(env), "-f",
                           "deploy/compose.yaml", "config"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_docker_compose_config_accepts_the_compose_file(tmp_path: Path) -> None:
    done = compose_config(tmp_path, ["SLACK_BOT_TOKEN=xoxb-test", "SLACK_APP_TOKEN=xapp-test",
                                     "GPUBOT_WORKSPACE_ROOT=/data/gpu-workspaces"])
    assert done.returncode == 0, done.stderr
    bot = yaml.safe_load(done.stdout)["services"]["gpubot"]
    env = bot["environment"]
    assert env["SLACK_BOT_TOKEN"] == "xoxb-test" and env["SLACK_APP_TOKEN"] == "xapp-test"
    assert bot["pid"] == "host" and bot["network_mode"] == "host"
    volumes = [v if isinstance(v, str) else f"{v['source']}:{v['target']}"
               for v in bot["volumes"]]
    assert any(v.startswith("/var/run/docker.sock:/var/run/docker.sock") for v in volumes)
    assert any(v.startswith("state:/var/lib/gpubot") for v in volumes), volumes
    assert env["DATABASE_URL"] == "sqlite:////var/lib/gpubot/gpubot.db"
    # The workspace root is one path inside and out, and the one the bot is told.
    assert env["GPUBOT_WORKSPACE_ROOT"] == "/data/gpu-workspaces"
    assert any(v.startswith("/data/gpu-workspaces:/data/gpu-workspaces") for v in volumes)
    [gpus] = bot["deploy"]["resources"]["reservations"]["devices"]
    assert gpus["driver"] == "nvidia" and "gpu" in gpus["capabilities"]
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    assert bot["read_only"] is True and bot["cap_drop"] == ["ALL"]
    assert set(bot["cap_add"]) == {"CHOWN", "FOWNER", "NET_ADMIN"}  # NET_ADMIN: firewall
    assert bot["build"]["dockerfile"] == "deploy/Dockerfile"
    assert Path(bot["build"]["context"]) == tmp_path


PROXY_ENV = ["SLACK_BOT_TOKEN=xoxb-test", "SLACK_APP_TOKEN=xapp-test", "GPUBOT_PROXY=caddy",
             "GPUBOT_PUBLIC_DOMAIN=gpu.lab.example",
             # what .env says here must not move the bot off the caddy service's admin API
             "GPUBOT_PROXY_ADMIN_URL=http://10.0.0.5:2019"]


def admin_exposure(caddy: dict[str, Any]) -> list[str]:
    """Ways the caddy service's admin API (whoever reaches it controls Caddy) would be
    reachable from off the host: an address other than loopback, or a published port."""
    admin = str((caddy.get("environment") or {}).get("CADDY_ADMIN", "localhost:2019"))
    host, _, port = admin.rpartition(":")
    problems = [] if is_loopback_host(host) else [f"CADDY_ADMIN={admin} is not loopback"]
    for published in caddy.get("ports") or []:
        if isinstance(published, dict):
            target, host_ip = str(published.get("target")), str(published.get("host_ip") or "")
        else:  # "[host_ip:]published:target[/protocol]"
            parts = str(published).split("/")[0].split(":")
            target, host_ip = parts[-1], (parts[0] if len(parts) == 3 else "")
        if target == port and not is_loopback_host(host_ip):
            problems.append(f"port {published} publishes the admin API")
    return problems


def test_compose_runs_caddy_for_the_proxy_with_its_admin_api_on_loopback(tmp_path: Path) -> None:
    done = compose_config(tmp_path, PROXY_ENV)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    bot, caddy = services["gpubot"], services["caddy"]
    assert caddy["image"].split(":")[0] == "caddy"  # the official image, Caddy 2
    assert caddy["command"] == ["caddy", "run", "--resume"]  # the autosaved config back
    # The host's network, like the bot's: it serves GPUBOT_PROXY_LISTEN on the host and
    # reaches the leases' Jupyter on the host's 127.0.0.1:<port> (published there only).
    assert caddy["network_mode"] == "host" and bot["network_mode"] == "host"
    assert not admin_exposure(caddy), admin_exposure(caddy)
    # The bot talks to that admin API, whatever .env says, and waits for it (else it would
    # start a Caddy of its own inside its container).
    admin = urlsplit(bot["environment"]["GPUBOT_PROXY_ADMIN_URL"]).netloc
    assert admin == caddy["environment"]["CADDY_ADMIN"]
    assert bot["environment"]["GPUBOT_PROXY"] == "caddy"
    assert bot["depends_on"]["caddy"]["condition"] == "service_healthy"
    assert "127.0.0.1:2019" in " ".join(caddy["healthcheck"]["test"])
    # The CA, certificates and autosaved config survive a new container.
    targets = {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in caddy["volumes"]}
    assert {"/data", "/config"} <= targets, caddy["volumes"]
    assert caddy["cap_drop"] == ["ALL"] and caddy["cap_add"] == ["NET_BIND_SERVICE"]
    assert caddy["read_only"] is True and "no-new-privileges:true" in caddy["security_opt"]


def test_the_admin_api_check_has_teeth(tmp_path: Path) -> None:
    """An admin API on every interface, or published from a bridged container, is caught."""
    text = COMPOSE.read_text()
    assert "CADDY_ADMIN: 127.0.0.1:2019" in text and "    network_mode: host\n" in text
    everywhere = text.replace("CADDY_ADMIN: 127.0.0.1:2019", "CADDY_ADMIN: 0.0.0.0:2019")
    done = compose_config(tmp_path / "a", PROXY_ENV, everywhere)
    assert done.returncode == 0, done.stderr
    assert admin_exposure(yaml.safe_load(done.stdout)["services"]["caddy"])
    head, _, tail = text.partition("  caddy:\n")  # the caddy service bridged, 2019 published
    bridged = head + "  caddy:\n" + tail.replace(
        "    network_mode: host\n", '    ports: ["2019:2019", "443:443"]\n', 1)
    done = compose_config(tmp_path / "b", PROXY_ENV, bridged.replace(
        "CADDY_ADMIN: 127.0.0.1:2019", "CADDY_ADMIN: :2019"))
    assert done.returncode == 0, done.stderr
    problems = admin_exposure(yaml.safe_load(done.stdout)["services"]["caddy"])
    assert any("2019" in p and "publishes" in p for p in problems), problems


def test_docker_compose_config_would_catch_a_broken_file(tmp_path: Path) -> None:
    broken = COMPOSE.read_text().replace("    pid: host", "    pids: host")
    done = compose_config(tmp_path, [], broken)
    assert done.returncode != 0 and "pids" in done.stderr, done.stderr


def test_the_dockerfile_copies_what_the_package_needs() -> None:
    """Every COPY source exists, and every package directory pyproject names is copied."""
    text = DOCKERFILE.read_text()
    sources = [s for line in re.findall(r"^COPY (.+)$", text, re.M)
               for s in line.split()[:-1]]
    for source in sources:
        assert (ROOT / source).exists(), source
    pyproject = (ROOT / "pyproject.toml").read_text()
    for top in {"bot", "handlers", "alembic"}:
        assert top in sources and f'"{top}' in pyproject
    assert re.search(r'^CMD \["serve"\]', text, re.M) and 'ENTRYPOINT ["gpubot"]' in text


def test_the_install_guide_matches_the_files_it_installs() -> None:
    """docs/install.md links only files that exist and creates the paths the unit uses."""
    guide = (ROOT / "docs" / "install.md").read_text()
    for link in re.findall(r"\]\((\.\./[^)#]+)\)", guide):
        assert (ROOT / "docs" / link).resolve().exists(), link
    svc = unit_service()
    for path in (*svc["EnvironmentFile"], *svc["WorkingDirectory"],
                 *" ".join(svc["ReadWritePaths"]).split()):
        assert path in guide, f"docs/install.md never sets up {path}"
    steps = re.findall(r"^## \d+[a-z]?\. .*?(?=^## |\Z)", guide, flags=re.M | re.S)
    assert "gpubot doctor" in steps[-1]  # doctor is the last step (then optional parts)
    assert "slack/manifest.yml" in guide
