"""The platform's error tree, translated to transport errors only at the edges.

    PlatformError
    ├── InvalidIdentifier        a DevEUI / gateway id that is not what it claims to be
    ├── MessageRejected          a network-server message that cannot be turned into an event
    ├── DecodeError              a payload a codec cannot decode (offset and reason)
    ├── ConfigurationError       settings or a sources file that do not make sense
    │   └── NotConfigured        an action this installation has not been set up for
    ├── StorageUnavailable       the database cannot be reached right now (retry later)
    ├── RateLimited              the caller asked too often; `retry_after_s` says when to ask again
    ├── NotFound                 an entity that does not exist for the caller
    ├── Conflict                 an entity that already exists or a state that forbids the change
    └── PermissionDenied         the caller may see the entity but not do this to it
        └── Unauthenticated      no valid credential at all (API key, webhook secret)

Why a tree: the MQTT callback boundary and the HTTP error handler each map one
base class, so a new error never slips through as an unhandled exception.
"""

from __future__ import annotations


class PlatformError(Exception):
    """Base of every error lorakom raises on purpose."""


class InvalidIdentifier(PlatformError, ValueError):
    """An identifier (DevEUI, gateway id, slug) that fails validation."""


class MessageRejected(PlatformError):
    """A message that cannot be parsed; `reason` is stored beside its raw bytes."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DecodeError(PlatformError):
    """A payload that a codec cannot decode.

    `offset` is the byte position where decoding stopped (None when the failure
    is not tied to a position, e.g. an unknown fPort or a script error).
    """

    def __init__(self, reason: str, offset: int | None = None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{reason}{where}")
        self.reason = reason
        self.offset = offset


class ConfigurationError(PlatformError):
    """Settings or a sources file that cannot be used as given."""


class NotConfigured(ConfigurationError):
    """An action the installation has not been set up for (e.g. no key for stored secrets).

    Told to an API caller as what is missing, unlike other configuration errors: the
    caller cannot fix it, but can tell the operator exactly what to set.
    """


class StorageUnavailable(PlatformError):
    """The database is unreachable; the caller should keep its data and retry."""


class RateLimited(PlatformError):
    """The caller used up its allowance for an expensive action; it may ask again after `retry_after_s`."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class NotFound(PlatformError):
    """The entity does not exist, or the caller may not know that it exists."""


class Conflict(PlatformError):
    """The change collides with existing state."""


class PermissionDenied(PlatformError):
    """The caller is known but lacks the role for this action."""


class Unauthenticated(PermissionDenied):
    """The caller presented no valid credential (an API key, a webhook secret)."""
