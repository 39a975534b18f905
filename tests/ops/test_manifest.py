"""``slack/manifest.yml`` grants exactly what the code needs, and Slack would accept it.

Scopes: every Web API method the bot calls is found in the source (``slack_usage``) and
looked up in Slack's method reference (``../shared/slack-api-ref/methods/<m>.json``, its
``scope.bot`` field: the token needs one of those). A method added to the code without
its scope in the manifest fails ``test_the_manifest_grants_every_scope_the_code_needs``;
a scope nothing uses fails ``test_the_manifest_grants_no_scope_nobody_uses``.

Schema: Slack's published app manifest JSON schema, from
https://github.com/slackapi/manifest-schema (``schemas/manifest.schema.1.0.0.json``, the
schema for ``_metadata.major_version: 1`` manifests), vendored unchanged under
``tests/ops/schemas/`` (commit and license in its README) so the test runs offline.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.ops import slack_usage
from tests.ops.slack_usage import ROOT, SlackUsage, scan_source, scan_tree
from tests.support.engines import need

MANIFEST = ROOT / "slack" / "manifest.yml"
SCHEMA = Path(__file__).with_name("schemas") / "slack-manifest.schema.1.0.0.json"
REFERENCE = ROOT.parent / "shared" / "slack-api-ref" / "methods"
if not REFERENCE.is_dir():  # a checkout somewhere else on a development machine
    REFERENCE = Path("/work/shared/slack-api-ref/methods")

# Scopes a feature needs rather than a method call. Bot events: Slack's event reference
# lists the scope each needs (app_home_opened: none). An event the code starts listening
# to that is missing here fails test_every_event_has_a_known_scope.
COMMANDS_SCOPE = "commands"
EVENT_SCOPES: dict[str, tuple[str, ...]] = {"app_home_opened": ()}


def load_manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


def granted(manifest: dict[str, Any]) -> set[str]:
    return set(manifest.get("oauth_config", {}).get("scopes", {}).get("bot", []))


def method_scopes(method: str) -> set[str]:
    """The bot scopes of which ``method`` needs one (empty: none, e.g. auth.test)."""
    need(REFERENCE.is_dir(), f"Slack's method reference is missing at {REFERENCE}")
    path = REFERENCE / f"{method}.json"
    assert path.is_file(), f"{method} is not a Slack Web API method (no {path.name})"
    return set(json.loads(path.read_text()).get("scope", {}).get("bot", []))


def requirements(usage: SlackUsage) -> dict[str, set[str]]:
    """What needs a scope -> the scopes of which one must be granted."""
    needs = {f"method {m}": method_scopes(m) for m in usage.methods}
    if usage.commands:
        needs[f"slash commands {sorted(usage.commands)}"] = {COMMANDS_SCOPE}
    for event in usage.events:
        needs[f"event {event}"] = set(EVENT_SCOPES.get(event, ()))
    return {what: scopes for what, scopes in needs.items() if scopes}


def missing(scopes: set[str], usage: SlackUsage) -> list[str]:
    return [f"{what} needs one of {sorted(options)}"
            for what, options in sorted(requirements(usage).items()) if not options & scopes]


def unused(scopes: set[str], usage: SlackUsage) -> set[str]:
    return scopes - set().union(*requirements(usage).values())


@pytest.fixture(scope="module")
def usage() -> SlackUsage:
    return scan_tree()


def test_the_scan_sees_the_calls_we_know_of(usage: SlackUsage) -> None:
    """Guards the scanner itself: if it went blind, the scope tests would pass vacuously."""
    assert {"chat.postMessage", "chat.update", "views.open", "views.publish",
            "auth.test"} <= set(usage.methods), usage.methods
    # the notifier's DMs and the error teller's, in different modules
    assert len({where.split(":")[0] for where in usage.methods["chat.postMessage"]}) >= 2
    # files_upload_v2 has no api_call of its own: it is the external upload flow
    assert {"files.getUploadURLExternal", "files.completeUploadExternal"} <= set(usage.methods)
    assert usage.commands == {"/gpu"} and "app_home_opened" in usage.events
    assert usage.interactive


def test_a_newly_called_method_needs_its_scope() -> None:
    """What happens when someone adds a call: its scope is reported missing."""
    new = scan_source("def dm(client, user):\n"
                      "    client.conversations_open(users=user)\n"
                      "    client.api_call('reactions.add', json={})\n", "new.py", SlackUsage())
    assert set(new.methods) == {"conversations.open", "reactions.add"}
    problems = missing({"chat:write"}, new)
    assert any("conversations.open" in p and "im:write" in p for p in problems), problems
    assert any("reactions.add" in p and "reactions:write" in p for p in problems), problems
    assert not missing({"im:write", "reactions:write"}, new)
    assert unused({"im:write", "reactions:write", "files:read"}, new) == {"files:read"}


def test_every_called_method_exists_in_slacks_reference(usage: SlackUsage) -> None:
    for method in usage.methods:
        method_scopes(method)  # asserts the reference file exists


def test_the_manifest_grants_every_scope_the_code_needs(usage: SlackUsage) -> None:
    problems = missing(granted(load_manifest()), usage)
    assert not problems, "add to oauth_config.scopes.bot in slack/manifest.yml:\n" + \
        "\n".join(problems)


def test_the_manifest_grants_no_scope_nobody_uses(usage: SlackUsage) -> None:
    extra = unused(granted(load_manifest()), usage)
    assert not extra, f"slack/manifest.yml grants scopes no code uses: {sorted(extra)}"


def test_every_event_has_a_known_scope(usage: SlackUsage) -> None:
    unknown = usage.events - EVENT_SCOPES.keys()
    assert not unknown, (f"add the scope(s) of {sorted(unknown)} (Slack's event reference) "
                         f"to EVENT_SCOPES")


def test_the_manifest_declares_the_features_the_listeners_use(usage: SlackUsage) -> None:
    manifest = load_manifest()
    features, settings = manifest["features"], manifest["settings"]
    assert {c["command"] for c in features["slash_commands"]} == usage.commands
    assert set(settings["event_subscriptions"]["bot_events"]) == usage.events
    assert settings["interactivity"]["is_enabled"] is bool(usage.interactive)
    home = features["app_home"]
    assert home["home_tab_enabled"] is ("app_home_opened" in usage.events)
    # The bot DMs people (access details, reminders), and /gpu works in its DM.
    assert home["messages_tab_enabled"] and not home["messages_tab_read_only_enabled"]
    assert settings["socket_mode_enabled"] is True
    # Socket Mode: no request URLs anywhere (the GPU server needs no public address).
    assert "request_url" not in json.dumps(manifest)


def test_the_manifest_matches_slacks_published_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    validator.check_schema(schema)
    manifest = load_manifest()
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(manifest)]
    assert not errors, "\n".join(errors)
    # ...and the schema is strict enough to catch the mistakes one makes by hand.
    typo = copy.deepcopy(manifest)
    typo["features"]["slash_command"] = typo["features"].pop("slash_commands")
    bad_command = copy.deepcopy(manifest)
    bad_command["features"]["slash_commands"][0]["command"] = "gpu"
    no_flag = copy.deepcopy(manifest)
    del no_flag["settings"]["interactivity"]["is_enabled"]
    for broken in (typo, bad_command, no_flag):
        assert not validator.is_valid(broken)


def test_the_framework_calls_are_real_methods() -> None:
    for method in slack_usage.FRAMEWORK_CALLS:
        assert (REFERENCE / f"{method}.json").is_file()
