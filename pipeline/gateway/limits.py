"""A rate per API key: a token bucket, refilled continuously.

Each gateway process keeps its own buckets (no shared store): behind a load balancer of N
processes a key gets at most N × its rate in total.

>>> limiter = RateLimiter(rate=2.0, burst=2, clock=iter([0.0, 0.0, 0.0, 0.5]).__next__)
>>> [limiter.allow("k") for _ in range(4)]
[True, True, False, True]
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """`rate` requests per second per key, `burst` at once."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key: (tokens, when)

    def allow(self, key: str) -> bool:
        """Take a token of `key`'s bucket if there is one."""
        now = self._clock()
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        return allowed
