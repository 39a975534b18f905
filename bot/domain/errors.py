"""Typed errors. Every ``DomainError`` carries a sentence fit to show a user as is: plain
text, no chat markup. An error naming a person renders that name through the caller's
``name`` function (a Slack mention, or the id on the command line)."""

from __future__ import annotations

from collections.abc import Callable

from bot.domain.actors import SYSTEM_ACTOR


class DomainError(Exception):
    """An expected failure with an actionable, user-facing message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def render(self, name: Callable[[str], str]) -> str:  # noqa: ARG002 - names no one
        return self.message


class InvalidDuration(DomainError):
    pass


class InvalidTransition(DomainError):
    pass


class NoGpuFree(DomainError):
    pass


class LeaseLimitReached(DomainError):
    pass


class LeaseNotFound(DomainError):
    pass


class NotAllowed(DomainError):
    pass


class AlreadyDecided(DomainError):
    def __init__(self, *, lease_id: int, status: str, decided_by: str | None) -> None:
        self.lease_id, self.status, self.decided_by = lease_id, status, decided_by
        super().__init__(self.render(str))

    def render(self, name: Callable[[str], str]) -> str:
        by = "" if self.decided_by is None else f" by {name(self.decided_by)}"
        if self.decided_by == SYSTEM_ACTOR:
            by += " (nobody decided in time)"
        return f"Lease {self.lease_id} was already decided{by}: it is {self.status}."


class ContainerStartError(DomainError):
    """The container could not be created, started or become ready. ``detail`` holds
    the engine's own explanation (for logs and admins)."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class ImageMissing(ContainerStartError):
    pass


class PortInUse(ContainerStartError):
    """Something outside gpubot listens on the lease's port: another port may work."""


class GpuBackendUnavailable(DomainError):
    """NVML cannot be loaded or the driver is not running."""


class MessageDelayed(DomainError):
    """Slack kept refusing a message the bot owes (rate limited past the client's
    retries): it was not sent now, and the reconciler sends it again later."""
