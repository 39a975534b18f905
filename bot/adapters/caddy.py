"""``Proxy`` on Caddy, through its admin API (GPUBOT_PROXY_ADMIN_URL): HTTPS per lease.

Our part of Caddy's JSON config (everything else an admin keeps there is left alone):

- ``apps.http.servers.gpubot``: listens on GPUBOT_PROXY_LISTEN; one route matching
  ``*.<domain>`` (``@id`` ``gpubot-domain``) whose ``subroute`` (``@id`` ``gpubot-leases``)
  holds one route per lease (``@id`` ``gpubot-route-<label>``: host ``<label>.<domain>``
  → ``reverse_proxy`` to the lease's loopback port), then a 404 for any other host.
  WebSockets (kernels, terminals) pass through ``reverse_proxy`` as they are; a config
  change closes them only after ``STREAM_CLOSE_DELAY`` (Jupyter reconnects meanwhile).
- TLS: GPUBOT_TLS_CERT/KEY (a ``*.<domain>`` certificate) through ``load_files``; else
  Caddy's internal CA issues a ``*.<domain>`` certificate (the wildcard host above is
  what automatic HTTPS sees). Its root certificate is never put into this host's trust
  store (``install_trust: false``); ``gpubot doctor`` says where to get it.

Routes are added and removed by ``@id`` (each change is one small request; Caddy swaps
its config without dropping connections); ``ensure_server`` merges our server into the
running config with ``If-Match``, so a concurrent change is never overwritten.
"""

from __future__ import annotations

import copy
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SERVER = "gpubot"
DOMAIN_ID = "gpubot-domain"
LEASES_ID = "gpubot-leases"
ROUTE_PREFIX = "gpubot-route-"
CERT_TAG = "gpubot"
STREAM_CLOSE_DELAY = "4h"
ADMIN_ATTEMPTS = 4
NOT_FOUND_BODY = "No lease answers here: it may have ended. In Slack, /gpu mine lists yours.\n"
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)


class ProxyError(Exception):
    """Caddy's admin API refused or cannot be reached; ``str()`` says which."""


class CaddyProxy:
    def __init__(self, admin_url: str, *, domain: str, listen: str,
                 tls_cert: Path | None = None, tls_key: Path | None = None,
                 timeout: float = 10.0) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.domain = domain.strip(".").lower()
        self.listen = listen
        self.tls_files = (tls_cert, tls_key) if tls_cert and tls_key else None
        self.timeout = timeout
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # ------------------------------------------------------------------ port
    def ensure_server(self) -> None:
        for _ in range(3):  # a concurrent change moved the ETag: merge again
            config, etag = self._get_config()
            wanted = self.merged(config)
            if wanted == config:
                return
            try:
                self._request("POST", "/load", wanted, headers={"If-Match": etag} if etag else {})
                return
            except ProxyError as exc:
                if "412" not in str(exc):
                    raise
        raise ProxyError("Caddy's config kept changing while gpubot merged its server into it")

    def add_route(self, label: str, upstream: str) -> None:
        route = self._route(_checked(label), upstream)
        status, _ = self._request("PATCH", f"/id/{ROUTE_PREFIX}{label}", route, missing_ok=True)
        if status != 404:  # replaced in place
            return
        status, _ = self._request("POST", f"/id/{LEASES_ID}/routes", route, missing_ok=True)
        if status == 404:  # Caddy lost our server (restarted without its config)
            self.ensure_server()
            self._request("POST", f"/id/{LEASES_ID}/routes", route)

    def remove_route(self, label: str) -> None:
        self._request("DELETE", f"/id/{ROUTE_PREFIX}{_checked(label)}", missing_ok=True)
        # A route for that host put there by hand (no @id of ours) goes too.
        for index in reversed(self._indexes_of(label)):
            self._request("DELETE", f"/id/{LEASES_ID}/routes/{index}", missing_ok=True)

    def routes(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for route in self._lease_routes():
            label = self._label_of(route)
            if label is not None:
                found[label] = _upstream_of(route)
        return found

    # ------------------------------------------------------------- for doctor
    def serving(self) -> bool:
        """Whether our server is in Caddy's config (ProxyError: Caddy does not answer)."""
        config, _ = self._get_config()
        servers = (((config or {}).get("apps") or {}).get("http") or {}).get("servers") or {}
        return SERVER in servers

    def root_certificate(self) -> str | None:
        """PEM of the internal CA's root, None when a certificate file is configured."""
        if self.tls_files:
            return None
        _, body = self._request("GET", "/pki/ca/local")
        return str(json.loads(body)["root_certificate"])

    # ------------------------------------------------------------- the config
    def merged(self, config: Any) -> dict[str, Any]:
        """``config`` with our server, TLS and PKI settings in place; lease routes kept."""
        out: dict[str, Any] = copy.deepcopy(config) if isinstance(config, dict) else {}
        admin = out.setdefault("admin", {})
        admin.setdefault("listen", urlsplit(self.admin_url).netloc)
        apps = out.setdefault("apps", {})
        servers = apps.setdefault("http", {}).setdefault("servers", {})
        kept = [r for r in self._subroute_routes(servers.get(SERVER)) if isinstance(r, dict)]
        servers[SERVER] = self._server(kept)
        tls = apps.setdefault("tls", {})
        if self.tls_files:
            files = tls.setdefault("certificates", {}).setdefault("load_files", [])
            files[:] = [f for f in files if CERT_TAG not in (f.get("tags") or [])]
            cert, key = self.tls_files
            files.append({"certificate": str(cert), "key": str(key), "tags": [CERT_TAG]})
        else:
            policies = tls.setdefault("automation", {}).setdefault("policies", [])
            policies[:] = [p for p in policies if p.get("subjects") != [f"*.{self.domain}"]]
            policies.insert(0, {"subjects": [f"*.{self.domain}"],
                                "issuers": [{"module": "internal"}]})
        local = (apps.setdefault("pki", {}).setdefault("certificate_authorities", {})
                 .setdefault("local", {}))
        local["install_trust"] = False  # never touch this host's trust store
        return out

    def _server(self, routes: list[dict[str, Any]]) -> dict[str, Any]:
        auto: dict[str, Any] = {"disable_redirects": True}  # no listener on :80
        if self.tls_files:
            auto["disable_certificates"] = True  # the admin's certificate, never ACME
        return {
            "listen": [self.listen],
            "protocols": ["h1", "h2"],
            "automatic_https": auto,
            "tls_connection_policies": [{}],
            "routes": [{
                "@id": DOMAIN_ID, "match": [{"host": [f"*.{self.domain}"]}], "terminal": True,
                "handle": [{"handler": "subroute", "@id": LEASES_ID, "routes": routes},
                           {"handler": "static_response", "status_code": 404,
                            "body": NOT_FOUND_BODY}]}],
        }

    def _route(self, label: str, upstream: str) -> dict[str, Any]:
        return {"@id": f"{ROUTE_PREFIX}{label}",
                "match": [{"host": [f"{label}.{self.domain}"]}],
                "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": upstream}],
                            "stream_close_delay": STREAM_CLOSE_DELAY}]}

    @staticmethod
    def _subroute_routes(server: Any) -> list[Any]:
        for route in (server or {}).get("routes") or []:
            if isinstance(route, dict) and route.get("@id") == DOMAIN_ID:
                for handler in route.get("handle") or []:
                    if handler.get("@id") == LEASES_ID:
                        return list(handler.get("routes") or [])
        return []

    def _lease_routes(self) -> list[dict[str, Any]]:
        status, body = self._request("GET", f"/id/{LEASES_ID}/routes", missing_ok=True)
        if status == 404 or not body.strip():
            return []
        return [r for r in json.loads(body) or [] if isinstance(r, dict)]

    def _label_of(self, route: dict[str, Any]) -> str | None:
        suffix = f".{self.domain}"
        for matcher in route.get("match") or []:
            for host in (matcher or {}).get("host") or []:
                if isinstance(host, str) and host.lower().endswith(suffix):
                    return host[: -len(suffix)].lower()
        ident = str(route.get("@id") or "")
        return ident.removeprefix(ROUTE_PREFIX) if ident.startswith(ROUTE_PREFIX) else None

    def _indexes_of(self, label: str) -> list[int]:
        return [i for i, route in enumerate(self._lease_routes())
                if self._label_of(route) == label]

    # ------------------------------------------------------------ admin calls
    def _get_config(self) -> tuple[Any, str | None]:
        request = urllib.request.Request(f"{self.admin_url}/config/", method="GET")
        with self._open(request) as response:
            return json.loads(response.read() or b"null"), response.headers.get("Etag")

    def _open(self, request: urllib.request.Request) -> Any:
        """Caddy swaps its admin listener on every /load: a refused connection right
        after one is retried a few times before it counts as "does not answer"."""
        for attempt in range(ADMIN_ATTEMPTS):
            try:
                return self._http.open(request, timeout=self.timeout)
            except urllib.error.HTTPError:
                raise
            except (urllib.error.URLError, OSError) as exc:
                if attempt + 1 == ADMIN_ATTEMPTS:
                    raise ProxyError(f"Caddy's admin API at {self.admin_url} does not "
                                     f"answer: {getattr(exc, 'reason', exc)}") from None
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def _request(self, method: str, path: str, body: Any = None, *,
                 headers: dict[str, str] | None = None,
                 missing_ok: bool = False) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.admin_url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  **(headers or {})})
        try:
            with self._open(request) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace").strip()
            if missing_ok and exc.code == 404:
                return 404, text
            raise ProxyError(f"Caddy refused {method} {path}: {exc.code} {text}") from None


def _checked(label: str) -> str:
    if not _LABEL.fullmatch(label):
        raise ValueError(f"{label!r} is not a DNS label")
    return label


def _upstream_of(route: dict[str, Any]) -> str:
    for handler in route.get("handle") or []:
        if handler.get("handler") == "reverse_proxy":
            upstreams = handler.get("upstreams") or [{}]
            return str(upstreams[0].get("dial") or "")
    return ""
