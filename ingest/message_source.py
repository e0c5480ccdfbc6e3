"""The seam between the bridge and whatever brings it messages: what the bridge needs of a source.

The bridge stores what a source delivers and tells the source which messages are
committed; how messages arrive (an MQTT broker, or a test's double) stays behind
this protocol, so the ack-after-commit rule can be tested without a broker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ingest.config import SourceConfig
from ingest.inbox import Delivery

Deliver = Callable[[list[Delivery]], bool]
"""Hands received messages to the bridge. It blocks while the bridge's inbox is full
(so a source stops reading its broker) and returns False when the bridge is stopping."""


class MessageSource(Protocol):
    """One source of messages: started and stopped by the bridge, told what is committed."""

    def start(self, deliver: Deliver, on_connected: Callable[[], None]) -> None:
        """Begin receiving: `deliver` each group of messages, call `on_connected` after each (re)connect."""

    def wait_connected(self, timeout_s: float) -> bool:
        """Whether the source receives (subscriptions in place) within `timeout_s`."""

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge messages whose rows are committed; called only after the commit."""

    def stop(self) -> None:
        """Stop receiving and let go of the connection; unacknowledged messages come again later."""


SourceConnector = Callable[[SourceConfig], MessageSource]
"""Makes the message source of one configured source (by default its MQTT connection)."""
