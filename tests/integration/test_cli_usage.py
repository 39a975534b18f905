"""`gpubot usage --since 30d [--csv]` in process, on a SQLite file the bot's own graph
filled (leases and samples through the services, as `gpubot serve` would)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.db import migrate
from bot.db.engine import Database
from tests.fakes.clock import FakeClock
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import build_harness

runner = CliRunner()


@pytest.fixture
def filled(tmp_path, monkeypatch) -> str:
    """UA held a GPU 3 h at 40 % two days ago, UB one 1 h at 90 % forty days ago (the
    CLI reads with the real clock, so the samples are placed relative to it)."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/gpubot.db"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("GPUBOT_FAKE_GPUS", "2")
    migrate.upgrade(url)
    db = Database(url)
    clock = FakeClock(datetime.now(UTC) - timedelta(days=40))
    kit = build_harness(db, clock=clock, inventory=FakeInventory(2))
    for user, util, hours, then in (("UB", 90, 1, timedelta(days=38)), ("UA", 40, 3, None)):
        lease = kit.claims.start(kit.claims.claim(user_id=user,
                                                  duration=timedelta(hours=8)).id or 0)
        index = next(g.index for g in kit.inventory.gpus if g.uuid in lease.gpu_uuids)
        kit.inventory.set(index, utilization_percent=util)
        for _ in range(hours):
            clock.advance(timedelta(hours=1))
            kit.idle.sample()
        kit.leases.release(user_id=user, lease_id=lease.id)
        kit.inventory.set(index, utilization_percent=0)
        if then:
            clock.advance(then)
    db.dispose()
    return url


def test_the_table_covers_the_window_asked_for(filled: str) -> None:
    month = runner.invoke(app, ["usage", "--since", "30d"], terminal_width=120)
    assert month.exit_code == 0, month.output
    assert "UA" in month.output and "UB" not in month.output  # UB was 40 days ago
    assert "3.0" in month.output and "40.0" in month.output
    quarter = runner.invoke(app, ["usage", "--since", "90d"], terminal_width=120)
    assert "UA" in quarter.output and "UB" in quarter.output
    assert "4.0" in quarter.output  # the total row: 3 + 1 GPU-hours
    none = runner.invoke(app, ["usage", "--since", "1h"])
    assert none.exit_code == 0 and "no leases in the last 1h" in none.output


def test_csv_goes_to_stdout_most_gpu_hours_first(filled: str) -> None:
    result = runner.invoke(app, ["usage", "--since", "90d", "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["user", "leases", "gpu_hours", "mean_util_percent"]
    assert rows[1:] == [["UA", "1", "3.000", "40.0"], ["UB", "1", "1.000", "90.0"]]


def test_a_bad_window_is_one_line(filled: str) -> None:
    result = runner.invoke(app, ["usage", "--since", "soon"])
    assert result.exit_code == 2 and "--since" in result.output
