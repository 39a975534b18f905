"""One uid per person (issue 11.15), seen from the host and from inside two leases: each
container runs as its person's uid, each workspace is owned by it, and what a kernel writes
lands on the host owned by that person, not by a uid every lease shares."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from tests.support.jupyter import logs_in

pytestmark = pytest.mark.docker


def test_two_people_two_uids_each_owning_only_their_workspace(
        make_runtime, new_lease, docker_client, workspace_root) -> None:
    runtime = make_runtime()
    alice = new_lease(user="UALICEUID")
    bob = new_lease(user="UBOBUID01")
    specs = {"UALICEUID": replace(alice.spec, uid=200001), "UBOBUID01": replace(bob.spec, uid=200002)}
    for spec in specs.values():
        runtime.start(spec)
    for user, spec in specs.items():
        container = docker_client.containers.get(f"gpubot-{spec.lease_id}")
        assert container.attrs["Config"]["User"] == f"{spec.uid}:{spec.uid}"
        code, out = container.exec_run(["sh", "-c", "id -u; id -g; echo $HOME; "
                                        "touch /workspace/made-inside; ls -ln /workspace"])
        assert code == 0, out
        uid, gid, home = out.decode().split()[:3]
        assert (int(uid), int(gid), home) == (spec.uid, spec.uid, "/workspace")
        folder = workspace_root / user
        info = os.stat(folder)
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (spec.uid, spec.uid, 0o700)
        made = os.stat(folder / "made-inside")
        assert (made.st_uid, made.st_gid) == (spec.uid, spec.uid) and made.st_uid != 1000
    # Jupyter itself runs fine as a uid the image has no account for
    url = f"http://127.0.0.1:{alice.spec.port}"
    runtime.wait_ready(runtime.start(specs["UALICEUID"]), port=alice.spec.port,
                       timeout=__import__("datetime").timedelta(seconds=90))
    assert logs_in(url, alice.password)
