"""What the Slurm adapters read: slurmrestd's node and job records (the shapes
slurmrestd v0.0.38 of Slurm 22.05 returns, as seen on the test cluster), the accounts
file, and the tokens minted for jobs as each person."""

from __future__ import annotations

from bot.adapters.slurm_inventory import gres_gpus, gres_indices, node_trouble
from bot.adapters.slurm_script import JobRequest, job_description
from bot.adapters.slurm_state import slot_node, slot_uuid


def test_a_nodes_gpu_gres_gives_its_type_and_count() -> None:
    assert gres_gpus("gpu:a100:4") == ("a100", 4)
    assert gres_gpus("gpu:a100:2(S:0),gpu:a100:2(S:1)") == ("a100", 4)
    assert gres_gpus("gpu:8") == ("", 8)
    assert gres_gpus("craynetwork:4,gpu:h100:2(S:0-1)") == ("h100", 2)
    assert gres_gpus("") == ("", 0) and gres_gpus(None) == ("", 0)
    mixed = "gpu:a100:2(S:0),gpu:v100:4(S:1)"
    assert gres_gpus(mixed, "v100") == ("v100", 4)  # GPUBOT_SLURM_GPU_TYPE: only those
    assert gres_gpus(mixed, "h100") == ("", 0)


def test_gres_indices_expand_ranges_and_ignore_none() -> None:
    assert gres_indices("gpu:a100:1(IDX:0)") == {0}
    assert gres_indices("gpu:a100:3(IDX:0,2-3)") == {0, 2, 3}
    assert gres_indices("gpu:a100:0(IDX:N/A)") == set()


def test_a_down_drained_or_silent_node_is_trouble_and_says_why() -> None:
    assert node_trouble({"name": "gn01", "state": "idle", "state_flags": []}) is None
    assert node_trouble({"name": "gn01", "state": "mixed", "state_flags": []}) is None
    down = node_trouble({"name": "gn01", "state": "down", "state_flags": ["NOT_RESPONDING"],
                         "reason": "Not responding"})
    assert down == "Slurm node gn01 is down+not_responding (Not responding)"
    assert node_trouble({"name": "gn02", "state": "idle", "state_flags": ["DRAIN"]})
    assert node_trouble({"name": "gn02", "state": ["IDLE", "DRAIN"]})  # newer APIs: a list


def test_a_unit_names_its_node_and_other_ids_name_none() -> None:
    assert slot_uuid("g01n01.hpc.local", 3) == "SLURM-g01n01.hpc.local/3"
    assert slot_node("SLURM-g01n01.hpc.local/3") == "g01n01.hpc.local"
    assert slot_node("GPU-5a5a5a5a-0000-4000-8000-000000000001") is None


def test_a_job_is_pinned_to_its_node_only_when_gpubot_chose_one(tmp_path) -> None:
    def describe(node: str | None) -> dict:
        req = JobRequest(lease_id=7, port=8801, gpus=1, labels={}, run_dir=tmp_path,
                         env_dir=tmp_path, workspace=tmp_path, node=node)
        return job_description(req, partition="gpu", gpu_type="a100", cpus=2, memory_mb=1024,
                               time_limit_minutes=60)

    assert describe("gn02")["nodelist"] == "gn02"
    assert "nodelist" not in describe(None)


def test_the_accounts_file_links_slack_users_to_logins_and_skips_the_rest() -> None:
    from bot.adapters.slurm_auth import parse_accounts

    text = """# Slack user   login
U0ALICE001  alice   # PhD student
U0BOB00002 bob.smith
U0ROOT0003 root
U0BAD00004 Bad;Login
U0ODD00005
"""
    assert parse_accounts(text) == {"U0ALICE001": "alice", "U0BOB00002": "bob.smith"}


def test_a_minted_token_names_the_login_and_expires_soon(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import time

    import jwt

    from bot.adapters.slurm_auth import TOKEN_LIFESPAN_S, TokenMinter

    key = tmp_path / "jwt.key"
    key.write_bytes(b"k" * 32)
    minter = TokenMinter(key)
    claims = jwt.decode(minter.token("alice"), key.read_bytes(), algorithms=["HS256"])
    assert claims["sun"] == "alice"
    assert 0 < claims["exp"] - time.time() <= TOKEN_LIFESPAN_S
    assert minter.token("alice") == minter.token("alice")  # reused while fresh
    assert minter.token("bob") != minter.token("alice")


def test_jobs_as_each_person_need_both_the_key_and_the_accounts() -> None:
    import pytest

    from bot.settings import SettingsError, load_settings

    with pytest.raises(SettingsError):
        load_settings(GPUBOT_SLURM_JWT_KEY="/etc/k")
    with pytest.raises(SettingsError):
        load_settings(GPUBOT_SLURM_ACCOUNTS="/etc/a")
    both = load_settings(GPUBOT_SLURM_JWT_KEY="/etc/k", GPUBOT_SLURM_ACCOUNTS="/etc/a")
    assert both.slurm_accounts is not None and both.slurm_jwt_key is not None
