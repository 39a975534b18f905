"""Typed errors. Every ``DomainError`` carries a sentence fit to show a user as is."""

from __future__ import annotations


class DomainError(Exception):
    """An expected failure with an actionable, user-facing message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
    pass


class ContainerStartError(DomainError):
    """The container could not be created, started or become ready. ``detail`` holds
    the engine's own explanation (for logs and admins)."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class ImageMissing(ContainerStartError):
    pass


class GpuBackendUnavailable(DomainError):
    """NVML cannot be loaded or the driver is not running."""


class MessageDelayed(DomainError):
    """Slack kept refusing a message the bot owes (rate limited past the client's
    retries): it was not sent now, and the reconciler sends it again later."""
