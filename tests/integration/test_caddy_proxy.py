"""The Caddy adapter against a real Caddy (no Docker needed): HTTPS from its internal CA
or from the admin's wildcard certificate, a 404 for hosts no lease has, an admin's own
sites kept, and this host's trust store never touched."""

from __future__ import annotations

import datetime as dt
import http.server
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.caddy import NOT_FOUND_BODY
from tests.support.caddy import DOMAIN, RunningCaddy, running_caddy


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = f"hello from upstream, Host={self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def get(caddy: RunningCaddy, host: str, context: ssl.SSLContext,
        patience: float = 15.0) -> tuple[int, str]:
    """GET https://<host>:<port>/ with <host> resolved to 127.0.0.1 (SNI and Host kept).
    Caddy issues its certificate just after a config load: an internal-error alert is
    retried until then."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return _get(caddy, host, context)
        except ssl.SSLError as exc:
            if "INTERNAL_ERROR" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _get(caddy: RunningCaddy, host: str, context: ssl.SSLContext) -> tuple[int, str]:
    import http.client

    conn = http.client.HTTPSConnection("127.0.0.1", caddy.https_port, context=context,
                                       timeout=10)
    conn.sock = context.wrap_socket(
        __import__("socket").create_connection(("127.0.0.1", caddy.https_port), timeout=10),
        server_hostname=host)
    conn.request("GET", "/", headers={"Host": f"{host}:{caddy.https_port}"})
    response = conn.getresponse()
    return response.status, response.read().decode()


def test_https_from_the_internal_ca_reaches_the_route_and_other_hosts_get_404(
        tmp_path: Path, upstream: str) -> None:
    trust_store = Path("/usr/local/share/ca-certificates")
    before = sorted(trust_store.iterdir()) if trust_store.is_dir() else []
    with running_caddy(tmp_path / "caddy") as caddy:
        caddy.proxy.ensure_server()
        caddy.proxy.add_route("0123456789abcdef", upstream)
        context = caddy.ssl_context(tmp_path / "root.pem")
        status, body = get(caddy, f"0123456789abcdef.{DOMAIN}", context)
        assert status == 200 and body.startswith("hello from upstream")
        assert f"Host=0123456789abcdef.{DOMAIN}:{caddy.https_port}" in body  # Jupyter's
        #                                                      origin check needs the Host
        assert get(caddy, f"fedcba9876543210.{DOMAIN}", context) == (404, NOT_FOUND_BODY)
        with pytest.raises(ssl.SSLCertVerificationError):  # not trusted without the root
            get(caddy, f"0123456789abcdef.{DOMAIN}", ssl.create_default_context())
    after = sorted(trust_store.iterdir()) if trust_store.is_dir() else []
    assert after == before, "Caddy must not install its root into the host's trust store"


def _wildcard_cert(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{DOMAIN}")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"*.{DOMAIN}")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / "wildcard.crt", folder / "wildcard.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_the_admins_wildcard_certificate_is_served(tmp_path: Path, upstream: str) -> None:
    cert, key = _wildcard_cert(tmp_path / "tls")
    with running_caddy(tmp_path / "caddy", tls=(cert, key)) as caddy:
        caddy.proxy.ensure_server()
        caddy.proxy.add_route("abcdabcdabcdabcd", upstream)
        context = ssl.create_default_context(cafile=str(cert))
        status, body = get(caddy, f"abcdabcdabcdabcd.{DOMAIN}", context)
        assert status == 200 and body.startswith("hello from upstream")
        assert caddy.proxy.root_certificate() is None  # nothing of Caddy's CA to trust


def test_ensure_server_keeps_an_admins_other_site_and_changes_nothing_when_in_place(
        tmp_path: Path) -> None:
    with running_caddy(tmp_path / "caddy") as caddy:
        caddy.proxy.ensure_server()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        other = (b'{"listen": ["127.0.0.1:0"], "routes": [{"handle": [{"handler": '
                 b'"static_response", "body": "the lab wiki"}]}]}')
        opener.open(urllib.request.Request(
            f"{caddy.admin_url}/config/apps/http/servers/wiki", data=other, method="POST",
            headers={"Content-Type": "application/json"}), timeout=5)
        caddy.proxy.add_route("aaaa", "127.0.0.1:8801")
        before = caddy.config()
        caddy.proxy.ensure_server()
        assert caddy.config() == before  # in place: no reload
        assert "wiki" in before["apps"]["http"]["servers"]
        assert caddy.proxy.routes() == {"aaaa": "127.0.0.1:8801"}


def test_an_admin_route_for_a_lease_host_without_our_id_is_seen_and_removed(
        tmp_path: Path) -> None:
    with running_caddy(tmp_path / "caddy") as caddy:
        caddy.proxy.ensure_server()
        route = (b'{"match": [{"host": ["beefbeefbeefbeef.' + DOMAIN.encode() + b'"]}], '
                 b'"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": '
                 b'"127.0.0.1:8899"}]}]}')
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            urllib.request.Request(f"{caddy.admin_url}/id/gpubot-leases/routes", data=route,
                                   method="POST", headers={"Content-Type": "application/json"}),
            timeout=5)
        assert caddy.proxy.routes() == {"beefbeefbeefbeef": "127.0.0.1:8899"}
        caddy.proxy.remove_route("beefbeefbeefbeef")
        assert caddy.proxy.routes() == {}


def test_a_caddy_that_does_not_answer_is_a_proxy_error(tmp_path: Path) -> None:
    from bot.adapters.caddy import CaddyProxy, ProxyError
    from tests.support.caddy import free_port

    proxy = CaddyProxy(f"http://127.0.0.1:{free_port()}", domain=DOMAIN, listen="127.0.0.1:1")
    with pytest.raises(ProxyError, match="does not answer"):
        proxy.routes()
    with pytest.raises(urllib.error.URLError):  # and nothing listens for the test either
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            proxy.admin_url + "/config/", timeout=2)


def test_a_websocket_passes_through_and_survives_another_leases_route_change(
        tmp_path: Path) -> None:
    """Every route change reloads Caddy's config; an open WebSocket (a kernel, a terminal)
    must not be cut by another lease starting or ending."""
    import asyncio

    import aiohttp
    from aiohttp import web

    async def scenario() -> list[str]:
        async def echo(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for message in ws:
                await ws.send_str(f"echo {message.data}")
            return ws

        app = web.Application()
        app.router.add_get("/ws", echo)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        got = []
        with running_caddy(tmp_path / "caddy") as caddy:
            caddy.proxy.ensure_server()
            caddy.proxy.add_route("aaaa", f"127.0.0.1:{port}")
            context = caddy.ssl_context(tmp_path / "root.pem")
            await asyncio.to_thread(get, caddy, f"aaaa.{DOMAIN}", context)  # the certificate
            connector = aiohttp.TCPConnector(resolver=_Loopback())
            async with aiohttp.ClientSession(connector=connector) as client:
                async with client.ws_connect(f"wss://aaaa.{DOMAIN}:{caddy.https_port}/ws",
                                             ssl=context) as ws:
                    await ws.send_str("one")
                    got.append((await ws.receive(timeout=10)).data)
                    await asyncio.to_thread(caddy.proxy.add_route, "bbbb", "127.0.0.1:9")
                    await asyncio.to_thread(caddy.proxy.remove_route, "bbbb")
                    await ws.send_str("two")
                    got.append((await ws.receive(timeout=10)).data)
        await runner.cleanup()
        return got

    assert asyncio.run(scenario()) == ["echo one", "echo two"]


class _Loopback:
    """aiohttp resolver: lease host names are 127.0.0.1 for the test client."""

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict]:
        import socket as _socket

        return [{"hostname": host, "host": "127.0.0.1", "port": port,
                 "family": _socket.AF_INET, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass
