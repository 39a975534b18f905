"""The `/gpu` grammar (DESIGN §4), parsed into commands. Pure: no Slack here.

    /gpu [help]                       usage with examples
    /gpu claim [<duration>] [<n> gpus] [<model>]
    /gpu release [<lease>]
    /gpu extend <duration> [<lease>]
    /gpu status | mine
    /gpu password [<lease>]

Anything else answers with help. Lease ids may be written ``12`` or ``#12``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from bot.domain.durations import shown, parse_duration
from bot.domain.errors import DomainError

MAX_INPUT = 200  # longer text is not a command anybody typed on purpose
_LEASE = re.compile(r"#?([0-9]{1,9})", re.ASCII)
_GPUS = re.compile(r"([0-9]{1,2})\s*(?:x\s*)?gpus?", re.ASCII | re.IGNORECASE)
_MODEL = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,31}", re.ASCII)


@dataclass(frozen=True)
class Command:
    verb: str  # help | claim | release | extend | status | mine | password
    duration: timedelta | None = None
    gpu_count: int = 1
    model: str | None = None
    lease_id: int | None = None
    note: str | None = None  # e.g. why help is shown


def parse(text: str | None, *, default_duration: timedelta) -> Command:
    raw = (text or "").strip()
    if len(raw) > MAX_INPUT:
        return Command("help", note="That command is too long to be one of mine.")
    words = raw.split()
    if not words:
        return Command("help")
    verb, args = words[0].lower(), words[1:]
    if verb in {"help", "status", "mine"}:
        return Command(verb)
    if verb == "claim":
        return _claim(args, default_duration)
    if verb in {"release", "password"}:
        return Command(verb, lease_id=_lease(args, verb))
    if verb == "extend":
        if not args:
            raise DomainError("Say how much longer, e.g. `/gpu extend 4h` or "
                              "`/gpu extend 1d 12`.")
        return Command(verb, duration=parse_duration(args[0]), lease_id=_lease(args[1:], verb))
    return Command("help", note=f"I don't know `{shown(words[0], 20)}`.")


def _claim(args: list[str], default_duration: timedelta) -> Command:
    rest = " ".join(args)
    duration = default_duration
    if args and args[0][:1].isdigit() and not _GPUS.fullmatch(rest):
        first = re.match(r"[0-9wdhmWDHM\s]+?(?=\s+[0-9]{1,2}\s*(?:x\s*)?gpus?\b|\s+[A-Za-z]|$)",
                         rest)
        token = first.group(0) if first else args[0]
        duration, rest = parse_duration(token), rest[len(token):].strip()
    elif args and args[0].startswith("-"):
        parse_duration(args[0])  # raises the "negative" message
    count = 1
    gpus = _GPUS.match(rest)
    if gpus:
        count, rest = int(gpus.group(1)), rest[gpus.end():].strip()
    model = None
    if rest:
        if not _MODEL.fullmatch(rest):
            raise DomainError(f"I could not read `{shown(rest)}`. Try `/gpu claim 24h`, "
                              f"`/gpu claim 2d 2 gpus` or `/gpu claim 24h a100`.")
        model = rest
    return Command("claim", duration=duration, gpu_count=count, model=model)


def _lease(args: list[str], verb: str) -> int | None:
    if not args:
        return None
    match = _LEASE.fullmatch(args[0])
    if len(args) > 1 or not match:
        raise DomainError(f"`{shown(' '.join(args))}` is not a lease number; "
                          f"`/gpu mine` lists yours, e.g. `/gpu {verb} 12`.")
    return int(match.group(1))


HELP_EXAMPLES = (
    ("/gpu claim 24h", "a GPU for 24 hours (also `90m`, `3d`, `1w`, `1d12h`)"),
    ("/gpu claim 2d 2 gpus", "two GPUs of one server (an admin approves)"),
    ("/gpu claim 24h a100", "a particular model"),
    ("/gpu mine", "your leases and the time left"),
    ("/gpu extend 4h [lease]", "more time"),
    ("/gpu password [lease]", "your Jupyter link and password again, by DM"),
    ("/gpu release [lease]", "give the GPU back (your files stay)"),
    ("/gpu status", "every GPU: who has it, until when, how busy"),
)
