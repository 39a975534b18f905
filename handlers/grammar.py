"""The `/gpu` grammar (DESIGN §4), parsed into commands. Pure: no Slack here.

    /gpu [help]                       usage with examples
    /gpu claim [<duration>] [<n> gpus] [<model>] [env <name>]
    /gpu release [<lease>]
    /gpu extend <duration> [<lease>]
    /gpu status | mine
    /gpu password [<lease>]
    /gpu key add <public key> | key list | key remove <n>
    /gpu queue | leave [<lease>] | usage | report

Anything else answers with help. Lease ids may be written ``12`` or ``#12``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum

from bot.domain.durations import parse_duration, shown
from bot.domain.errors import DomainError, InvalidDuration
from bot.domain.ssh import looks_private

MAX_INPUT = 200  # longer text is not a command anybody typed on purpose
MAX_KEY_INPUT = 16_000  # `key add`: an RSA public key, or a private key pasted by mistake
_LEASE = re.compile(r"#?([0-9]{1,9})", re.ASCII)
_GPUS = re.compile(r"([0-9]{1,2})\s*(?:x\s*)?gpus?", re.ASCII | re.IGNORECASE)
_MODEL = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,31}", re.ASCII)
_ENV = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}", re.ASCII)
_UNIT = re.compile(r"[wdhm]", re.ASCII | re.IGNORECASE)
_CLAIM_EXAMPLES = "Try `/gpu claim 24h`, `/gpu claim 2d 2 gpus` or `/gpu claim 24h a100`."


class Verb(str, Enum):
    """The sub-commands of DESIGN §4; a str, so ``cmd.verb == "claim"`` holds."""

    HELP = "help"
    CLAIM = "claim"
    RELEASE = "release"
    EXTEND = "extend"
    STATUS = "status"
    MINE = "mine"
    PASSWORD = "password"
    KEY = "key"  # SSH public keys: `key add <key>`, `key list`, `key remove <n>`
    QUEUE = "queue"  # DESIGN §4.1
    LEAVE = "leave"
    USAGE = "usage"
    ENVS = "envs"  # the environments offered (DESIGN §4.1)
    REPORT = "report"  # admins

    def __str__(self) -> str:  # f"{verb}" gives "claim", not "Verb.CLAIM"
        return self.value


@dataclass(frozen=True)
class Command:
    verb: Verb
    duration: timedelta | None = None
    gpu_count: int = 1
    model: str | None = None
    lease_id: int | None = None
    note: str | None = None  # e.g. why help is shown
    environment: str | None = None  # `claim ... env <name>`; None: the default
    action: str | None = None  # `key add|list|remove`
    arg: str | None = field(default=None, repr=False)  # the key's text, or the key number


def parse(text: str | None, *, default_duration: timedelta,
          max_lease: timedelta | None = None) -> Command:
    """``max_lease`` (optional) words the message for an absurdly long duration."""
    raw = (text or "").strip()
    if looks_private(raw) or (raw.split(None, 1) or [""])[0].lower() == "key":
        return _key(raw[:MAX_KEY_INPUT])  # before the length check: keys are long
    if len(raw) > MAX_INPUT:
        return Command(Verb.HELP, note="That command is too long to be one of mine.")
    words = raw.split()
    if not words:
        return Command(Verb.HELP)
    try:
        verb, args = Verb(words[0].lower()), words[1:]
    except ValueError:
        return Command(Verb.HELP, note=f"I don't know `{shown(words[0], 20)}`.")
    if verb in {Verb.HELP, Verb.STATUS, Verb.MINE, Verb.QUEUE, Verb.USAGE, Verb.REPORT,
                Verb.ENVS}:
        return Command(verb)
    if verb is Verb.CLAIM:
        return _claim(args, default_duration, max_lease)
    if verb in {Verb.RELEASE, Verb.PASSWORD, Verb.LEAVE}:
        return Command(verb, lease_id=_lease(args, verb))
    if not args:
        raise DomainError("Say how much longer, e.g. `/gpu extend 4h` or "
                          "`/gpu extend 1d 12`.")
    return Command(verb, duration=parse_duration(args[0], longest=max_lease),
                   lease_id=_lease(args[1:], verb))


def _claim(args: list[str], default: timedelta, longest: timedelta | None) -> Command:
    """``[<duration>] [<n> gpus] [<model>]``. The duration is the longest run of leading
    words that reads as one (``1d 12h``, ``24 h``); a leading word that starts like a
    number but is neither a duration nor a GPU count is reported as a bad duration.
    ``env <name>`` may stand anywhere after ``claim``."""
    args, environment = _environment(args)
    duration, rest = default, args
    for end in range(len(args), 0, -1):
        try:
            duration = parse_duration(" ".join(args[:end]), longest=longest)
        except InvalidDuration:
            continue
        rest = args[end:]
        break
    else:
        if args and args[0][:1] in set("0123456789-") and not _GPUS.match(" ".join(args)):
            parse_duration(args[0], longest=longest)  # raises: no unit, negative, too long
    text = " ".join(rest)
    count = 1
    gpus = _GPUS.match(text)
    if gpus:
        count, text = int(gpus.group(1)), text[gpus.end():].strip()
    if not text:
        return Command(Verb.CLAIM, duration=duration, gpu_count=count, environment=environment)
    if _UNIT.fullmatch(text):  # `/gpu claim h`: a duration without its number
        parse_duration(text)  # raises "did you mean 24h?"
    if not _MODEL.fullmatch(text):
        raise DomainError(f"I could not read `{shown(text)}`. {_CLAIM_EXAMPLES}")
    return Command(Verb.CLAIM, duration=duration, gpu_count=count, model=text,
                   environment=environment)


def _environment(args: list[str]) -> tuple[list[str], str | None]:
    """``env <name>`` taken out of the claim's words; whether the name is offered is the
    service's to say (it lists the names)."""
    words = [w.lower() for w in args]
    if "env" not in words:
        return args, None
    at = words.index("env")
    if at + 1 >= len(args) or not _ENV.fullmatch(args[at + 1]):
        raise DomainError("Name the environment after `env`, e.g. `/gpu claim 24h env "
                          "default`; `/gpu envs` lists them.")
    return args[:at] + args[at + 2:], args[at + 1].lower()


def _key(raw: str) -> Command:
    """``key add <public key>`` (the rest of the line, as pasted), ``key [list]``,
    ``key remove <n>``. Anything that looks like a private key is handed to ``add``,
    whose refusal says it is compromised now; it is never echoed back."""
    if looks_private(raw):
        return Command(Verb.KEY, action="add", arg=raw)
    words = raw.split(None, 2)
    action = words[1].lower() if len(words) > 1 else "list"
    rest = words[2] if len(words) > 2 else ""
    if action == "add":
        return Command(Verb.KEY, action="add", arg=rest)
    if action == "list" and not rest:
        return Command(Verb.KEY, action="list")
    if action in {"remove", "rm", "delete"}:
        match = re.fullmatch(r"#?([0-9]{1,3})", rest.strip())
        if match:
            return Command(Verb.KEY, action="remove", arg=match.group(1))
        raise DomainError("Say which key, by its number in `/gpu key list`: "
                          "e.g. `/gpu key remove 1`.")
    raise DomainError("Use `/gpu key add ssh-ed25519 AAAA…`, `/gpu key list` or "
                      "`/gpu key remove <n>`.")


def _lease(args: list[str], verb: Verb) -> int | None:
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
    ("/gpu claim 24h env conda", "another environment (image); `/gpu envs` lists them"),
    ("/gpu envs", "the environments offered, their CUDA, whether this server runs them"),
    ("/gpu mine", "your leases and the time left"),
    ("/gpu extend 4h [lease]", "more time"),
    ("/gpu password [lease]", "your Jupyter link and password again, by DM"),
    ("/gpu release [lease]", "give the GPU back (your files stay)"),
    ("/gpu status", "every GPU: who has it, until when, how busy"),
    ("/gpu key add ssh-ed25519 AAAA…", "an SSH public key for your leases (VS Code, scp)"),
    ("/gpu key list | remove <n>", "your SSH keys; take one away"),
    ("/gpu queue", "who waits for a GPU, in order (a full server queues your claim)"),
    ("/gpu leave [lease]", "leave the queue"),
    ("/gpu usage", "your GPU-hours and utilization, last 7 and 30 days (admins: everyone's)"),
    ("/gpu report", "admins: post the usage report with its chart to the admin channel"),
)
