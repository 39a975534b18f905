"""Who did something, when it was not a Slack user."""

SYSTEM_ACTOR = "gpubot"  # the bot itself: its audit rows, the denials nobody decided
CLI_ACTOR = "cli"  # an admin at the host's terminal (`gpubot release`)
ACTORS = frozenset({SYSTEM_ACTOR, CLI_ACTOR})
