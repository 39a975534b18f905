"""SSH from claim to login through the whole bot (GPUBOT_SSH on, the real engine and the
real OpenSSH client): the access DM's own ~/.ssh/config block and known_hosts line (taken
from the rendered Block Kit) log in with StrictHostKeyChecking=yes as the person's uid;
a key added with the key service during the lease opens it at once, a removed one no
longer does; releasing the lease closes the port."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta

import pytest

from bot.db import migrate
from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.domain.lease import LeaseStatus as S
from bot.ports import AccessInfo
from handlers.blocks import access_message
from tests.fakes.services import build_harness
from tests.infra import docker_engine as eng
from tests.support.ssh import keypair, require_client, wait_for_banner

pytestmark = pytest.mark.docker


@pytest.fixture
def kit(sqlite_url, make_runtime):
    migrate.upgrade(sqlite_url)
    db = Database(sqlite_url)
    low = eng.free_port()
    yield build_harness(db, runtime=make_runtime(), ssh=True, port_range=(low, low + 20))
    db.dispose()


def dm_code_blocks(lease, access) -> tuple[str, list[str]]:
    """The DM as Slack would get it, and its ``` blocks (config, then known_hosts)."""
    text, blocks = access_message(lease, url=access.url, password=access.password,
                                  gpus="GPU 0", extend_by=timedelta(hours=1), ssh=access.ssh)
    shown = "\n".join(b["text"]["text"] for b in blocks if b.get("text", {}).get("text"))
    return text, re.findall(r"```(.*?)```", shown, re.S)


def login(config, known_hosts, key, alias, command="id -u"):
    # HostName: the DM's is gpu.lab.example (the harness's public host); it is this machine
    return subprocess.run(["ssh", "-F", str(config), "-o", "HostName=127.0.0.1",
                           "-o", "BatchMode=yes",
                           "-o", f"UserKnownHostsFile={known_hosts}",
                           "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
                           "-o", "IdentityAgent=none", "-i", str(key.private), alias, command],
                          capture_output=True, text=True, timeout=30)


def test_claim_to_ssh_login_with_what_the_dm_says(kit, tmp_path) -> None:
    require_client()
    alice, later = keypair(tmp_path, "alice"), keypair(tmp_path, "later", "ecdsa")
    keys = kit.gpubot.use_cases.keys
    keys.add(user_id="USSHDM001", text=alice.public_line)
    lease = kit.claims.start(kit.claims.claim(user_id="USSHDM001",
                                              duration=timedelta(hours=1)).id)
    assert lease.status is S.ACTIVE, lease.failure_reason
    access = kit.notifier.of("access_ready")[-1].data
    info = AccessInfo(url=access["url"], password=access["password"], ssh=access["ssh"])
    text, (config_text, known_line) = dm_code_blocks(lease, info)
    assert f"ssh -p {lease.ssh_port} usshdm001@gpu.lab.example" in text
    assert access["password"] not in text
    config, known = tmp_path / "config", tmp_path / "known_hosts"
    config.write_text(config_text)
    known.write_text(known_line.strip() + "\n")
    alias = f"gpubot-{lease.id}"
    wait_for_banner(lease.ssh_port)
    done = login(config, known, alice, alias)
    with kit.res.db.transaction() as s:
        uid = LeaseRepo(s).uid_of_lease(lease.id)
    assert done.returncode == 0 and done.stdout.strip() == str(uid), done.stderr
    # keys changed during the lease, through the service and its outbox effect
    assert login(config, known, later, alias).returncode == 255
    keys.add(user_id="USSHDM001", text=later.public_line)
    assert login(config, known, later, alias).returncode == 0
    keys.remove(user_id="USSHDM001", number=1)  # alice's
    assert login(config, known, alice, alias).returncode == 255
    kit.leases.release(user_id="USSHDM001")
    closed = login(config, known, later, alias)
    assert closed.returncode == 255 and ("refused" in closed.stderr
                                         or "closed" in closed.stderr), closed.stderr
