"""``gpubot doctor``'s containment checks on real engines: live-restore (recommended),
the lease firewall rules, whether the storage driver can bound a writable layer, and
what the workspaces hold (issue 11 items 14, 16, 17)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from bot import doctor_engine
from bot.adapters import docker_firewall
from tests.infra import docker_engine as eng

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def spare(lease_ids: eng.LeaseIds) -> Iterator[docker.DockerClient]:
    with eng.spare_session(lease_ids) as client:
        yield client


def test_live_restore_is_recommended_where_it_is_off(
    docker_client: docker.DockerClient, spare: docker.DockerClient,
) -> None:
    off = doctor_engine.live_restore(docker_client)  # the main test engine runs without it
    assert off.ok and off.detail.startswith("off:") and '"live-restore": true' in off.fix
    on = doctor_engine.live_restore(spare)
    assert on.ok and on.detail.startswith("on:") and not on.fix
    assert not doctor_engine.live_restore(None).ok


def test_lease_isolation_puts_back_a_dropped_rule(docker_client: docker.DockerClient) -> None:
    rule = docker_firewall.rules()[1]
    import subprocess

    subprocess.run(rule.command("-D"), check=False, capture_output=True)
    result = doctor_engine.lease_isolation(True)
    assert result.ok and "1 were missing and were added" in result.detail
    assert docker_firewall.missing() == []
    assert doctor_engine.lease_isolation(False).detail.startswith("skipped:")


def test_writable_layer_bound_is_probed_on_the_engine(
    docker_client: docker.DockerClient, spare: docker.DockerClient,
) -> None:
    unset = doctor_engine.writable_layer(docker_client, eng.TEST_IMAGE, "", True)
    assert unset.ok and unset.detail.startswith("skipped:") and "overlay2" in unset.detail
    refused = doctor_engine.writable_layer(docker_client, eng.TEST_IMAGE, "1g", True)
    assert not refused.ok and "storage-opt" in refused.detail and "xfs" in refused.fix
    kept = doctor_engine.writable_layer(spare, eng.TEST_IMAGE, "1g", True)
    assert kept.ok and "btrfs" in kept.detail
    probes = docker_client.containers.list(all=True, filters={"label": "gpubot.doctor-probe"})
    assert probes == []


def test_workspace_usage_lists_the_largest(tmp_path: Path) -> None:
    for user, size in (("UBIG1", 3 << 20), ("USMALL1", 1 << 20)):
        (tmp_path / user).mkdir()
        (tmp_path / user / "data").write_bytes(b"\1" * size)
    (tmp_path / "lost+found").mkdir()
    result = doctor_engine.workspace_usage(tmp_path)
    assert result.ok and result.detail.startswith("2 workspaces")
    assert result.detail.index("UBIG1") < result.detail.index("USMALL1")
