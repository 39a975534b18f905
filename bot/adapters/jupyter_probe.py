"""The lease's Jupyter, asked how busy it is through its REST API, as a browser would.

Logs in once per lease with the lease's password (``/login``: the ``_xsrf`` cookie and
field, then the password) and keeps that session's cookies. Each probe reads
``/api/kernels`` (a kernel whose ``execution_state`` is ``busy`` is executing) and
``/api/status`` (``last_activity``: the latest of kernel messages, terminals and API
use). Both are asked with ``no_track_activity``, and ``/api/status`` never counts as
activity itself, so probing never keeps a lease alive. jupyterhub-idle-culler reads the
same two fields.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any

from bot.domain.idle import JupyterActivity
from bot.domain.lease import Lease

log = logging.getLogger(__name__)
TIMEOUT_S = 3.0


# Jupyter is reached directly (this host, a cluster node): never through a proxy from the
# environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, *, timeout: float = 2.0) -> int | str:
    """The HTTP status of GET ``url`` (Jupyter's /login: is it up?), or why there was none
    (not up yet): both engines' ``wait_ready`` ask this."""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:  # refused, reset, timed out
        return str(exc)


class HttpJupyterProbe:
    def __init__(self, *, host: str, timeout: float = TIMEOUT_S) -> None:
        self.host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self.timeout = timeout
        self._sessions: dict[int, urllib.request.OpenerDirector] = {}
        self._lock = threading.Lock()

    def activity(self, lease: Lease, password: str) -> JupyterActivity | None:
        if not lease.port or lease.id is None:
            return None
        base = f"http://{lease.address or self.host}:{lease.port}"
        try:
            opener = self._session(lease.id, base, password)
            kernels = self._get(opener, f"{base}/api/kernels?no_track_activity=1")
            status = self._get(opener, f"{base}/api/status?no_track_activity=1")
        except (OSError, ValueError, urllib.error.URLError) as exc:
            log.debug("lease %s: Jupyter did not answer the idle probe: %s", lease.id, exc)
            self.forget(lease.id)  # log in afresh next time (a restarted Jupyter)
            return None
        busy = any(k.get("execution_state") == "busy" for k in kernels or [])
        return JupyterActivity(busy=busy, last_activity=_when(status.get("last_activity")))

    def forget(self, lease_id: int) -> None:
        with self._lock:
            self._sessions.pop(lease_id, None)

    # ------------------------------------------------------------------ plumbing
    def _session(self, lease_id: int, base: str, password: str) -> urllib.request.OpenerDirector:
        with self._lock:
            known = self._sessions.get(lease_id)
        if known is not None:
            return known
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),  # never a proxy
                                             urllib.request.HTTPCookieProcessor(jar))
        opener.open(f"{base}/login", timeout=self.timeout).read()
        xsrf = next((c.value for c in jar if c.name == "_xsrf"), None)
        if not xsrf:
            raise ValueError("the login page set no _xsrf cookie")
        form = urllib.parse.urlencode({"password": password, "_xsrf": xsrf}).encode()
        opener.open(urllib.request.Request(f"{base}/login", data=form, method="POST"),
                    timeout=self.timeout).read()
        with self._lock:
            self._sessions[lease_id] = opener
        return opener

    def _get(self, opener: urllib.request.OpenerDirector, url: str) -> Any:
        with opener.open(url, timeout=self.timeout) as answer:
            return json.loads(answer.read().decode())


def _when(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
