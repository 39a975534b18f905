"""At GPUBOT_LOG_LEVEL=DEBUG no password, hash or token reaches the log (issue 11.3).

slack_sdk logs every Web API request and response body at DEBUG (the access DM's blocks
hold the password, and chat.postMessage echoes them back), and the Socket Mode client
logs each envelope, a click on the access DM's buttons carrying that DM again. The real
WebClient and Socket Mode client talk to the Slack stand-in; all log output is read."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot import logs
from bot.domain.gpus import GpuInfo
from bot.domain.lease import Lease, LeaseStatus
from bot.ports import AccessInfo
from bot.security import generate_password, hash_jupyter_password
from handlers.blocks import EXTEND
from handlers.notifier import SlackNotifier, web_client
from tests.slack_standin import SlackStandIn

USER = "U0ALICE001"


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """gpubot's own logging set-up at DEBUG, writing into a buffer; restored after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)  # logs.configure's StreamHandler writes here
    logs.configure("DEBUG")
    try:
        yield out
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_debug_logs_hold_no_password_hash_or_token(log_output: io.StringIO,
                                                   slack_standin: SlackStandIn,
                                                   bolt_socket_app) -> None:
    clicks: list[str] = []

    def register(app) -> None:  # noqa: ANN001 - a slack_bolt App
        @app.action(EXTEND)
        def extend(ack, body) -> None:  # noqa: ANN001
            ack()
            clicks.append(body["actions"][0]["value"])

    bolt_socket_app(register)  # Socket Mode: apps.connections.open with the app token
    client = web_client(slack_standin.bot_token, slack_standin.api_url)
    gpu = GpuInfo(uuid="GPU-0", index=0, name="NVIDIA H100 80GB HBM3", host="h1")
    notifier = SlackNotifier(client, admin_channel=None, extend_by=timedelta(hours=24),
                             gpus=lambda: [gpu])
    now = datetime.now(UTC)
    lease = Lease(user_id=USER, duration=timedelta(hours=24), created_at=now, id=7,
                  status=LeaseStatus.ACTIVE, started_at=now, expires_at=now + timedelta(hours=24),
                  gpu_uuids=("GPU-0",))
    password = generate_password()
    hashed = hash_jupyter_password(password)
    notifier.access_ready(lease, AccessInfo(url="http://gpu.lab.example:8800/lab",
                                            password=password))
    dm = slack_standin.dms(USER)[-1]
    assert password in str(dm.blocks)  # it went out, in the DM's blocks
    slack_standin.block_action(USER, EXTEND, "7", message_ts=dm.ts, channel=USER)
    slack_standin.wait_for(lambda: clicks, timeout=5)
    logging.getLogger("gpubot.test").debug("starting with env %s",
                                           {"JUPYTER_PASSWORD_HASH": hashed})

    text = log_output.getvalue()
    assert "chat.postMessage" in text and "DEBUG" in text  # DEBUG really was on
    salt_and_digest = hashed.rsplit("$", 2)[-2:]
    for secret in (password, hashed, *salt_and_digest, slack_standin.bot_token,
                   slack_standin.app_token):
        assert secret not in text, f"{secret[:6]}… is in the log"
