"""Domain error hierarchy. The API turns these into problem+json in one place."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every rule the domain refuses. ``detail`` is a readable English sentence."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """A referenced thing does not exist."""


class InvariantViolated(DomainError):
    """The command breaks a business rule."""


class Conflict(DomainError):
    """The command conflicts with what is already recorded (for example an
    idempotency key reused with a different body)."""


class NotPermitted(DomainError):
    """The acting unit may not do this (for example act on another unit's item)."""
