"""Several threads opening a process's first Database at once (a fresh bot's workers, or
tests/integration/test_concurrent_claims.py run alone) must not race on the ORM mapping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys, threading
from bot.db.engine import Database
url = sys.argv[1]
start, errors = threading.Barrier(16), []
def one():
    start.wait()
    try:
        Database(url).dispose()
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=one) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(errors or "ok")
"""


def test_sixteen_threads_open_their_first_database_at_once(tmp_path: Path) -> None:
    for _ in range(3):  # the race, when there was one, lost about every other run
        out = subprocess.run([sys.executable, "-c", SCRIPT, f"sqlite:///{tmp_path}/x.db"],
                             capture_output=True, text=True, timeout=60, check=True)
        assert out.stdout.strip() == "ok", out.stdout + out.stderr
