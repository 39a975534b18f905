"""The stand-in's external file upload flow: what slack_sdk's ``files_upload_v2`` does
works end to end, and each step refuses what Slack's reference says it refuses."""

from __future__ import annotations

import dataclasses
import urllib.error
import urllib.request

import pytest
from slack_sdk import WebClient

from tests.slack_standin import Channel, SlackStandIn, StandInConfig
from tests.slack_standin_tests.test_standin_webapi import bot, error_of

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 56
ADMINS, GENERAL, OUTSIDE = "C0GPUADMIN", "C0GENERAL1", "C0RANDOM01"


@pytest.fixture
def slack_standin_config() -> StandInConfig:
    base = StandInConfig()
    return dataclasses.replace(base, channels=(*base.channels, Channel(
        OUTSIDE, "random", bot_is_member=False)))


@pytest.fixture
def client(slack_standin: SlackStandIn) -> WebClient:
    return WebClient(token=slack_standin.bot_token, base_url=slack_standin.api_url)


def post(url: str, data: bytes) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"),
                                    timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_files_upload_v2_shares_the_bytes_in_the_channel(slack_standin: SlackStandIn,
                                                         client: WebClient) -> None:
    done = client.files_upload_v2(channel=ADMINS, file=PNG, filename="chart.png",
                                  title="Usage", alt_txt="a chart", initial_comment="*hi*")
    assert [c.method for c in slack_standin.calls()] == [
        "files.getUploadURLExternal", "files.completeUploadExternal"]
    [shared] = slack_standin.files(ADMINS)
    assert shared.data == PNG and shared.mimetype == "image/png"
    assert (shared.filename, shared.title, shared.alt_txt) == ("chart.png", "Usage", "a chart")
    assert done["file"]["id"] == shared.id
    [message] = slack_standin.messages(ADMINS)
    assert message.files == [shared.id] and message.text == "*hi*"
    assert slack_standin.files(GENERAL) == []
    slack_standin.assert_no_problems()


def test_step_one_checks_length_and_alt_text(slack_standin: SlackStandIn,
                                             client: WebClient) -> None:
    ask = client.files_getUploadURLExternal
    assert error_of(ask, filename="x.png", length=0) == "missing_argument"
    assert error_of(ask, filename="x.png", length=3, alt_txt="a" * 1001) == "alt_txt_too_large"
    assert bot(slack_standin, "files.getUploadURLExternal", filename="x.png",
               length="many")["error"] == "invalid_arguments"
    assert bot(slack_standin, "files.getUploadURLExternal", length=3)["error"] == \
        "invalid_arguments"  # no filename


def test_an_upload_url_works_once_and_the_length_must_match(slack_standin: SlackStandIn,
                                                            client: WebClient) -> None:
    ticket = client.files_getUploadURLExternal(filename="x.png", length=len(PNG))
    assert post(ticket["upload_url"], PNG) == (200, f"OK - {len(PNG)}")
    assert post(ticket["upload_url"], PNG)[0] == 404  # used
    assert post(slack_standin.base_url + "upload/v1/nonsense", PNG)[0] == 404
    short = client.files_getUploadURLExternal(filename="y.png", length=100)
    assert post(short["upload_url"], PNG)[0] == 200
    assert any("announced 100" in p for p in slack_standin.problems())


def test_completing_needs_an_uploaded_file_and_a_channel_the_bot_is_in(
        slack_standin: SlackStandIn, client: WebClient) -> None:
    complete = client.files_completeUploadExternal
    announced = client.files_getUploadURLExternal(filename="x.png", length=len(PNG))
    files = [{"id": announced["file_id"], "title": "x"}]
    assert error_of(complete, files=files, channel_id=ADMINS) == "file_not_found"  # no bytes
    post(announced["upload_url"], PNG)
    assert error_of(complete, files=[{"id": "F0NOSUCH000"}]) == "file_not_found"
    assert error_of(complete, files=files, channel_id=OUTSIDE) == "not_in_channel"
    assert error_of(complete, files=files, channel_id="C0NOWHERE0") == "channel_not_found"
    assert bot(slack_standin, "files.completeUploadExternal", files="[]")["error"] == \
        "invalid_arguments"
    assert bot(slack_standin, "files.completeUploadExternal",
               files=[{"id": announced["file_id"], "highlight_type": "x" * 11}])["error"] \
        == "invalid_arguments"
    assert complete(files=files, channel_id=GENERAL)["files"][0]["id"] == announced["file_id"]
    assert error_of(complete, files=files, channel_id=GENERAL) == "file_not_found"  # done
    assert [f.id for f in slack_standin.files(GENERAL)] == [announced["file_id"]]


def test_bad_blocks_are_refused_without_a_comment(slack_standin: SlackStandIn,
                                                  client: WebClient) -> None:
    announced = client.files_getUploadURLExternal(filename="x.png", length=len(PNG))
    post(announced["upload_url"], PNG)
    files = [{"id": announced["file_id"]}]
    assert error_of(client.files_completeUploadExternal, files=files, channel_id=GENERAL,
                    blocks='[{"type": "nonsense"}]') == "invalid_blocks"
