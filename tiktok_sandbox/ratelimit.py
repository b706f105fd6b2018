"""TikTok's rate limit: N requests per endpoint in a one-minute sliding window (contract §4)."""

from __future__ import annotations

import threading
from collections import deque

WINDOW_SECONDS = 60.0


class SlidingWindowLimiter:
    """Counts accepted requests per key; throttled ones do not count, so waiting recovers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str], deque[float]] = {}

    def clear(self) -> None:
        with self._lock:
            self._hits = {}

    def allow(self, endpoint: str, client_key: str, limit: int | None, now: float) -> bool:
        if limit is None:
            return True
        key = (endpoint, client_key)
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - WINDOW_SECONDS:
                hits.popleft()
            if len(hits) >= limit:
                return False
            hits.append(now)
            return True
