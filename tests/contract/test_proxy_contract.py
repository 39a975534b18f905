"""The Proxy contract, run on the hand-written fake the service tests use and on the
Caddy adapter against a real Caddy (started by PID for the test)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from bot.ports import Proxy
from tests.fakes.proxy import FakeProxy


@dataclass
class Subject:
    proxy: Proxy
    restart: Callable[[], None]  # the proxy comes back with no config at all


def _fake() -> Iterator[Subject]:
    proxy = FakeProxy()
    yield Subject(proxy, proxy.restart)


def _caddy(tmp_path: Path) -> Iterator[Subject]:
    from tests.support.caddy import running_caddy

    with running_caddy(tmp_path / "caddy") as caddy:
        yield Subject(caddy.proxy, lambda: caddy.restart(resume=False))


@pytest.fixture(params=["fake", "caddy"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    yield from (_fake() if request.param == "fake" else _caddy(tmp_path))


def test_a_new_server_has_no_routes_and_ensuring_it_twice_changes_nothing(subject: Subject) -> None:
    subject.proxy.ensure_server()
    subject.proxy.ensure_server()
    assert subject.proxy.routes() == {}


def test_a_route_is_listed_and_replaced_in_place(subject: Subject) -> None:
    proxy = subject.proxy
    proxy.ensure_server()
    proxy.add_route("a1b2c3d4e5f60718", "127.0.0.1:8801")
    proxy.add_route("ffeeddccbbaa9988", "127.0.0.1:8802")
    proxy.add_route("a1b2c3d4e5f60718", "127.0.0.1:8803")  # the same label, a new upstream
    assert proxy.routes() == {"a1b2c3d4e5f60718": "127.0.0.1:8803",
                              "ffeeddccbbaa9988": "127.0.0.1:8802"}


def test_removing_is_idempotent_and_leaves_the_others(subject: Subject) -> None:
    proxy = subject.proxy
    proxy.ensure_server()
    proxy.add_route("aaaa", "127.0.0.1:8801")
    proxy.add_route("bbbb", "127.0.0.1:8802")
    proxy.remove_route("aaaa")
    proxy.remove_route("aaaa")
    proxy.remove_route("neverthere")
    assert proxy.routes() == {"bbbb": "127.0.0.1:8802"}


def test_ensuring_the_server_keeps_its_routes(subject: Subject) -> None:
    proxy = subject.proxy
    proxy.ensure_server()
    proxy.add_route("aaaa", "127.0.0.1:8801")
    proxy.ensure_server()
    assert proxy.routes() == {"aaaa": "127.0.0.1:8801"}


def test_after_a_restart_with_no_config_routes_are_gone_and_adding_one_works(
        subject: Subject) -> None:
    proxy = subject.proxy
    proxy.ensure_server()
    proxy.add_route("aaaa", "127.0.0.1:8801")
    subject.restart()
    assert proxy.routes() == {}
    proxy.add_route("bbbb", "127.0.0.1:8802")  # puts the server back first
    assert proxy.routes() == {"bbbb": "127.0.0.1:8802"}


@pytest.mark.parametrize("label", ["", "UPPER", "a.b", "-a", "a/b", "x" * 64, "a b"])
def test_a_label_that_is_no_dns_label_is_refused(subject: Subject, label: str) -> None:
    subject.proxy.ensure_server()
    with pytest.raises(ValueError):
        subject.proxy.add_route(label, "127.0.0.1:8801")
