"""Cross-check the stand-in's method table against Slack's published method reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.slack_standin.facts import COMMON_ERRORS, METHODS

REF = Path(__file__).resolve().parents[3] / "shared" / "slack-api-ref" / "methods"
if not REF.is_dir():
    REF = Path("/work/shared/slack-api-ref/methods")

pytestmark = pytest.mark.skipif(not REF.is_dir(), reason="slack-api-ref is not available")

_COMPATIBLE = {
    "string": {"string"},
    "boolean": {"boolean"},
    "blocks": {"string"},
    "attachments": {"string"},
    "view": {"string", "object", "schema"},
    "integer": {"integer"},
    "files": {"array"},
}


def _types(prop: dict[str, Any]) -> set[str]:
    """The JSON types a reference property allows (``schema`` for named schemas)."""
    out: set[str] = set()
    if "type" in prop:
        out.add(prop["type"])
    if "schema" in prop:  # named id schemas (user_id, channel, ...) are strings
        schema = str(prop["schema"])
        out.add("string" if schema.endswith("_id") or schema in {"channel", "user"}
                else "schema")
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in prop.get(key, []):
            out |= _types(sub)
    return out


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_matches_reference(name: str) -> None:
    ref = json.loads((REF / f"{name}.json").read_text())
    spec = METHODS[name]
    assert set(spec.required) == set(ref["args"].get("required", [])), "required args"
    props = ref["args"]["properties"]
    for arg, kind in spec.arg_types.items():
        assert arg in props, f"{arg} is not an argument of {name}"
        assert _types(props[arg]) & _COMPATIBLE[kind], f"{arg}: {kind} vs {props[arg]}"
    documented = set(ref.get("errors", {})) | COMMON_ERRORS
    undocumented = spec.all_errors() - documented
    assert not undocumented, f"codes not documented for {name}: {sorted(undocumented)}"
    if spec.post_only:
        assert ref["http_method"] == "POST"


def test_table_covers_the_methods_the_bot_calls() -> None:
    assert {"auth.test", "apps.connections.open", "chat.postMessage", "chat.postEphemeral",
            "chat.update", "chat.delete", "conversations.open", "views.open", "views.publish",
            "views.update", "views.push", "users.info", "files.getUploadURLExternal",
            "files.completeUploadExternal"} <= set(METHODS)
