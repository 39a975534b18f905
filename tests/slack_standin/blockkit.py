"""Block Kit validation as strict as Slack's.

Each block is parsed with ``slack_sdk.models.blocks.Block.parse`` and checked with
``validate_json()`` (and ``to_dict()``, which runs it on every nested element); views
additionally go through ``slack_sdk.models.views.View``. On top of that come the limits
slack_sdk does not (fully) enforce: blocks per surface (50 message, 100 view), unique
``block_id``s, unique ``action_id``s per block, plain-text-only fields (button text,
header, labels, modal title/submit/close), non-empty text objects, section fields, button
value/url lengths, context element counts and modal title/submit rules.

Every function returns a list of Slack-style error strings (empty when valid), e.g.
``"text attribute cannot exceed 3000 characters [json-pointer:/blocks/0]"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100
MESSAGE_TEXT_MAX = 40_000
_TEXT_TYPES = ("plain_text", "mrkdwn")


class BlocksFormatError(ValueError):
    """``blocks`` is not a JSON array (Slack: ``invalid_blocks_format``)."""


def parse_json_arg(value: Any, kind: type) -> Any:
    """Decode an argument that may arrive JSON-encoded (form bodies) or native (JSON bodies)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise BlocksFormatError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, kind):
        raise BlocksFormatError(f"expected a JSON {kind.__name__}")
    return value


def _walk(node: Any, pointer: str) -> Iterator[tuple[dict[str, Any], str]]:
    if isinstance(node, dict):
        yield node, pointer
        for key, child in node.items():
            yield from _walk(child, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _walk(child, f"{pointer}/{i}")


def _check_plain(obj: Any, what: str, limit: int | None, ptr: str) -> list[str]:
    if obj is None:
        return []
    if not isinstance(obj, dict) or obj.get("type") != "plain_text":
        return [f"{what} must be a plain_text text object [json-pointer:{ptr}]"]
    text = obj.get("text")
    if limit is not None and isinstance(text, str) and len(text) > limit:
        return [f"{what} must be at most {limit} characters [json-pointer:{ptr}]"]
    return []


def _text_object_errors(block: dict[str, Any], ptr: str) -> list[str]:
    errors: list[str] = []
    for node, where in _walk(block, ptr):
        if node.get("type") not in _TEXT_TYPES or "elements" in node:
            continue
        text = node.get("text")
        if not isinstance(text, str) or not text:
            errors.append(f"text object needs a non-empty text string [json-pointer:{where}]")
        if node.get("type") == "mrkdwn" and "emoji" in node:
            errors.append(f"emoji is only allowed on plain_text [json-pointer:{where}]")
    return errors


def _element_errors(block: dict[str, Any], ptr: str) -> list[str]:
    errors: list[str] = []
    for node, where in _walk(block, ptr):
        if node.get("type") == "button":
            errors += _check_plain(node.get("text"), "button text", 75, f"{where}/text")
            if node.get("text") is None:
                errors.append(f"button requires text [json-pointer:{where}]")
            if len(str(node.get("value", ""))) > 2000:
                errors.append(f"button value must be at most 2000 characters "
                              f"[json-pointer:{where}]")
            if len(str(node.get("url", ""))) > 3000:
                errors.append(f"button url must be at most 3000 characters [json-pointer:{where}]")
            if node.get("style") not in (None, "primary", "danger"):
                errors.append(f"button style must be primary or danger [json-pointer:{where}]")
        action_id = node.get("action_id")
        if action_id is not None and (not isinstance(action_id, str) or len(action_id) > 255):
            errors.append(f"action_id must be a string of at most 255 characters "
                          f"[json-pointer:{where}]")
    return errors


def _block_specific_errors(block: dict[str, Any], ptr: str) -> list[str]:
    kind = block.get("type")
    errors: list[str] = []
    if kind == "header":
        errors += _check_plain(block.get("text"), "header text", 150, f"{ptr}/text")
    elif kind == "section":
        text = block.get("text")
        if isinstance(text, dict) and len(str(text.get("text", ""))) > 3000:
            errors.append(f"section text must be at most 3000 characters [json-pointer:{ptr}/text]")
        fields = block.get("fields") or []
        if len(fields) > 10:
            errors.append(f"section fields must be at most 10 items [json-pointer:{ptr}/fields]")
        for i, f in enumerate(fields):
            if isinstance(f, dict) and len(str(f.get("text", ""))) > 2000:
                errors.append(f"field text must be at most 2000 characters "
                              f"[json-pointer:{ptr}/fields/{i}]")
    elif kind == "actions":
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= 25:
            errors.append(f"actions block needs 1 to 25 elements [json-pointer:{ptr}/elements]")
        ids = [e.get("action_id") for e in elements if isinstance(e, dict) and e.get("action_id")]
        if len(ids) != len(set(ids)):
            errors.append(f"action_id values must be unique within a block [json-pointer:{ptr}]")
    elif kind == "context":
        if not 1 <= len(block.get("elements") or []) <= 10:
            errors.append(f"context block needs 1 to 10 elements [json-pointer:{ptr}/elements]")
    elif kind == "input":
        errors += _check_plain(block.get("label"), "input label", 2000, f"{ptr}/label")
    return errors


def validate_blocks(blocks: Any, *, max_blocks: int = MESSAGE_MAX_BLOCKS,
                    pointer: str = "/blocks") -> list[str]:
    """Validate a list of blocks for a message (``max_blocks=50``) or a view (100)."""
    if not isinstance(blocks, list):
        return [f"blocks must be an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:{pointer}]")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        ptr = f"{pointer}/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"block must be an object with a type [json-pointer:{ptr}]")
            continue
        try:
            parsed = Block.parse(block)
            if parsed is None or type(parsed) is Block:
                errors.append(f"unknown block type {block['type']!r} [json-pointer:{ptr}]")
                continue
            parsed.validate_json()
            parsed.to_dict()  # validates nested elements and text objects too
        except Exception as exc:  # slack_sdk raises TypeError/SlackObjectFormationError/...
            errors.append(f"{exc} [json-pointer:{ptr}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in seen_ids:
                errors.append(f"block_id {block_id!r} is not unique [json-pointer:{ptr}/block_id]")
            seen_ids.add(block_id)
        errors += _text_object_errors(block, ptr)
        errors += _element_errors(block, ptr)
        errors += _block_specific_errors(block, ptr)
    return errors


def validate_view(view: Any, *, allowed_types: tuple[str, ...]) -> list[str]:
    """Validate a view payload (modal or home) the way ``views.*`` methods do."""
    if not isinstance(view, dict):
        return ["view must be an object [json-pointer:/view]"]
    kind = view.get("type")
    if kind not in allowed_types:
        return [f"view type must be one of {', '.join(allowed_types)} [json-pointer:/view/type]"]
    errors: list[str] = []
    try:
        View(**view).to_dict()  # validate_json() on the view and every nested object
    except Exception as exc:
        errors.append(f"{exc} [json-pointer:/view]")
    blocks = view.get("blocks")
    if blocks is None:
        errors.append("missing required field: blocks [json-pointer:/view/blocks]")
    else:
        errors += validate_blocks(blocks, max_blocks=VIEW_MAX_BLOCKS, pointer="/view/blocks")
    if kind == "modal":
        if view.get("title") is None:
            errors.append("missing required field: title [json-pointer:/view/title]")
        for key in ("title", "submit", "close"):
            errors += _check_plain(view.get(key), key, 24, f"/view/{key}")
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks or [])
        if has_input and view.get("submit") is None:
            errors.append("submit is required when an input block is present "
                          "[json-pointer:/view/submit]")
    for key, limit in (("private_metadata", 3000), ("callback_id", 255), ("external_id", 255)):
        if len(str(view.get(key) or "")) > limit:
            errors.append(f"{key} must be at most {limit} characters [json-pointer:/view/{key}]")
    return list(dict.fromkeys(errors))
