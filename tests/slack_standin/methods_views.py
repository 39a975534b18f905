"""Web API methods for surfaces: views.open, views.push, views.update, views.publish.

Modals live in a per-user stack (at most 3 views, like Slack); each ``views.open`` and
``views.push`` consumes a trigger_id. The home tab is one view per user.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from .blockkit import validate_view
from .errors import SlackError
from .records import ViewRecord
from .store import Store
from .webapi import Ctx, Handler

MAX_VIEW_BYTES = 250_000
MAX_STACK = 3


def _checked(view: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    if len(json.dumps(view)) > MAX_VIEW_BYTES:
        raise SlackError("view_too_large")
    problems = validate_view(view, allowed_types=allowed)
    if problems:
        raise SlackError("invalid_arguments", problems)
    return view


def _unique_external_id(store: Store, view: dict[str, Any], keep: str | None = None) -> None:
    ext = view.get("external_id")
    if ext and any(r.view.get("external_id") == ext and r.id != keep and not r.closed
                   for r in store.views.values()):
        raise SlackError("duplicate_external_id")


def full_view(store: Store, view: dict[str, Any], view_id: str, root: str | None,
              previous: str | None) -> dict[str, Any]:
    """The view object as Slack stores and returns it."""
    cfg = store.config
    return {
        "id": view_id, "team_id": cfg.team_id, "type": view["type"],
        "title": view.get("title"), "close": view.get("close"), "submit": view.get("submit"),
        "blocks": view.get("blocks", []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""), "state": {"values": {}},
        "hash": f"{int(store.now())}.{secrets.token_hex(4)}",
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
        "root_view_id": root or view_id, "previous_view_id": previous,
        "app_id": cfg.app_id, "external_id": view.get("external_id", ""),
        "app_installed_team_id": cfg.team_id, "bot_id": cfg.bot_id,
    }


def _trigger(args: dict[str, Any]) -> str:
    tid = args.get("trigger_id") or args.get("interactivity_pointer")
    if not tid:
        raise SlackError("invalid_arguments", ["missing required field: trigger_id"])
    return str(tid)


def open_modal(store: Store, user: str, view: dict[str, Any]) -> ViewRecord:
    """Start a new modal stack for ``user`` (closing any open one)."""
    for vid in store.modal_stacks.get(user, []):
        store.views[vid].closed = True
    vid = store.new_id("V", 11)
    rec = ViewRecord(vid, user, full_view(store, view, vid, None, None))
    store.views[vid] = rec
    store.modal_stacks[user] = [vid]
    return rec


def push_modal(store: Store, user: str, view: dict[str, Any]) -> ViewRecord:
    """Push a view on the user's open modal stack (``not_found``/``push_limit_reached``)."""
    stack = store.modal_stacks.get(user) or []
    if not stack:
        raise SlackError("not_found")
    if len(stack) >= MAX_STACK:
        raise SlackError("push_limit_reached")
    vid = store.new_id("V", 11)
    rec = ViewRecord(vid, user, full_view(store, view, vid, stack[0], stack[-1]))
    store.views[vid] = rec
    stack.append(vid)
    return rec


def replace_view(store: Store, rec: ViewRecord, view: dict[str, Any]) -> None:
    """Replace the content of an existing view (same id, new hash)."""
    rec.history.append(rec.view)
    old = rec.view
    rec.view = full_view(store, view, rec.id, old["root_view_id"], old["previous_view_id"])


def views_open(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    view = _checked(args["view"], ("modal",))
    _unique_external_id(store, view)
    trig = store.redeem_trigger(_trigger(args))
    return {"view": open_modal(store, trig.user, view).view}


def views_push(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    view = _checked(args["view"], ("modal",))
    _unique_external_id(store, view)
    trig = store.redeem_trigger(_trigger(args))
    return {"view": push_modal(store, trig.user, view).view}


def views_update(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    view_id, ext = args.get("view_id"), args.get("external_id")
    if not view_id and not ext:
        raise SlackError("invalid_arguments", ["either view_id or external_id is required"])
    rec = store.views.get(view_id) if view_id else next(
        (r for r in store.views.values()
         if r.view.get("external_id") == ext and not r.closed), None)
    if rec is None or rec.closed:
        raise SlackError("not_found")
    if args.get("hash") and args["hash"] != rec.view["hash"]:
        raise SlackError("hash_conflict")
    view = _checked(args["view"], (rec.type,))
    _unique_external_id(store, view, keep=rec.id)
    replace_view(store, rec, view)
    return {"view": rec.view}


def views_publish(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    user = store.users.get(args["user_id"])
    if user is None or user.is_bot or user.deleted:
        raise SlackError("invalid_arguments", ["invalid `user_id`"])
    view = _checked(args["view"], ("home",))
    current = store.views.get(store.home_views.get(user.id, ""))
    if current is not None and args.get("hash") and args["hash"] != current.view["hash"]:
        raise SlackError("hash_conflict")
    _unique_external_id(store, view, keep=current.id if current else None)
    if current is None:
        vid = store.new_id("V", 11)
        current = ViewRecord(vid, user.id, full_view(store, view, vid, None, None))
        store.views[vid] = current
        store.home_views[user.id] = vid
    else:
        replace_view(store, current, view)
    return {"view": current.view}


HANDLERS: dict[str, Handler] = {
    "views.open": views_open,
    "views.push": views_push,
    "views.update": views_update,
    "views.publish": views_publish,
}
