"""Ingest counters per source: printed as a live line, exported to Prometheus.

The counters live in prometheus_client's default registry, so that when bridge
and API run in one process (`lorakom run`) the API's `/metrics` shows them
without either package knowing the other.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from enum import StrEnum

from prometheus_client import Counter, Gauge


class Outcome(StrEnum):
    RECEIVED = "received"
    STORED = "stored"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    UNCLAIMED = "unclaimed"
    DECODE_FAILED = "decode_failed"
    BACKFILLED = "backfilled"
    OTHER_EVENT = "other_event"
    # An uplink of a device registered in a municipality that did not grant the source's
    # town: stored unclaimed for the source's own town (also counted as unclaimed).
    FOREIGN = "foreign_device"
    # A network-server time too far ahead of the bridge's clock, replaced by the bridge's.
    FUTURE_TIME = "future_time"


LIVE_OUTCOMES = (
    Outcome.RECEIVED,
    Outcome.STORED,
    Outcome.DUPLICATE,
    Outcome.REJECTED,
    Outcome.UNCLAIMED,
    Outcome.FOREIGN,
    Outcome.FUTURE_TIME,
    Outcome.OTHER_EVENT,  # joins, device status, gateway heartbeats: received but not uplinks
)

MESSAGES = Counter(
    "lorakom_ingest_messages", "Network-server messages by source and outcome", ["source", "outcome"]
)
PENDING = Gauge("lorakom_ingest_pending", "Messages received and not yet committed")
BATCH_SECONDS = Counter("lorakom_ingest_batch_seconds", "Time spent writing batches")
WRITE_RETRIES = Counter("lorakom_ingest_write_retries", "Batches retried after a database error")


class IngestCounters:
    """Thread-safe tallies for the live line; each increment also feeds Prometheus."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tally: dict[str, Tally[Outcome]] = {}

    def add(self, source: str, outcome: Outcome, amount: int = 1) -> None:
        if amount <= 0:
            return
        with self._lock:
            self._tally.setdefault(source, Tally())[outcome] += amount
        MESSAGES.labels(source=source, outcome=outcome.value).inc(amount)

    def snapshot(self) -> dict[str, dict[Outcome, int]]:
        with self._lock:
            return {source: dict(tally) for source, tally in self._tally.items()}

    def total(self, outcome: Outcome) -> int:
        with self._lock:
            return sum(tally[outcome] for tally in self._tally.values())

    def totals_line(self) -> str:
        """All sources in one short line, for a terminal."""
        return ", ".join(f"{self.total(outcome)} {outcome.value}" for outcome in LIVE_OUTCOMES)

    def summary_line(self) -> str:
        parts = []
        for source, tally in sorted(self.snapshot().items()):
            counts = ", ".join(f"{tally.get(outcome, 0)} {outcome.value}" for outcome in LIVE_OUTCOMES)
            parts.append(f"{source}: {counts}")
        return " | ".join(parts) if parts else "no messages yet"
