"""Slack's external file upload flow, as ``WebClient.files_upload_v2`` drives it:

1. ``files.getUploadURLExternal`` (``filename``, ``length`` ≥ 1, optional ``alt_txt`` ≤
   1000 characters) answers a ``file_id`` and an ``upload_url`` on this server;
2. the bytes are POSTed to that URL, raw or as a multipart ``file`` field, with no token
   (as at files.slack.com); the answer is ``200 OK - <bytes>``, an unknown or used URL
   is ``404``; bytes that differ from the announced ``length`` are recorded as a problem;
3. ``files.completeUploadExternal`` (``files``: ``[{"id", "title"?}]``, ``channel_id`` or
   ``channels``, ``initial_comment``) shares the uploaded files: a message from the bot
   in that conversation carries them (``Message.files``). A file never uploaded, already
   completed or not this app's is ``file_not_found``; a channel the bot is not in is
   ``not_in_channel`` (private: ``channel_not_found``), as in ``chat.postMessage``.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from .blockkit import BlocksFormatError, parse_json_arg, validate_blocks
from .errors import SlackError
from .records import FileRecord
from .store import ChannelState, Store
from .webapi import Ctx, Handler

ALT_TXT_MAX = 1000
HIGHLIGHT_TYPE_MAX = 10  # the reference's maxLength


def get_upload_url_external(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    if args["length"] < 1:  # the reference: "typically only occurs when length is 0"
        raise SlackError("missing_argument", ["`length` must be at least 1"])
    alt = args.get("alt_txt")
    if alt is not None and len(alt) > ALT_TXT_MAX:
        raise SlackError("alt_txt_too_large")
    file_id = store.new_id("F", 11)
    ticket = secrets.token_urlsafe(24)
    store.files[file_id] = FileRecord(file_id, args["filename"], args["length"],
                                      args.get("alt_txt"), store.config.bot_user_id,
                                      store.now())
    store.upload_tickets[ticket] = file_id
    return {"file_id": file_id, "upload_url": f"{ctx.base_url}upload/v1/{ticket}"}


def complete_upload_external(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    wanted = args["files"]
    for item in wanted:
        kind = item.get("highlight_type")
        if kind is not None and (not isinstance(kind, str) or len(kind) > HIGHLIGHT_TYPE_MAX):
            raise SlackError("invalid_arguments", ["`highlight_type` is at most 10 characters"])
        record = store.files.get(item["id"])
        if record is None or record.data is None or record.completed:
            raise SlackError("file_not_found")
    targets = _targets(store, args)
    text = args.get("initial_comment") or ""
    blocks: list[dict[str, Any]] = []
    if not text and args.get("blocks"):  # ignored when there is a comment (the reference)
        try:
            blocks = parse_json_arg(args["blocks"], list)
        except BlocksFormatError as exc:  # documented here as invalid_blocks
            raise SlackError("invalid_blocks", [f"`blocks` {exc}"]) from exc
        problems = validate_blocks(blocks)
        if problems:
            raise SlackError("invalid_blocks", problems)
    done = []
    for item in wanted:
        record = store.files[item["id"]]
        record.completed, record.title = True, item.get("title") or record.filename
        record.channels = [ch.id for ch in targets]
        done.append(record)
    for ch in targets:  # Slack shares them in one message per conversation
        msg = store.add_message(ch.id, text, blocks, "files.completeUploadExternal",
                                args.get("thread_ts"))
        msg.files = [r.id for r in done]
    return {"files": [{"id": r.id, "title": r.title, "created": int(r.created),
                       "user": r.user} for r in done]}


def _targets(store: Store, args: dict[str, Any]) -> list[ChannelState]:
    """Where to share: ``channel_id``, or each of ``channels``; none: the file stays
    private (allowed, as in Slack)."""
    names = [args["channel_id"]] if args.get("channel_id") else \
        [c.strip() for c in str(args.get("channels") or "").split(",") if c.strip()]
    out = []
    for name in names:
        ch = store.resolve_channel(name, user_ids_open_dm=True)
        if ch.kind == "channel" and not ch.bot_is_member:
            raise SlackError("channel_not_found" if ch.is_private else "not_in_channel")
        out.append(ch)
    return out


def make_upload_handler(store: Store) -> Any:
    """``POST /upload/v1/{ticket}``: the upload URL of step 2."""

    async def upload(request: web.Request) -> web.Response:
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = form.get("file")
            data = part.file.read() if hasattr(part, "file") else b""
        else:
            data = await request.read()
        with store.lock:
            file_id = store.upload_tickets.pop(request.match_info["ticket"], None)
            record = store.files.get(file_id or "")
            if record is None:
                return web.Response(status=404, text="upload URL not found or used")
            if len(data) != record.length:
                store.problem(f"upload of {record.id}: {len(data)} bytes, announced "
                              f"{record.length} in files.getUploadURLExternal")
            record.data = data
        return web.Response(text=f"OK - {len(data)}")

    return upload


HANDLERS: dict[str, Handler] = {
    "files.getUploadURLExternal": get_upload_url_external,
    "files.completeUploadExternal": complete_upload_external,
}
