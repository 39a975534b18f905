"""Run one figure in a fresh process: ``python -m bench._figure NAME JSON_KWARGS``.

Figures that time Python code inside the measuring process (ticks, concurrency) run
here, so the garbage collector walks only what that figure allocated and imported,
not what earlier figures left in the parent (the Slack stand-in's records, Docker
clients, 200 threads' worth of objects). The Section comes back as JSON on the last
line of stdout; progress goes to stderr.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Any

from bench.result import Section, Table, Target

MARK = "BENCH-SECTION-JSON "


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_isolated(name: str, **kwargs: Any) -> Section:
    """Run figure ``name`` in a child process and return its Section."""
    child = subprocess.run([sys.executable, "-m", "bench._figure", name, json.dumps(kwargs)],
                           stdout=subprocess.PIPE, text=True, check=False)
    line = next((ln for ln in reversed(child.stdout.splitlines()) if ln.startswith(MARK)), None)
    if child.returncode != 0 or line is None:
        raise RuntimeError(f"figure {name} failed in its process (exit {child.returncode})")
    data = json.loads(line[len(MARK):])
    data["tables"] = [Table(**t) for t in data["tables"]]
    data["targets"] = [Target(**t) for t in data["targets"]]
    return Section(**data)


def main() -> None:
    name, kwargs = sys.argv[1], json.loads(sys.argv[2])
    if name == "ticks":
        from bench import ticks

        section = ticks.run(log=_log, **kwargs)
    elif name == "idle":
        from bench import idle_tick

        section = idle_tick.run(log=_log, **kwargs)
    elif name == "concurrency":
        from bench import concurrency

        section = concurrency.run(log=_log, **kwargs)
    elif name.startswith("slurm_"):
        from bench import slurm

        section = slurm.figure(name, log=_log, **kwargs)
    else:
        raise SystemExit(f"unknown figure {name}")
    print(MARK + json.dumps(dataclasses.asdict(section)), flush=True)


if __name__ == "__main__":
    main()
