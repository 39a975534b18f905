"""An in-memory ``Proxy`` with the Caddy adapter's semantics (tests/contract/
test_proxy_contract.py runs the same cases on both). Tests drive the world with
``restart`` (Caddy came back with no config) and ``edit`` (an admin changed a route);
``fail`` makes every call raise (Caddy down)."""

from __future__ import annotations

import re

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)


class ProxyDown(Exception):
    pass


class FakeProxy:
    def __init__(self) -> None:
        self.serving = False
        self._routes: dict[str, str] = {}
        self.fail = False
        self.calls: list[tuple[str, str]] = []

    def _check(self, what: str, label: str = "") -> None:
        if self.fail:
            raise ProxyDown("the proxy's admin API does not answer")
        if what in {"add", "remove"} and not _LABEL.fullmatch(label):
            raise ValueError(f"{label!r} is not a DNS label")
        self.calls.append((what, label))

    def ensure_server(self) -> None:
        self._check("ensure_server")
        self.serving = True

    def add_route(self, label: str, upstream: str) -> None:
        self._check("add", label)
        self.serving = True  # like the adapter: a lost server is put back first
        self._routes[label] = upstream

    def remove_route(self, label: str) -> None:
        self._check("remove", label)
        self._routes.pop(label, None)

    def routes(self) -> dict[str, str]:
        self._check("routes")
        return dict(self._routes) if self.serving else {}

    # the world
    def restart(self) -> None:
        self.serving, self._routes = False, {}

    def edit(self, label: str, upstream: str | None) -> None:
        if upstream is None:
            self._routes.pop(label, None)
        else:
            self._routes[label] = upstream
