"""The Block Kit → text renderer over the real blocks the Slack side builds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.containers import ContainerState, ContainerStatus
from bot.domain.gpus import GpuInfo
from bot.domain.lease import Lease, LeaseStatus
from bot.services.views import GpuRow, GpuState, LeaseRow
from handlers import blocks
from handlers.console.render import confirm_question, modal_fields, mrkdwn, render
from handlers.grammar import HELP_EXAMPLES

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
GIB = 1024**3


def lease(**changes: object) -> Lease:
    values: dict[str, object] = dict(
        id=7, user_id="U0BOB00002", duration=timedelta(hours=24), created_at=NOW,
        status=LeaseStatus.ACTIVE, started_at=NOW, expires_at=NOW + timedelta(hours=24))
    values.update(changes)
    return Lease(**values)  # type: ignore[arg-type]


def test_access_message_shows_url_password_and_numbered_buttons() -> None:
    text, body = blocks.access_message(lease(), url="http://gpu.lab:8801/lab",
                                       password="s3cretPassw0rdXYZabc", gpus="GPU 0 (A100)",
                                       extend_by=timedelta(hours=24))
    out = render(text, body)
    lines = out.lines
    assert lines[0] == "✅ Your Jupyter on GPU 0 (A100) is ready (lease 7)"
    assert "URL: http://gpu.lab:8801/lab" in lines  # <url|url> is the address once
    assert "Password: s3cretPassw0rdXYZabc" in lines  # code span: verbatim, no backticks
    assert "Until: 2026-12-02 09:00 UTC" in lines  # <!date^…|fallback>
    assert "Workspace: /workspace (kept after the lease)" in lines
    assert "[1] Extend 1d   [2] Release" in lines  # `2` picks Release
    assert "Open Jupyter: http://gpu.lab:8801/lab" in lines  # a URL button is a link
    assert [(c.label, c.action_id, c.value) for c in out.choices] == [
        ("Extend 1d", blocks.EXTEND, "7"), ("Release", blocks.RELEASE, "7")]
    release = out.choices[1]
    assert release.confirm is not None
    assert confirm_question(release.confirm).startswith("Release this GPU? Jupyter stops.")
    assert lines[-1] == "  Keep the password to yourself. /gpu password sends it again."


def test_approval_request_and_outcome_name_people_by_id() -> None:
    pending = lease(status=LeaseStatus.PENDING_APPROVAL, gpu_count=2, gpu_model="a100",
                    duration=timedelta(days=5))
    out = render(*blocks.approval_request(pending))
    assert out.lines == ["🙋 U0BOB00002 asks for 2 GPUs (a100) for 5d (lease 7).",
                         "[1] Approve   [2] Deny"]
    assert [(c.action_id, c.value) for c in out.choices] == [(blocks.APPROVE, "7"),
                                                             (blocks.DENY, "7")]
    denied = render(*blocks.approval_outcome(pending, approved=False, by="U0ALICE001",
                                             reason="not *this* week"))
    assert denied.lines == ["⛔ U0BOB00002's request for 2 GPUs for 5d (lease 7) was denied "
                            "by U0ALICE001.", "  Reason: not this week"]
    assert not denied.choices  # the decided message has no buttons left


def test_help_lists_every_command_without_markup() -> None:
    out = render(*blocks.help_message("I don't know `frob`."))
    assert out.lines[0] == "I don't know frob. Here is what I can do:"
    for command, what in HELP_EXAMPLES:
        assert f"{command}  {mrkdwn(what)}" in out.lines
    assert "`" not in out.text and "*" not in out.text


def test_status_and_mine_views() -> None:
    gpus = [GpuInfo(uuid="GPU-a", index=0, name="A100", host="h", memory_total_bytes=80 * GIB,
                    memory_used_bytes=3 * GIB, utilization_percent=42),
            GpuInfo(uuid="GPU-b", index=1, name="A100", host="h", healthy=False,
                    health_reason="XID 79")]
    rows = [GpuRow(gpus[0], GpuState.LEASED, lease(gpu_uuids=("GPU-a",))),
            GpuRow(gpus[1], GpuState.UNHEALTHY, None)]
    status = render(*blocks.status_message(rows, NOW))
    assert status.lines == [
        "0 of 2 GPUs free",
        "GPU 0 A100 · U0BOB00002 until 2026-12-02 09:00 UTC (1d left) · util 42% · 3/80 GiB",
        "GPU 1 A100 · 🔴 unhealthy (XID 79) · util ?% · mem ?"]
    mine = render(*blocks.mine_message([LeaseRow(lease(), ("GPU 0",))], NOW,
                                       extend_by=timedelta(hours=4)))
    assert mine.lines == ["Lease 7 · GPU 0 · active · 1d left", "[1] Extend 4h   [2] Release"]
    none = render(*blocks.mine_message([], NOW, extend_by=timedelta(hours=4)))
    assert none.lines == ["You have no open lease. /gpu claim 24h starts one."]


def test_lifecycle_messages() -> None:
    reminder = render(*blocks.reminder_message(lease(), timedelta(minutes=10),
                                               extend_by=timedelta(hours=24)))
    assert reminder.lines[0] == "⏰ Lease 7 ends in 10m. Save your work, or extend it."
    assert [c.label for c in reminder.choices] == ["Extend 1d", "Release"]
    expired = render(*blocks.expired_message(lease(), "/srv/ws/U0BOB00002"))
    assert expired.lines[1] == ("  They are in /srv/ws/U0BOB00002 on the server, and in "
                                "/workspace of your next lease.")
    died = render(*blocks.died_message(lease(), ContainerState(ContainerStatus.EXITED,
                                                               exit_code=137, oom_killed=True)))
    assert "ran out of memory" in died.lines[0] and died.lines[0].startswith("⚠️")


def test_home_view_headers_and_deny_modal_fields() -> None:
    home = blocks.home_view([], [], NOW, extend_by=timedelta(hours=24))
    lines = render("", home["blocks"]).lines
    assert lines[:2] == ["── gpubot ──", "0 of 0 GPUs free. /gpu claim 24h takes one."]
    assert "── Your leases ──" in lines and "No GPUs found." in lines
    modal = blocks.deny_modal(7, "{}")
    [field] = modal_fields(modal)
    assert (field.block_id, field.action_id, field.label, field.optional, field.max_length) \
        == (blocks.DENY_REASON, blocks.DENY_REASON, "Reason (sent to the requester)", False, 500)
    assert render("", modal["blocks"]).lines == []  # inputs are asked, not printed


@pytest.mark.parametrize(("source", "shown"), [
    ("*bold* and _italic_ and ~gone~", "bold and italic and gone"),
    ("snake_case_name and 2*3*4", "snake_case_name and 2*3*4"),  # not emphasis
    ("`*not bold*` stays", "*not bold* stays"),
    ("<@U0BOB00002> and <@U0X|someone>", "U0BOB00002 and U0X"),
    ("<https://x.example/a_b|the docs> or <https://y.example>",
     "the docs (https://x.example/a_b) or https://y.example"),
    ("<mailto:a@b.example|a@b.example>", "a@b.example"),
    ("<#C0GPU|gpu-admins> <!channel> <!here>", "#gpu-admins @channel @here"),
    ("<!date^1700000000^{date_short_pretty}|2023-11-14 22:13 UTC>", "2023-11-14 22:13 UTC"),
    ("a &lt;b&gt; &amp; c", "a <b> & c"),
    (":alarm_clock: at 10:30:00 :no_such_emoji:", "⏰ at 10:30:00 :no_such_emoji:"),
    ("*<@U0BOB00002> asks*", "U0BOB00002 asks"),
    ("```line one\n*two*```", "line one\n*two*"),
])
def test_mrkdwn_to_plain(source: str, shown: str) -> None:
    assert mrkdwn(source) == shown


def test_text_fallback_and_unknown_blocks() -> None:
    assert render("Lease 3 now ends <!date^1|2026-12-01 10:00 UTC>.", []).lines == [
        "Lease 3 now ends 2026-12-01 10:00 UTC."]
    odd = render("x", [{"type": "rich_text", "elements": []}, {"type": "divider"},
                       {"type": "actions", "elements": [{"type": "static_select"}]}])
    assert odd.lines == ["[rich_text block: open Slack to see it]", "─" * 24,
                         "(static_select: open Slack to use it)"]
