"""The bounded queue between the message sources and the bridge's writer: backpressure onto the brokers."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from domain.uplink import NetworkEvent
from ingest.config import SourceConfig
from storage.uplinks import RejectedRecord

if TYPE_CHECKING:
    from ingest.message_source import MessageSource

IDLE_FLUSH_S = 0.005  # a quiet inbox for this long means the broker is waiting for our acks


@dataclass(slots=True)
class Delivery:
    """A message waiting to be written.

    `origin` is the message source to acknowledge it to once its rows are committed;
    None for backfilled events, which nobody waits an acknowledgement for. `generation`
    and `mid` are the origin's: which connection it came over, and its id there.
    """

    source: SourceConfig
    topic: str
    body: bytes
    origin: MessageSource | None = None
    generation: int = 0
    mid: int = 0
    qos: int = 0
    events: Sequence[NetworkEvent | RejectedRecord] | None = None


class Inbox:
    """A bounded queue that blocks producers when full: backpressure onto the broker sockets.

    Producers wake the writer only when the queue turns non-empty or reaches a full
    batch; waking it for every message would cost more than the message itself.
    """

    def __init__(self, capacity: int, batch_size: int) -> None:
        self.capacity = capacity
        self.batch_size = batch_size
        self._items: deque[Delivery] = deque()
        self._changed = threading.Condition()
        self._last_put = 0.0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, delivery: Delivery, stop: threading.Event) -> bool:
        return self.put_many([delivery], stop)

    def put_many(self, deliveries: list[Delivery], stop: threading.Event) -> bool:
        """All of one socket read at once; a full inbox may overshoot its capacity by one read."""
        with self._changed:
            while len(self._items) >= self.capacity:
                if stop.is_set():
                    return False
                self._changed.wait(0.1)
            before = len(self._items)
            self._items.extend(deliveries)
            self._last_put = time.monotonic()
            if before == 0 or before < self.batch_size <= len(self._items):
                self._changed.notify_all()
        return True

    def take(self, linger_s: float) -> list[Delivery]:
        """Wait for a first item, then up to `linger_s` for a full batch; stop early when input pauses.

        A pause of `IDLE_FLUSH_S` means the broker has sent all it may without our acks
        (its inflight window is full), so waiting longer would only add latency.
        """
        with self._changed:
            if not self._items:
                self._changed.wait(linger_s)
            if not self._items:
                return []
            deadline = time.monotonic() + linger_s
            while len(self._items) < self.batch_size:
                now = time.monotonic()
                if now >= deadline or now - self._last_put >= IDLE_FLUSH_S:
                    break
                self._changed.wait(min(IDLE_FLUSH_S, deadline - now))
            count = min(self.batch_size, len(self._items))
            taken = [self._items.popleft() for _ in range(count)]
            self._changed.notify_all()
            return taken
