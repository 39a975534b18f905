"""Routes and environments in the services, over the fakes (SQLite and PostgreSQL):
route effects owed by becoming active and by the one ending, redone after a crash,
reconciled against the active leases; environments chosen, refused, started."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.db.engine import Database
from bot.domain.environments import Environment
from bot.domain.errors import DomainError
from bot.domain.lease import LeaseStatus
from bot.services import routes
from bot.services.environments import environment_table
from tests.fakes.images import FakeImages
from tests.fakes.proxy import FakeProxy
from tests.fakes.services import Harness, build_harness

H = timedelta(hours=1)
ENVS = (Environment("default", "gpubot-jupyter:test"), Environment("conda", "lab/conda:1"))


@pytest.fixture
def proxy() -> FakeProxy:
    return FakeProxy()


@pytest.fixture
def kit(db: Database, proxy: FakeProxy) -> Harness:
    return build_harness(db, proxy=proxy, proxy_domain="gpu.lab.test", proxy_port=8443,
                         environments=ENVS)


def start(kit: Harness, user: str = "U1", **kwargs: object):  # type: ignore[no-untyped-def]
    lease = kit.claims.claim(user_id=user, duration=H, **kwargs)  # type: ignore[arg-type]
    return kit.claims.start(lease.id or 0)


def test_an_active_lease_gets_a_random_host_and_its_route_before_the_dm(
        kit: Harness, proxy: FakeProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    routed_at_dm: list[dict[str, str]] = []
    dm = kit.notifier.access_ready
    monkeypatch.setattr(kit.notifier, "access_ready",
                        lambda lease, access: (routed_at_dm.append(proxy.routes()),
                                               dm(lease, access)))
    lease = start(kit)
    assert lease.status is LeaseStatus.ACTIVE
    label = lease.route_label or ""
    assert re.fullmatch(r"[0-9a-f]{16}", label)
    assert label not in {str(lease.id), f"{lease.id:016x}"}  # random, not the id
    assert routed_at_dm == [{label: f"127.0.0.1:{lease.port}"}]  # the URL works on arrival
    assert proxy.routes() == {label: f"127.0.0.1:{lease.port}"}
    url = kit.notifier.of("access_ready")[-1].data["url"]
    assert url == f"https://{label}.gpu.lab.test:8443/lab"
    assert start(kit, "U2").route_label != label


def test_the_ending_removes_the_route(kit: Harness, proxy: FakeProxy) -> None:
    lease = start(kit)
    kit.leases.release(user_id="U1", lease_id=lease.id)
    assert proxy.routes() == {}


def test_a_proxy_down_at_activation_delays_only_the_route(kit: Harness, proxy: FakeProxy) -> None:
    proxy.fail = True
    lease = start(kit)
    assert lease.status is LeaseStatus.ACTIVE and kit.notifier.of("access_ready")
    proxy.fail = False
    kit.clock.advance(kit.res.config.effect_retry_after + timedelta(seconds=1))
    assert kit.gpubot.outbox.resume() >= 1  # the unacknowledged route_add, redone
    assert proxy.routes() == {lease.route_label: f"127.0.0.1:{lease.port}"}


def test_a_route_is_never_added_for_a_lease_that_ended_meanwhile(
        kit: Harness, proxy: FakeProxy) -> None:
    lease = start(kit)
    kit.leases.release(user_id="U1", lease_id=lease.id)
    assert routes.add_route(kit.res, lease.id or 0) is False  # a late route_add
    assert proxy.routes() == {}


def test_reconcile_removes_stale_routes_fixes_wrong_ones_and_restores_lost_ones(
        kit: Harness, proxy: FakeProxy) -> None:
    a, b = start(kit, "U1"), start(kit, "U2")
    proxy.edit("deadbeefdeadbeef", "127.0.0.1:1")  # an admin's leftover
    proxy.edit(a.route_label or "", "127.0.0.1:2")  # pointed elsewhere
    report = kit.reconciler.run()
    assert (report.routes_removed, report.routes_added) == (1, 1)
    assert proxy.routes() == {a.route_label: f"127.0.0.1:{a.port}",
                              b.route_label: f"127.0.0.1:{b.port}"}
    proxy.restart()  # Caddy came back empty
    assert kit.reconciler.run().routes_added == 2
    assert set(proxy.routes()) == {a.route_label, b.route_label}
    kit.leases.release(user_id="U2", lease_id=b.id)
    proxy.edit(b.route_label or "", f"127.0.0.1:{b.port}")  # a crash lost the removal
    kit.reconciler.run()
    assert set(proxy.routes()) == {a.route_label}


def test_without_a_proxy_there_are_no_labels_and_the_url_is_direct(db: Database) -> None:
    kit = build_harness(db)
    lease = start(kit)
    assert lease.route_label is None
    assert kit.notifier.of("access_ready")[-1].data["url"] == \
        f"http://gpu.lab.example:{lease.port}/lab"
    assert kit.reconciler.run().failed_steps == []


def test_a_claim_names_its_environment_and_the_container_gets_its_image(kit: Harness) -> None:
    lease = start(kit, environment="conda")
    assert lease.environment == "conda"
    spec = kit.runtime.started[-1]
    assert (spec.image, spec.environment) == ("lab/conda:1", "conda")
    assert start(kit, "U2").environment == "default"  # no `env`: the first one


def test_an_unknown_environment_is_refused_with_the_names_before_anything_is_written(
        kit: Harness) -> None:
    with pytest.raises(DomainError) as refused:
        kit.claims.claim(user_id="U1", duration=H, environment="tensorflow")
    assert "`default`" in refused.value.message and "`conda`" in refused.value.message
    assert kit.gpubot.use_cases.all_leases(include_ended=True) == []


def test_the_environment_table_says_what_each_image_needs_and_whether_it_runs(
        db: Database) -> None:
    envs = (Environment("default", "a:1"), Environment("new", "b:1"),
            Environment("cpu", "c:1"), Environment("plain", "d:1"), Environment("far", "e:1"))
    kit = build_harness(db, environments=envs)
    object.__setattr__(kit.res, "images", FakeImages({"a:1": "12.4", "b:1": "12.8",
                                                      "c:1": "none", "d:1": None}))
    rows = {r.name: r for r in environment_table(kit.res)}  # the fake driver: CUDA 12.4
    assert rows["default"].default and rows["default"].runs is True
    assert rows["new"].runs is False and "12.8" in rows["new"].note
    assert rows["cpu"].runs is True and rows["plain"].runs is None
    assert rows["far"].runs is None and "pulled" in rows["far"].note


def test_a_lease_on_a_cluster_node_is_reached_there_by_url_and_by_route(
        db: Database, kit: Harness, proxy: FakeProxy) -> None:
    """The engine said where Jupyter answered (a Slurm job's node): the DM's URL and the
    proxy's upstream go there, not to this host, also when reconcile restores the route."""
    direct = build_harness(db, host="direct-host")
    direct.runtime.address = "10.1.0.7"
    lease = start(direct)
    assert lease.address == "10.1.0.7"
    assert direct.notifier.of("access_ready")[-1].data["url"] == \
        f"http://10.1.0.7:{lease.port}/lab"

    kit.runtime.address = "10.1.0.8"
    routed = start(kit, "U2")
    assert proxy.routes() == {routed.route_label: f"10.1.0.8:{routed.port}"}
    proxy.edit(routed.route_label or "", "127.0.0.1:2")
    kit.reconciler.run()
    assert proxy.routes() == {routed.route_label: f"10.1.0.8:{routed.port}"}
