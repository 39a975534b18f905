"""Running code in a lease's Jupyter kernel the way JupyterLab does: REST to start the
kernel, then an ``execute_request`` on the kernel's WebSocket (Jupyter's JSON protocol)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime

import aiohttp
import requests

from tests.support.jupyter import login, session


class Kernel:
    """A logged-in session and one kernel; ``run`` sends code and returns at once."""

    def __init__(self, base_url: str, password: str) -> None:
        self.base_url, self.http = base_url, session()
        assert login(self.http, base_url, password).status_code == 302
        xsrf = self.http.cookies.get("_xsrf") or ""
        started = self.http.post(f"{base_url}/api/kernels", json={"name": "python3"},
                                 headers={"X-XSRFToken": xsrf}, timeout=30)
        assert started.status_code == 201, started.text
        self.id = started.json()["id"]
        self._threads: list[threading.Thread] = []

    def run(self, code: str, *, wait: bool = False) -> None:
        """Execute ``code``; with ``wait``, until the kernel says it is idle again."""
        thread = threading.Thread(target=asyncio.run, args=(self._execute(code),), daemon=True)
        thread.start()
        self._threads.append(thread)
        if wait:
            thread.join(60)

    async def _execute(self, code: str) -> None:
        ws_url = self.base_url.replace("http", "ws", 1) + f"/api/kernels/{self.id}/channels"
        # aiohttp's cookie jar ignores cookies of IP hosts: send the header itself
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
        msg_id = uuid.uuid4().hex
        message = {"header": {"msg_id": msg_id, "msg_type": "execute_request",
                              "session": uuid.uuid4().hex, "username": "test",
                              "version": "5.3", "date": datetime.now(UTC).isoformat()},
                   "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                   "content": {"code": code, "silent": False, "store_history": False,
                               "user_expressions": {}, "allow_stdin": False}}
        async with aiohttp.ClientSession() as client:
            async with client.ws_connect(ws_url, headers={"Origin": self.base_url,
                                                          "Cookie": cookie}) as ws:
                await ws.send_str(json.dumps(message))
                async for frame in ws:
                    data = json.loads(frame.data)
                    if (data.get("parent_header", {}).get("msg_id") == msg_id
                            and data.get("msg_type") == "status"
                            and data["content"].get("execution_state") == "idle"):
                        return

    def state(self) -> str:
        return requests.Session.get(self.http, f"{self.base_url}/api/kernels/{self.id}",
                                    timeout=10).json()["execution_state"]
