"""What Slack does with the payload of a Socket Mode ack.

* slash command: a ``text``/``blocks`` payload becomes a message for the invoking user
  (ephemeral unless ``response_type`` is ``in_channel``), validated like chat.postMessage;
* view_submission: no payload closes the submitted view; ``response_action`` ``errors``
  keeps it open (keys must be input block_ids), ``update``/``push`` replace/push a view,
  ``clear`` closes the whole stack.

Anything Slack would refuse is recorded on the envelope and in ``Store.problems``.
"""

from __future__ import annotations

from typing import Any

from .blockkit import validate_view
from .errors import SlackError
from .methods_views import push_modal, replace_view
from .records import Envelope, ResponseUrl
from .response_url import apply_response
from .socket_mode import AckCallback
from .store import Store


def _flag(store: Store, env: Envelope, text: str) -> None:
    env.problems.append(text)
    store.problem(f"ack of {env.type} {env.envelope_id}: {text}")


def slash_command_ack(store: Store, user_id: str, channel_id: str) -> AckCallback:
    """Post the ack payload of a slash command like Slack does."""

    def on_ack(env: Envelope) -> None:
        body = env.ack_payload
        if not body:
            return
        ru = ResponseUrl("ack", "", user_id, channel_id, store.now(), None)
        try:
            apply_response(store, ru, body, "ack")
        except SlackError as err:
            _flag(store, env, f"{err.code} {err.extra.get('errors', '')}")

    return on_ack


def _input_block_ids(view: dict[str, Any]) -> set[str]:
    return {str(b.get("block_id")) for b in view.get("blocks", []) if b.get("type") == "input"}


def view_submission_ack(store: Store, user_id: str, view_id: str) -> AckCallback:
    """Apply ``response_action`` of a view_submission ack to the user's modal stack."""

    def on_ack(env: Envelope) -> None:
        body: dict[str, Any] = env.ack_payload or {}
        action = body.get("response_action")
        stack = store.modal_stacks.get(user_id, [])
        rec = store.views[view_id]
        if action is None:
            rec.closed = True
            if view_id in stack:
                stack.remove(view_id)
        elif action == "errors":
            errors = body.get("errors")
            if not isinstance(errors, dict) or not errors:
                _flag(store, env, "response_action errors needs a non-empty errors object")
            elif unknown := sorted(set(errors) - _input_block_ids(rec.view)):
                _flag(store, env, f"errors for unknown input blocks {unknown}")
            rec.view["errors"] = errors
        elif action in ("update", "push"):
            problems = validate_view(body.get("view"), allowed_types=("modal",))
            if problems:
                _flag(store, env, f"invalid view in response_action {action}: {problems}")
            elif action == "update":
                replace_view(store, rec, body["view"])
            else:
                try:
                    push_modal(store, user_id, body["view"])
                except SlackError as err:
                    _flag(store, env, err.code)
        elif action == "clear":
            for vid in stack:
                store.views[vid].closed = True
            stack.clear()
        else:
            _flag(store, env, f"unknown response_action {action!r}")

    return on_ack
