"""Logging in to a running Jupyter the way a browser does (shared by Docker and e2e tests)."""

from __future__ import annotations

import requests


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never through a proxy to 127.0.0.1
    return s


def login(s: requests.Session, base_url: str, password: str) -> requests.Response:
    """GET /login for the ``_xsrf`` cookie and field, then POST the password."""
    page = s.get(f"{base_url}/login", timeout=10)
    assert page.status_code == 200
    xsrf = s.cookies.get("_xsrf")
    assert xsrf, "the login page sets the _xsrf cookie"
    assert 'name="_xsrf"' in page.text
    return s.post(f"{base_url}/login", data={"password": password, "_xsrf": xsrf},
                  allow_redirects=False, timeout=10)


def logs_in(base_url: str, password: str) -> bool:
    """True when the password opens /api/status (200) and it was closed before (403)."""
    s = session()
    if s.get(f"{base_url}/api/status", timeout=10).status_code != 403:
        return False
    answer = login(s, base_url, password)
    return answer.status_code == 302 and s.get(f"{base_url}/api/status",
                                                timeout=10).status_code == 200
