"""The Slurm engine's own tests: one real two-node cluster per session
(tests/infra/slurm_engine.py), every job cancelled after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.adapters.slurm import SlurmRuntime
from tests.infra import slurm_engine as eng
from tests.infra.slurm_cluster import Cluster


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    cluster = eng.shared_cluster()
    yield cluster
    eng.cancel_all(cluster)


@pytest.fixture
def runtime(cluster: Cluster) -> SlurmRuntime:
    return eng.make_runtime(cluster)
