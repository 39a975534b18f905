"""SSH keys and SSH leases through the real object graph over fakes (SQLite and
PostgreSQL): ``/gpu key`` storage and refusals, the second port a lease holds with
GPUBOT_SSH, what its container is handed, what its access DM says, and keys that change
during a lease reaching its running container."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from bot.db.repo import LeaseRepo
from bot.domain.errors import DomainError
from bot.domain.lease import LeaseStatus as S
from bot.domain.ssh import MAX_KEYS_PER_USER, InvalidKey, host_key
from tests.fakes.services import Harness, build_harness

H = timedelta(hours=1)


def new_key(comment: str = "me@laptop") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode() + f" {comment}"


def private_pem() -> str:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()


@pytest.fixture
def kit(db) -> Harness:
    return build_harness(db, ssh=True)


def active(kit: Harness, user: str = "U1"):
    lease = kit.claims.claim(user_id=user, duration=24 * H)
    return kit.claims.start(lease.id)


def test_add_list_remove(kit: Harness) -> None:
    keys = kit.gpubot.use_cases.keys
    first, second = new_key("one"), new_key("two")
    added = keys.add(user_id="U1", text=first)
    keys.add(user_id="U1", text=second)
    listed = keys.list(user_id="U1")
    assert [(k.number, k.comment, k.kind) for k in listed] == [(1, "one", "ed25519"),
                                                               (2, "two", "ed25519")]
    assert listed[0].fingerprint == added.fingerprint and listed[0].line == first
    assert keys.list(user_id="U2") == []  # each person their own
    gone = keys.remove(user_id="U1", number=1)
    assert gone.comment == "one"
    assert [k.comment for k in keys.list(user_id="U1")] == ["two"]
    with pytest.raises(DomainError, match="remove 1"):
        keys.remove(user_id="U1", number=5)
    with pytest.raises(DomainError, match="no SSH keys"):
        keys.remove(user_id="U2", number=1)


def test_refusals_store_nothing(kit: Harness) -> None:
    keys = kit.gpubot.use_cases.keys
    with pytest.raises(InvalidKey, match="compromised"):
        keys.add(user_id="U1", text=private_pem())
    with pytest.raises(InvalidKey):
        keys.add(user_id="U1", text="ssh-ed25519 nonsense")
    assert keys.list(user_id="U1") == []
    line = new_key()
    keys.add(user_id="U1", text=line)
    with pytest.raises(DomainError, match="already on file"):
        keys.add(user_id="U1", text=line.replace("me@laptop", "same key, new comment"))
    for n in range(MAX_KEYS_PER_USER - 1):
        keys.add(user_id="U1", text=new_key(f"k{n}"))
    with pytest.raises(DomainError, match="the most allowed"):
        keys.add(user_id="U1", text=new_key())
    assert len(keys.list(user_id="U1")) == MAX_KEYS_PER_USER


def test_an_ssh_lease_holds_two_ports_and_its_container_gets_keys_and_host_key(
        kit: Harness, db) -> None:
    line = new_key()
    kit.gpubot.use_cases.keys.add(user_id="U1", text=line)
    lease = active(kit)
    assert lease.status is S.ACTIVE and lease.ssh_port and lease.ssh_port != lease.port
    with db.transaction() as s:
        assert LeaseRepo(s).taken_ports("gpu-host-1") == {lease.port, lease.ssh_port}
    spec = kit.runtime.started[0]
    assert spec.ssh_port == lease.ssh_port and spec.login == "u1"
    assert spec.authorized_keys == f"restrict,port-forwarding,pty {line}\n"
    password = kit.notifier.of("access_ready")[0].data["password"]
    derived = host_key(password, lease.id)
    assert lease.host_key_fingerprint == derived.fingerprint
    assert "OPENSSH PRIVATE KEY" in spec.ssh_host_key and "ssh_host_key" not in repr(spec)
    ssh = kit.notifier.of("access_ready")[0].data["ssh"]
    assert (ssh.port, ssh.login, ssh.host, ssh.keys_on_file) == (lease.ssh_port, "u1",
                                                                 "gpu.lab.example", 1)
    assert ssh.command == f"ssh -p {lease.ssh_port} u1@gpu.lab.example"
    assert (ssh.host_key, ssh.fingerprint) == (derived.public, derived.fingerprint)
    kit.leases.resend_access(user_id="U1")  # /gpu password: the same host key again
    assert kit.notifier.of("access_resend")[0].data["ssh"] == ssh
    kit.leases.release(user_id="U1")
    with db.transaction() as s:  # both port rows go with the confirmed stop
        assert LeaseRepo(s).taken_ports("gpu-host-1") == set()


def test_keys_changed_during_a_lease_reach_its_container(kit: Harness) -> None:
    lease = active(kit)
    assert kit.notifier.of("access_ready")[0].data["ssh"].keys_on_file == 0
    assert kit.runtime.started[0].authorized_keys == ""
    keys = kit.gpubot.use_cases.keys
    first, second = new_key("a"), new_key("b")
    keys.add(user_id="U1", text=first)
    assert kit.runtime.authorized_keys[lease.id].splitlines() == [
        f"restrict,port-forwarding,pty {first}"]
    keys.add(user_id="U1", text=second)
    keys.remove(user_id="U1", number=1)
    assert kit.runtime.authorized_keys[lease.id] == f"restrict,port-forwarding,pty {second}\n"
    keys.add(user_id="U2", text=new_key())  # someone else's key reaches nobody's lease here
    assert kit.runtime.authorized_keys[lease.id] == f"restrict,port-forwarding,pty {second}\n"


def test_a_failed_key_push_is_redone_by_the_reconciler(kit: Harness) -> None:
    lease = active(kit)
    kit.runtime.vanish(lease.id)  # the container is not there to take the keys
    kit.gpubot.use_cases.keys.add(user_id="U1", text=new_key())
    assert lease.id not in kit.runtime.authorized_keys
    kit.clock.advance(kit.res.config.effect_retry_after + timedelta(seconds=1))
    kit.runtime.start(kit.runtime.started[0])  # it is back (as after an engine hiccup)
    kit.gpubot.outbox.resume()
    assert "me@laptop" in kit.runtime.authorized_keys[lease.id]


def test_a_taken_ssh_port_moves_both_ports(kit: Harness, db) -> None:
    kit.runtime.foreign_ports.add(8801)  # sshd's first choice is held outside gpubot
    lease = active(kit)
    assert lease.status is S.ACTIVE and 8801 not in (lease.port, lease.ssh_port)
    with db.transaction() as s:
        assert LeaseRepo(s).taken_ports("gpu-host-1") == {lease.port, lease.ssh_port}


def test_without_ssh_a_lease_has_one_port_and_no_ssh_in_its_dm(db) -> None:
    kit = build_harness(db)
    kit.gpubot.use_cases.keys.add(user_id="U1", text=new_key())
    lease = active(kit)
    assert lease.ssh_port is None and lease.host_key_fingerprint is None
    assert kit.runtime.started[0].ssh_port is None
    assert kit.notifier.of("access_ready")[0].data["ssh"] is None
