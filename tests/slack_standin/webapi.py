"""HTTP front of the Web API: ``/api/<method>``.

Decodes the request the way Slack does (query string, form-encoded or multipart body,
JSON body with the token only in the ``Authorization`` header), authenticates the token
and its type, checks required arguments and argument types from ``facts.METHODS``, then
calls the method implementation and records the call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .blockkit import BlocksFormatError, parse_json_arg
from .errors import SlackError
from .facts import METHODS, MethodSpec
from .ratelimit import PostLimiter
from .store import Store


@dataclass(frozen=True)
class Ctx:
    """What a method implementation gets besides its arguments."""

    store: Store
    base_url: str  # "http://127.0.0.1:PORT/"
    token_type: str


Handler = Callable[[Ctx, dict[str, Any]], dict[str, Any]]

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


async def _read_args(request: web.Request) -> tuple[dict[str, Any], bool]:
    """All arguments of the call and whether they came as a JSON body."""
    args: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return args, False
    ctype = request.content_type
    if ctype == "application/json":
        raw = await request.text()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise SlackError("invalid_json", [f"invalid JSON body: {exc}"]) from exc
        if not isinstance(body, dict):
            raise SlackError("json_not_object")
        args.update(body)
        return args, True
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        args.update({k: v for k, v in form.items() if isinstance(v, str)})
        return args, False
    raise SlackError("invalid_form_data", [f"unsupported content type {ctype}"])


def _token_type(store: Store, request: web.Request, args: dict[str, Any], is_json: bool) -> str:
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.startswith("Bearer ") else None
    if token is None and not is_json:  # Slack ignores a token inside a JSON body
        token = args.get("token") or None
    if not token:
        raise SlackError("not_authed")
    cfg = store.config
    if token == cfg.bot_token:
        return "bot"
    if token == cfg.app_token:
        return "app"
    raise SlackError("invalid_auth")


def _normalize(spec: MethodSpec, args: dict[str, Any]) -> dict[str, Any]:
    """Drop nulls and the token, coerce booleans and JSON-encoded arguments, check types."""
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key == "token" or value is None:
            continue
        kind = spec.arg_types.get(key)
        if kind == "string" and not isinstance(value, str):
            raise SlackError("invalid_arguments", [f"`{key}` must be a string"])
        if kind == "boolean":
            if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                value = value.lower() in _TRUE
            elif not isinstance(value, bool):
                raise SlackError("invalid_arguments", [f"`{key}` must be a boolean"])
        if kind == "blocks":
            try:
                value = parse_json_arg(value, list)
            except BlocksFormatError as exc:
                raise SlackError("invalid_blocks_format", [f"`blocks` {exc}"]) from exc
        if kind == "attachments":
            try:
                value = parse_json_arg(value, list)
            except BlocksFormatError as exc:
                raise SlackError("invalid_arguments", [f"`attachments` {exc}"]) from exc
        if kind == "integer":  # form and query values arrive as text
            text = str(value).strip()
            if isinstance(value, bool) or not text.lstrip("-").isdigit():
                raise SlackError("invalid_arguments", [f"`{key}` must be an integer"])
            value = int(text)
        if kind == "files":
            try:
                value = parse_json_arg(value, list)
            except BlocksFormatError as exc:
                raise SlackError("invalid_arguments", [f"`{key}` {exc}"]) from exc
            if not value or not all(isinstance(f, dict) and isinstance(f.get("id"), str)
                                    for f in value):
                raise SlackError("invalid_arguments", [f"`{key}` must be an array of "
                                                       f"objects with an `id`"])
        if kind == "view":
            try:
                value = parse_json_arg(value, dict)
            except BlocksFormatError as exc:
                raise SlackError("invalid_arguments", [f"`view` {exc}"]) from exc
        out[key] = value
    for name in spec.required:
        if name != "token" and out.get(name) in (None, ""):
            code = spec.missing_arg_errors.get(name, "invalid_arguments")
            raise SlackError(code, [f"missing required field: {name}"])
    return out


def make_api_handler(store: Store, handlers: dict[str, Handler],
                     base_url: Callable[[], str]) -> Callable[[web.Request], Any]:
    """The aiohttp handler for ``/api/{method}``."""
    limit = store.config.post_limit
    limiter = PostLimiter(*limit) if limit else None

    async def handle(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        spec = METHODS.get(method)
        args: dict[str, Any] = {}
        token_type: str | None = None
        try:
            if spec is None or method not in handlers:
                raise SlackError("unknown_method", [f"the stand-in does not serve {method}"])
            if spec.post_only and request.method != "POST":
                raise SlackError("insecure_request")
            raw, is_json = await _read_args(request)
            args = {k: v for k, v in raw.items() if k != "token"}
            token_type = _token_type(store, request, raw, is_json)
            if token_type not in spec.token_types:
                raise SlackError("not_allowed_token_type")
            args = _normalize(spec, raw)
            wait = limiter.retry_after(str(args.get("channel"))) \
                if limiter and method == "chat.postMessage" else None
            if wait is not None:
                body = {"ok": False, "error": "ratelimited"}
                store.record_call(method, args, body, token_type)
                return web.json_response(body, status=429, headers={"Retry-After": str(wait)})
            with store.lock:
                body = {"ok": True, **handlers[method](Ctx(store, base_url(), token_type), args)}
        except SlackError as err:
            body = err.body()
        except Exception as exc:  # a stand-in bug: answer like Slack, but make it visible
            store.problem(f"stand-in failure in {method}: {exc!r}")
            body = {"ok": False, "error": "internal_error"}
        store.record_call(method, args, body, token_type)
        return web.json_response(body)

    return handle
