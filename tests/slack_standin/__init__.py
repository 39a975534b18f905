"""A strict, local stand-in for Slack used by gpubot's tests.

Serves the Web API methods the bot uses (``/api/<method>``), response_urls
(``/response/...``) and Socket Mode (``/link/``) on 127.0.0.1, validates everything the
way Slack does (tokens and token types, required arguments and types, Block Kit limits,
trigger_id and response_url rules, 3-second acks) and records every call, message, view
and ack for assertions.

    SlackStandIn(config=None, **overrides)   start()/stop()/with; api_url, env(), advance()
    drive:    slash_command, block_action, view_submission, app_home_opened, event,
              send_envelope, wait_ack, wait_for_connection, request_reconnect,
              disconnect_all; HTTP mode: post_signed, http_slash_command,
              http_block_action, http_event
    inspect:  messages, message, dms, ephemerals, home_view, open_views, view, files, calls,
              api_errors, response_url_posts, envelopes, ack_latencies,
              assert_acks_within, problems, assert_no_problems, wait_for

pytest fixtures live in ``pytest_plugin`` (``slack_standin``, ``slack_standin_config``,
``bolt_socket_app``).
"""

from .config import Channel, StandInConfig, User
from .errors import AckTimeout, NotConnected, SlackError, StandInUsageError
from .records import Call, Envelope, Ephemeral, Message, ViewRecord
from .signing import SignedResponse, post_signed, signature
from .standin import SlackStandIn

__all__ = [
    "AckTimeout", "Call", "Channel", "Envelope", "Ephemeral", "Message", "NotConnected",
    "SignedResponse", "SlackError", "SlackStandIn", "StandInConfig", "StandInUsageError",
    "User", "ViewRecord", "post_signed", "signature",
]
