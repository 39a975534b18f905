"""SSH into a lease (issue 13.2) with the real OpenSSH client against the image's sshd on
the real engine: a key login runs commands as the lease's own uid; a wrong key, another
person's key, root and passwords are refused; scp lands files in the workspace owned by
the uid; the host key the client sees is the one the bot derived; forwarding is what VS
Code Remote-SSH needs and no more; keys changed during the lease apply at once; a dead
sshd comes back."""

from __future__ import annotations

import os
import time
import urllib.request
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain.ssh import authorized_keys, host_key, login_name
from tests.infra import docker_engine as eng
from tests.support.ssh import Client, KeyPair, keypair, keyscan, require_client, wait_for_banner

pytestmark = pytest.mark.docker


@dataclass
class SshLease:
    spec: object
    password: str
    host_key: object
    folder: Path

    def client(self, key: KeyPair | None, *, trusted: bool = True) -> Client:
        known = self.folder / f"known_hosts-{self.spec.lease_id}"
        known.write_text(f"gpubot-{self.spec.lease_id} {self.host_key.public}\n" if trusted
                         else "")
        return Client(port=self.spec.ssh_port, login=self.spec.login, key=key,
                      known_hosts=known, alias=f"gpubot-{self.spec.lease_id}")


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, KeyPair]:
    require_client()
    folder = tmp_path_factory.mktemp("client-keys")
    return {name: keypair(folder, name, kind) for name, kind in
            (("alice", "ed25519"), ("alice2", "ecdsa"), ("bob", "ed25519"),
             ("stranger", "ed25519"))}


@pytest.fixture
def start_ssh(make_runtime, new_lease, tmp_path):
    runtime = make_runtime()

    def start(user: str, uid: int, *lines: str, image: str | None = None) -> SshLease:
        run = make_runtime(image=image) if image else runtime
        lease = new_lease(user=user)
        derived = host_key(lease.password, lease.spec.lease_id)
        spec = replace(lease.spec, uid=uid, ssh_port=eng.free_port(),
                       ssh_host_key=derived.private_openssh,
                       authorized_keys=authorized_keys(list(lines)), login=login_name(user))
        handle = run.start(spec)
        run.wait_ready(handle, port=spec.port, timeout=timedelta(seconds=120))
        wait_for_banner(spec.ssh_port)
        return SshLease(spec, lease.password, derived, tmp_path)

    start.runtime = runtime  # type: ignore[attr-defined]
    return start


@pytest.mark.parametrize("image", [eng.TEST_IMAGE, eng.TEST_CONDA_IMAGE],
                         ids=["venv-image", "conda-image"])
def test_a_key_login_runs_as_the_lease_user_and_the_host_key_is_the_bots(
        start_ssh, keys, image) -> None:
    lease = start_ssh("USSHALICE", 200411, keys["alice"].public_line, image=image)
    client = lease.client(keys["alice"])
    # not a login shell: the image's PATH (its Python, jupyter) comes from sshd's SetEnv
    done = client.ssh("id -u; id -g; id -un; echo $HOME; pwd; command -v jupyter")
    assert done.returncode == 0, done.stderr
    uid, gid, name, home, cwd, jupyter = done.stdout.split()
    assert (uid, gid, name, home, cwd) == ("200411", "200411", "usshalice", "/workspace",
                                           "/workspace")
    assert jupyter.startswith(("/opt/venv/bin/", "/opt/conda/bin/"))
    # what sshd presents is the key the bot derived (and so shows in the DM)
    assert keyscan(lease.spec.ssh_port) == [f"127.0.0.1 {lease.host_key.public}".replace(
        "127.0.0.1", f"[127.0.0.1]:{lease.spec.ssh_port}")]
    # an impostor host key is refused under StrictHostKeyChecking=yes
    other = lease.client(keys["alice"])
    other.known_hosts.write_text(f"{other.alias} {host_key('x' * 20, 1).public}\n")
    refused = other.ssh("true")
    assert refused.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in refused.stderr
    unknown = lease.client(keys["alice"], trusted=False).ssh("true")
    assert unknown.returncode == 255 and "Host key verification failed" in unknown.stderr


def test_wrong_key_other_persons_key_root_and_passwords_are_refused(start_ssh, keys) -> None:
    alice = start_ssh("USSHALIC2", 200412, keys["alice"].public_line)
    bob = start_ssh("USSHBOB01", 200413, keys["bob"].public_line)
    assert bob.client(keys["bob"]).ssh("true").returncode == 0
    for lease, key in ((alice, keys["stranger"]), (alice, keys["bob"]), (bob, keys["alice"])):
        denied = lease.client(key).ssh("true")
        assert denied.returncode == 255 and "Permission denied (publickey)" in denied.stderr
    # the right key for another login (root, the image's own user) gets nowhere either
    for login in ("root", "jovyan", "usshbob01"):
        denied = alice.client(keys["alice"]).ssh("true", login=login)
        assert denied.returncode == 255 and "Permission denied" in denied.stderr, login
    # passwords: the server offers publickey and nothing else
    password = alice.client(None).ssh("true", "-o", "PubkeyAuthentication=no", "-o",
                                      "PreferredAuthentications=password,keyboard-interactive")
    assert password.returncode == 255
    assert "Permission denied (publickey)." in password.stderr


def test_scp_lands_in_the_workspace_owned_by_the_uid(start_ssh, keys, workspace_root,
                                                     tmp_path) -> None:
    lease = start_ssh("USSHSCP01", 200414, keys["alice"].public_line)
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(256 * 1024))
    client = lease.client(keys["alice"])
    for mode, name in (((), "sftp.bin"), (("-O",), "legacy.bin")):  # SFTP and the old scp
        copied = client.scp(source, f"/workspace/{name}", *mode)
        assert copied.returncode == 0, copied.stderr
        landed = workspace_root / "USSHSCP01" / name
        assert landed.read_bytes() == source.read_bytes()
        info = os.stat(landed)
        assert (info.st_uid, info.st_gid) == (200414, 200414)


def test_forwarding_is_what_vs_code_needs_and_no_more(start_ssh, keys) -> None:
    lease = start_ssh("USSHFWD01", 200415, keys["alice"].public_line)
    client = lease.client(keys["alice"])
    # local forwarding (VS Code's tunnel to its server): Jupyter's login page through it
    local = eng.free_port()
    import subprocess
    tunnel = subprocess.Popen(["ssh", *client.options("-N", "-L", f"{local}:127.0.0.1:8888",
                                                      "-o", "ExitOnForwardFailure=yes"),
                               "-p", str(client.port), f"{client.login}@127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, status = time.monotonic() + 20, None
        while status != 200 and time.monotonic() < deadline:
            try:
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                status = opener.open(f"http://127.0.0.1:{local}/login", timeout=3).status
            except OSError:
                time.sleep(0.3)
        assert status == 200, tunnel.stderr.read() if tunnel.poll() is not None else "no answer"
    finally:
        tunnel.terminate()
        tunnel.wait(10)
    # remote forwarding (a listener inside the lease for the outside) is refused
    remote = client.ssh("true", "-R", "0:127.0.0.1:22", "-o", "ExitOnForwardFailure=yes")
    assert remote.returncode == 255 and "forwarding failed" in remote.stderr.lower()
    # no agent, no X11, and a pty for interactive shells
    agent = client.ssh("echo agent=${SSH_AUTH_SOCK:-none} display=${DISPLAY:-none}", "-A", "-X")
    assert agent.returncode == 0 and "agent=none display=none" in agent.stdout
    tty = client.ssh("tty", "-tt")
    assert tty.returncode == 0 and "/dev/pts/" in tty.stdout


def test_keys_changed_during_the_lease_apply_at_once(start_ssh, keys) -> None:
    lease = start_ssh("USSHKEYS1", 200416, keys["alice"].public_line)
    runtime = start_ssh.runtime
    assert lease.client(keys["alice2"]).ssh("true").returncode == 255
    runtime.set_authorized_keys(lease.spec.lease_id, authorized_keys([keys["alice2"].public_line]))
    assert lease.client(keys["alice2"]).ssh("true").returncode == 0  # the new key: in
    gone = lease.client(keys["alice"]).ssh("true")  # the removed one: out
    assert gone.returncode == 255 and "Permission denied" in gone.stderr


def test_a_dead_sshd_comes_back_and_jupyter_stays(start_ssh, keys, docker_client) -> None:
    lease = start_ssh("USSHDIES1", 200417, keys["alice"].public_line)
    container = docker_client.containers.get(f"gpubot-{lease.spec.lease_id}")
    code, out = container.exec_run(["sh", "-c", "pgrep -o -f 'sshd -D' | xargs kill -9"],
                                   user="200417:200417")
    assert code == 0, out
    deadline = time.monotonic() + 30
    while b"sshd exited with status" not in container.logs():
        assert time.monotonic() < deadline, container.logs()[-2000:]
        time.sleep(0.2)
    wait_for_banner(lease.spec.ssh_port, timeout=30)
    assert lease.client(keys["alice"]).ssh("true").returncode == 0
    container.reload()
    assert container.status == "running"
