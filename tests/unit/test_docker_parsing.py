"""The Docker adapter's pure helpers, on recorded engine data (no engine needed):
pull progress, inspect states, labels, failure sentences, user-id validation."""

from __future__ import annotations

from typing import Any

import pytest

from bot.adapters.docker_messages import start_failure_message
from bot.adapters.docker_pull import PullProgress
from bot.adapters.docker_state import has_died, managed_container, state_from_inspect
from bot.adapters.docker_workspace import validate_gpu_uuids, validate_user_id
from bot.domain.errors import ContainerStartError
from bot.ports import ContainerStatus


def _downloading(layer: str, current: int, total: int) -> dict[str, Any]:
    return {
        "id": layer,
        "status": "Downloading",
        "progressDetail": {"current": current, "total": total},
    }


def test_pull_progress_sums_layers_and_only_moves_forward() -> None:
    lines: list[str] = []
    progress = PullProgress("img:1", lines.append, step=25)
    events: list[dict[str, Any]] = [
        {"status": "Pulling from img", "id": "1"},
        {"id": "old", "status": "Already exists", "progressDetail": {}},
        {"id": "a", "status": "Pulling fs layer", "progressDetail": {}},
        _downloading("a", 0, 100),
        _downloading("a", 50, 100),  # 50 %
        _downloading("b", 0, 300),  # b's size becomes known: 50/400, but never backwards
        _downloading("b", 150, 300),  # 200/400
        {"id": "a", "status": "Download complete", "progressDetail": {}},
        _downloading("b", 300, 300),  # 400/400, capped at 99 until the pull ends
        {"status": "Digest: sha256:0"},
    ]
    for event in events:
        progress.feed(event)
    progress.finish()
    assert lines == [f"Pulling image img:1: {p}%" for p in (0, 50, 99, 100)]
    assert progress.error is None


def test_pull_progress_keeps_the_engines_error() -> None:
    progress = PullProgress("img:1")
    progress.feed({"error": "short", "errorDetail": {"message": "manifest unknown"}})
    assert progress.error == "manifest unknown"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"Status": "running"}, (ContainerStatus.RUNNING, None, False)),
        ({"Status": "paused"}, (ContainerStatus.RUNNING, None, False)),
        ({"Status": "created"}, (ContainerStatus.STARTING, None, False)),
        ({"Status": "removing"}, (ContainerStatus.GONE, None, False)),
        (
            {"Status": "exited", "ExitCode": 137, "OOMKilled": True},
            (ContainerStatus.EXITED, 137, True),
        ),
        ({"Status": "restarting", "ExitCode": 1}, (ContainerStatus.EXITED, 1, False)),
        ({"Status": "dead", "ExitCode": 255}, (ContainerStatus.EXITED, 255, False)),
    ],
)
def test_inspect_states(
    state: dict[str, Any], expected: tuple[ContainerStatus, int | None, bool]
) -> None:
    got = state_from_inspect({"State": state})
    assert (got.status, got.exit_code, got.oom_killed) == expected


def test_a_container_restarted_by_its_policy_has_died() -> None:
    assert has_died({"State": {"Status": "running"}, "RestartCount": 1})
    assert not has_died({"State": {"Status": "running"}, "RestartCount": 0})


def test_managed_container_reads_our_labels() -> None:
    attrs = {
        "State": {"Status": "running"},
        "Config": {
            "Labels": {"gpubot.lease": "42", "gpubot.user": "U1", "gpubot.gpus": "GPU-a,GPU-b"}
        },
    }
    managed = managed_container("c1", "gpubot-42", attrs)
    assert managed is not None
    assert (managed.lease_id, managed.user_id, managed.gpu_uuids) == (42, "U1", ("GPU-a", "GPU-b"))
    no_gpus = {"State": {}, "Config": {"Labels": {"gpubot.lease": "7", "gpubot.gpus": ""}}}
    assert managed_container("c2", "gpubot-7", no_gpus).gpu_uuids == ()  # type: ignore[union-attr]
    assert managed_container("c3", "x", {"Config": {"Labels": {"gpubot.lease": "x"}}}) is None


def test_failure_sentences_name_the_cause() -> None:
    driver = 'could not select device driver "" with capabilities: [[gpu]]'
    assert "NVIDIA Container Toolkit" in start_failure_message(
        driver, lease_id=1, port=8801, bind_address="10.0.0.5"
    )
    port = "Bind for 10.0.0.5:8801 failed: port is already allocated"
    assert "Port 8801 on 10.0.0.5" in start_failure_message(
        port, lease_id=1, port=8801, bind_address="10.0.0.5"
    )
    assert "lease 1" in start_failure_message(
        "something else", lease_id=1, port=8801, bind_address="x"
    )


@pytest.mark.parametrize("user", ["U123ABC", "W0G1"])
def test_slack_user_ids_pass(user: str) -> None:
    assert validate_user_id(user) == user


@pytest.mark.parametrize("user", ["..", "../U1", "U1/..", "u1", "", "U1\n", "U" * 65, "U 1"])
def test_other_user_ids_are_refused(user: str) -> None:
    with pytest.raises(ContainerStartError):
        validate_user_id(user)


def test_gpu_ids_with_separators_are_refused() -> None:
    assert validate_gpu_uuids(("GPU-1", "MIG-GPU-1/1/0")) == ("GPU-1", "MIG-GPU-1/1/0")
    with pytest.raises(ContainerStartError):
        validate_gpu_uuids(("GPU-1,GPU-2",))
