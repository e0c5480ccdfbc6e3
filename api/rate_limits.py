"""Per-key allowances for actions that cost the platform real work (running a codec script).

A token bucket per API key, kept in the process: a key may spend `burst` calls at once
and then one call every `60 / per_minute` seconds. Several API processes each keep their
own buckets, so the allowance is per process; it exists to stop one key from occupying
the sandbox, not to meter use exactly.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from domain.errors import RateLimited

# Buckets kept before full (idle) ones are dropped; a dropped bucket starts full again anyway.
_MAX_BUCKETS = 10_000


class KeyRateLimiter:
    def __init__(
        self, *, what: str, burst: int, per_minute: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.what = what
        self.burst = burst
        self.per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # key id -> (tokens, when counted)
        self._lock = threading.Lock()

    def take(self, key_id: int) -> None:
        """Spend one call of `key_id`'s allowance; RateLimited (with when to retry) if none is left."""
        now = self._clock()
        with self._lock:
            tokens, counted = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - counted) * self.per_second)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                wait_s = math.ceil((1.0 - tokens) / self.per_second)
                raise RateLimited(
                    f"this key may {self.what} {self.burst} times at once and "
                    f"{self.per_second * 60:g} times a minute; try again in {wait_s} s",
                    retry_after_s=wait_s,
                )
            self._buckets[key_id] = (tokens - 1.0, now)
            if len(self._buckets) > _MAX_BUCKETS:
                self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        for key_id, (tokens, counted) in list(self._buckets.items()):
            if tokens + (now - counted) * self.per_second >= self.burst:
                del self._buckets[key_id]
