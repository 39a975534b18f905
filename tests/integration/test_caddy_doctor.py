"""`gpubot doctor`'s proxy checks against a real Caddy: the admin API, our server in its
config, and the certificate browsers will see (internal CA root, or the admin's file)."""

from __future__ import annotations

from pathlib import Path

from bot import doctor_access as acc
from bot.adapters.caddy import CaddyProxy
from tests.integration.test_caddy_proxy import _wildcard_cert
from tests.support.caddy import DOMAIN, free_port, running_caddy


def test_no_proxy_is_skipped_and_a_silent_admin_api_fails() -> None:
    assert acc.proxy(None, None).ok and "LAN only" in acc.proxy(None, None).detail
    silent = CaddyProxy(f"http://127.0.0.1:{free_port()}", domain=DOMAIN, listen="127.0.0.1:1")
    result = acc.proxy(silent, DOMAIN)
    assert not result.ok and "does not answer" in result.detail and "gpubot-caddy" in result.fix


def test_caddy_serving_our_domain_passes_and_points_to_its_root_certificate(
        tmp_path: Path) -> None:
    with running_caddy(tmp_path / "caddy") as caddy:
        before = acc.proxy(caddy.proxy, DOMAIN)
        assert not before.ok and "does not serve" in before.detail  # Caddy up, not ours yet
        caddy.proxy.ensure_server()
        caddy.proxy.add_route("aaaa", "127.0.0.1:8801")
        after = acc.proxy(caddy.proxy, DOMAIN)
        assert after.ok and "1 lease route" in after.detail
        root = tmp_path / "caddy" / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        cert = acc.certificate(caddy.proxy, DOMAIN, root)
        assert cert.ok, cert
        assert "Caddy Local Authority" in cert.detail and str(root) in cert.detail
        assert root.read_text() == caddy.proxy.root_certificate()  # the file it points to


def test_the_admins_certificate_must_cover_the_domain(tmp_path: Path) -> None:
    cert, key = _wildcard_cert(tmp_path / "tls")
    good = CaddyProxy("http://127.0.0.1:1", domain=DOMAIN, listen=":1", tls_cert=cert,
                      tls_key=key)
    assert acc.certificate(good, DOMAIN).ok
    other = CaddyProxy("http://127.0.0.1:1", domain="other.example", listen=":1",
                       tls_cert=cert, tls_key=key)
    result = acc.certificate(other, "other.example")
    assert not result.ok and "not *.other.example" in result.detail
    missing = CaddyProxy("http://127.0.0.1:1", domain=DOMAIN, listen=":1",
                         tls_cert=tmp_path / "none.crt", tls_key=key)
    assert not acc.certificate(missing, DOMAIN).ok
