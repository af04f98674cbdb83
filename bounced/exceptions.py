"""The exception tree: one root, a few branches, caught broadly only at boundaries."""

from __future__ import annotations


class BouncedError(Exception):
    """Root of every error bounced raises on purpose."""


class ConfigError(BouncedError):
    """The configuration is invalid; the message names the key."""


class StoreError(BouncedError):
    """The store failed to do what was asked."""


class StoreNotFound(StoreError):
    """There is no bounced store where the configuration points (and none was to be created)."""


class SchemaMismatch(StoreError):
    """The store's schema is not the one this bounced uses: older (``bounced migrate`` brings it
    up) or newer (a later bounced migrated it; schemas are never migrated down)."""

    def __init__(self, message: str, found: int, needed: int) -> None:
        super().__init__(message)
        self.found = found
        self.needed = needed


class StoreUnavailable(StoreError):
    """The store cannot be reached right now; the caller should retry later."""


class NotFound(BouncedError):
    """The thing asked for does not exist."""
