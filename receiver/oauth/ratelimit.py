"""A per-client-address limit on `/oauth/tiktok/start`, kept in this process's memory.

Each receiver counts on its own (a limit of N per minute per receiver), so the limiter
never writes to Redis: a flood of starts costs neither Redis memory nor round trips.
The client's address is what uvicorn puts in the ASGI scope: behind a proxy listed in
`--forwarded-allow-ips`, that is the address from `X-Forwarded-For`.
"""

from __future__ import annotations

import math
from typing import Final

# Distinct addresses tracked per window; past that, one shared bucket takes the rest so
# memory stays bounded even when every request comes from a new address.
MAX_TRACKED: Final = 100_000
_OVERFLOW: Final = "(too many addresses)"


class StartLimiter:
    """Fixed one-minute windows: at most `per_minute` starts per address per window."""

    def __init__(self, per_minute: int, *, window_seconds: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window_seconds = window_seconds
        self._window = -1
        self._counts: dict[str, int] = {}

    def allow(self, address: str | None, now: float) -> float | None:
        """None when allowed; else the seconds until the window resets (for Retry-After)."""
        if self.per_minute <= 0:
            return None
        window = int(now // self.window_seconds)
        if window != self._window:
            self._window = window
            self._counts = {}
        key = address or "(unknown)"
        if key not in self._counts and len(self._counts) >= MAX_TRACKED:
            key = _OVERFLOW
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        if count <= self.per_minute:
            return None
        return max(1.0, math.ceil((window + 1) * self.window_seconds - now))
