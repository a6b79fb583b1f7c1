"""A token bucket: a steady rate of messages with room for a short burst."""

from __future__ import annotations

import time


class TokenBucket:
    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate = rate
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are enough; False when the caller is over its rate."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True
