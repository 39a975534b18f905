"""`/gpu key add|list|remove` and the access DM's SSH part through Socket Mode (the real
handlers, services and Slack client against the Slack stand-in; containers are fakes). A
private key pasted by mistake is refused, called compromised, and reaches neither a
Slack message nor the log, at DEBUG."""

from __future__ import annotations

import io
import logging
import re
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from bot import logs
from bot.db.repo import LeaseRepo
from bot.settings import Settings
from handlers.app import register_all
from handlers.context import HandlerContext
from handlers.notifier import SlackNotifier, web_client
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import build_harness, make_policy
from tests.slack.conftest import ALICE, BOB, Bot


def public_line(comment: str = "bob@laptop") -> str:
    return ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() \
        + f" {comment}"


def ephemeral(bot: Bot, user: str, word: str) -> str:
    return bot.wait(lambda: next((t for t in reversed(bot.ephemeral_texts(user)) if word in t),
                                 None))


def test_key_add_list_remove(bot: Bot) -> None:
    line = public_line()
    bot.gpu(BOB, f"key add {line}")
    added = ephemeral(bot, BOB, "Added")
    fingerprint = bot.kit.gpubot.use_cases.keys.list(user_id=BOB)[0].fingerprint
    assert "ed25519" in added and fingerprint in added and "bob@laptop" in added
    bot.gpu(BOB, "key list")
    listed = ephemeral(bot, BOB, "Your SSH keys")
    assert re.search(rf"`1`\s+ed25519\s+`{re.escape(fingerprint)}`\s+bob@laptop", listed)
    bot.gpu(BOB, "key remove 1")
    assert fingerprint in ephemeral(bot, BOB, "Removed key 1")
    bot.gpu(BOB, "key")
    assert "/gpu key add" in ephemeral(bot, BOB, "no SSH keys")
    short = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    bot.gpu(BOB, "key add " + short.public_bytes(serialization.Encoding.OpenSSH,
                                                 serialization.PublicFormat.OpenSSH).decode())
    assert "at least 3072" in ephemeral(bot, BOB, "bits")
    bot.slack.assert_no_problems()


def test_a_pasted_private_key_is_refused_and_never_echoed_or_logged(
        bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    logs.configure("DEBUG")
    try:
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption()).decode()
        bot.gpu(BOB, f"key add {pem}")
        refused = ephemeral(bot, BOB, "private")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert "compromised" in refused and "ssh-keygen -t ed25519" in refused
    secret = pem.splitlines()[2]  # a line of the key's body
    everything = [m.all_text for m in bot.slack.messages()] + bot.ephemeral_texts(BOB)
    assert not [t for t in everything if secret in t]
    assert out.getvalue() and secret not in out.getvalue()
    assert bot.kit.gpubot.use_cases.keys.list(user_id=BOB) == []


@pytest.fixture
def ssh_bot(db, slack_standin, bolt_socket_app) -> Bot:
    client = web_client(slack_standin.bot_token, slack_standin.api_url)
    inventory = FakeInventory()
    notifier = SlackNotifier(client, admin_channel="C0GPUADMIN", extend_by=timedelta(hours=24),
                             gpus=inventory.list_gpus)
    kit = build_harness(db, notifier=notifier, inventory=inventory, ssh=True,
                        settings=Settings(GPUBOT_ADMINS=ALICE),
                        policy=make_policy(admins=frozenset({ALICE})))
    ctx = HandlerContext(kit.gpubot.use_cases, notifier)
    bolt_socket_app(lambda app: register_all(app, ctx))
    return Bot(slack_standin, kit, ctx)


def test_the_access_dm_holds_the_ssh_command_config_and_host_key(ssh_bot: Bot) -> None:
    bot = ssh_bot
    bot.gpu(BOB, "claim 24h")  # no key on file yet
    first = bot.wait(lambda: next((m for m in bot.slack.dms(BOB) if "Password" in m.all_text),
                                  None))
    lease = bot.kit.res.db.run(lambda s: LeaseRepo(s).get(1))  # as stored
    command = f"ssh -p {lease.ssh_port} {BOB.lower()}@gpu.lab.example"
    assert command in first.text and command in first.all_text  # the text fallback too
    assert "no SSH key on file" in first.all_text and "/gpu key add" in first.all_text
    assert lease.host_key_fingerprint in first.all_text
    assert f"Host gpubot-1\n    HostName gpu.lab.example\n    Port {lease.ssh_port}\n" \
           f"    User {BOB.lower()}\n    HostKeyAlias gpubot-1" in first.all_text
    assert re.search(r"gpubot-1 ssh-ed25519 AAAA[0-9A-Za-z+/=]+", first.all_text)
    bot.gpu(BOB, f"key add {public_line()}")
    ephemeral(bot, BOB, "Added")
    assert bot.kit.runtime.authorized_keys[1].startswith("restrict,")  # the running lease
    bot.gpu(BOB, "password")
    again = bot.wait(lambda: [m for m in bot.slack.dms(BOB) if "Password" in m.all_text][1:])
    assert "no SSH key on file" not in again[0].all_text and command in again[0].all_text
    bot.slack.assert_no_problems()
