"""The stand-in's own table of facts about the Slack Web API methods it serves.

For each method: the token types it accepts, its required arguments, the type of every
argument the stand-in checks, the documented error codes it may answer with, and which
error Slack gives when a required argument is missing. ``COMMON_ERRORS`` are the codes
Slack documents once for every method (auth, argument and transport errors).

The table is cross-checked against Slack's published method reference
(``/work/shared/slack-api-ref/methods/*.json``) by ``test_standin_facts.py``; keep both
in step when a method is added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ArgType = Literal["string", "boolean", "blocks", "attachments", "view", "integer", "files"]
TokenType = Literal["bot", "app"]

# Errors Slack documents as possible for every Web API method.
COMMON_ERRORS: frozenset[str] = frozenset(
    {
        "access_denied", "account_inactive", "deprecated_endpoint", "ekm_access_denied",
        "enterprise_is_restricted", "fatal_error", "internal_error", "invalid_arg_name",
        "invalid_arguments", "invalid_array_arg", "invalid_auth", "invalid_charset",
        "invalid_form_data", "invalid_post_type", "is_bot", "method_deprecated",
        "missing_argument", "missing_post_type", "missing_scope", "no_permission",
        "not_allowed_token_type", "not_authed", "org_login_required", "ratelimited",
        "request_timeout", "service_unavailable", "team_access_not_granted",
        "team_added_to_org", "token_expired", "token_revoked", "two_factor_setup_required",
        "unknown_method", "invalid_json", "json_not_object",
    }
)


@dataclass(frozen=True)
class MethodSpec:
    """What the stand-in enforces for one Web API method."""

    name: str
    required: tuple[str, ...]
    arg_types: Mapping[str, ArgType]
    errors: frozenset[str]
    token_types: frozenset[TokenType] = frozenset({"bot"})
    missing_arg_errors: Mapping[str, str] = field(default_factory=dict)
    post_only: bool = False

    def all_errors(self) -> frozenset[str]:
        """Every code the stand-in may answer for this method."""
        return self.errors | frozenset(self.missing_arg_errors.values()) | frozenset(
            {"not_authed", "invalid_auth", "not_allowed_token_type", "invalid_arguments"}
        )


_MSG_ARGS: dict[str, ArgType] = {
    "channel": "string",
    "text": "string",
    "blocks": "blocks",
    "attachments": "attachments",
    "thread_ts": "string",
    "as_user": "boolean",
    "link_names": "boolean",
    "parse": "string",
    "icon_emoji": "string",
    "icon_url": "string",
    "username": "string",
    "metadata": "string",
    "markdown_text": "string",
}

METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in (
        MethodSpec("auth.test", ("token",), {}, frozenset()),
        MethodSpec(
            "apps.connections.open",
            ("token",),
            {},
            frozenset({"invalid_auth", "missing_args", "insecure_request"}),
            token_types=frozenset({"app"}),
            post_only=True,
        ),
        MethodSpec(
            "chat.postMessage",
            ("token", "channel"),
            {**_MSG_ARGS, "mrkdwn": "boolean", "reply_broadcast": "boolean",
             "unfurl_links": "boolean", "unfurl_media": "boolean"},
            frozenset({"channel_not_found", "no_text", "invalid_blocks",
                       "invalid_blocks_format", "not_in_channel", "markdown_text_conflict"}),
            missing_arg_errors={"channel": "channel_not_found"},
        ),
        MethodSpec(
            "chat.postEphemeral",
            ("token", "user", "channel"),
            {**_MSG_ARGS, "user": "string"},
            frozenset({"channel_not_found", "no_text", "invalid_blocks", "invalid_blocks_format",
                       "msg_too_long", "user_not_in_channel", "markdown_text_conflict"}),
            missing_arg_errors={"channel": "channel_not_found"},
        ),
        MethodSpec(
            "chat.update",
            ("token", "ts", "channel"),
            {k: v for k, v in _MSG_ARGS.items()
             if k not in {"thread_ts", "icon_emoji", "icon_url", "username"}}
            | {"ts": "string", "reply_broadcast": "boolean"},
            frozenset({"channel_not_found", "message_not_found", "no_text", "invalid_blocks",
                       "invalid_blocks_format", "cant_update_message",
                       "markdown_text_conflict"}),
            missing_arg_errors={"channel": "channel_not_found", "ts": "message_not_found"},
        ),
        MethodSpec(
            "chat.delete",
            ("token", "ts", "channel"),
            {"channel": "string", "ts": "string", "as_user": "boolean"},
            frozenset({"channel_not_found", "message_not_found", "cant_delete_message"}),
            missing_arg_errors={"channel": "channel_not_found", "ts": "message_not_found"},
        ),
        MethodSpec(
            "conversations.open",
            ("token",),
            {"channel": "string", "users": "string", "return_im": "boolean",
             "prevent_creation": "boolean"},
            frozenset({"channel_not_found", "user_not_found", "users_list_not_supplied",
                       "too_many_users", "not_enough_users", "user_disabled"}),
        ),
        MethodSpec(
            "views.open",
            ("token", "view"),
            {"view": "view", "trigger_id": "string", "interactivity_pointer": "string"},
            frozenset({"expired_trigger_id", "invalid_trigger_id", "exchanged_trigger_id",
                       "duplicate_external_id", "view_too_large"}),
        ),
        MethodSpec(
            "views.publish",
            ("token", "user_id", "view"),
            {"user_id": "string", "view": "view", "hash": "string"},
            frozenset({"hash_conflict", "duplicate_external_id", "view_too_large",
                       "not_allowed_token_type"}),
        ),
        MethodSpec(
            "views.update",
            ("token", "view"),
            {"view": "view", "view_id": "string", "external_id": "string", "hash": "string"},
            frozenset({"not_found", "hash_conflict", "duplicate_external_id", "view_too_large"}),
        ),
        MethodSpec(
            "views.push",
            ("token", "view"),
            {"view": "view", "trigger_id": "string", "interactivity_pointer": "string"},
            frozenset({"expired_trigger_id", "invalid_trigger_id", "exchanged_trigger_id",
                       "not_found", "push_limit_reached", "duplicate_external_id",
                       "view_too_large"}),
        ),
        MethodSpec(  # the external upload flow, step 1 (methods_files.py)
            "files.getUploadURLExternal",
            ("token", "length", "filename"),
            {"length": "integer", "filename": "string", "alt_txt": "string",
             "snippet_type": "string"},
            frozenset({"alt_txt_too_large", "missing_argument"}),
            post_only=True,
        ),
        MethodSpec(  # step 3, after the bytes went to the upload URL
            "files.completeUploadExternal",
            ("token", "files"),
            {"files": "files", "channel_id": "string", "channels": "string",
             "thread_ts": "string", "initial_comment": "string", "blocks": "string"},
            frozenset({"file_not_found", "channel_not_found", "not_in_channel",
                       "invalid_blocks"}),
            post_only=True,
        ),
        MethodSpec(
            "users.info",
            ("token", "user"),
            {"user": "string", "include_locale": "boolean"},
            frozenset({"user_not_found"}),
            missing_arg_errors={"user": "user_not_found"},
        ),
    )
}
