"""The `gpubot` command line, in process, on a SQLite file."""

from __future__ import annotations

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.domain.lease import LeaseStatus
from tests.fakes.services import build_harness

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/gpubot.db"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("GPUBOT_FAKE_GPUS", "2")
    return url


def test_db_upgrade_leases_and_release(env: str, tmp_path, monkeypatch) -> None:
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "no leases" in runner.invoke(app, ["leases"]).output
    assert not (tmp_path / "gpubot.key").exists(), "only serve creates the key file"

    db = Database(env)
    kit = build_harness(db)
    lease = kit.claims.claim(user_id="U1", duration=timedelta(hours=2))
    kit.claims.start(lease.id)
    listing = runner.invoke(app, ["leases"], terminal_width=200)
    assert listing.exit_code == 0 and "U1" in listing.output and "active" in listing.output

    # the CLI would stop the container through Docker; here through the same fake runtime
    monkeypatch.setattr("bot.bootstrap.make_runtime", lambda settings: kit.runtime)
    released = runner.invoke(app, ["release", str(lease.id)])
    assert released.exit_code == 0, released.output
    assert "released" in released.output and kit.runtime.stopped == [lease.id]
    with db.transaction() as s:
        assert LeaseRepo(s).get(lease.id).status is LeaseStatus.RELEASED
    missing = runner.invoke(app, ["release", "999"])
    assert missing.exit_code == 1 and "There is no lease 999" in missing.output
    db.dispose()


@pytest.mark.parametrize(("name", "value"), [("GPUBOT_PORT_RANGE", "9000-8000"),
                                             ("GPUBOT_MAX_LEASE", "banana"),
                                             ("DATABASE_URL", "::nope::")])
def test_bad_settings_stop_with_one_line(env: str, monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    for command in (["serve"], ["db", "upgrade"], ["leases"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and name in lines[0] and "Traceback" not in result.output


def test_serve_without_slack_tokens_says_what_to_set(env: str) -> None:
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2 and "SLACK_BOT_TOKEN is not set" in result.output
