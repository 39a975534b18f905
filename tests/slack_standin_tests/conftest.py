"""Fixtures for the stand-in's own tests (the repository root is on sys.path through
pytest's ``pythonpath = ["."]``; added here as well so the folder also runs alone)."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.slack_standin.pytest_plugin import (  # noqa: E402,F401  (fixtures)
    bolt_socket_app,
    slack_standin,
    slack_standin_config,
)
