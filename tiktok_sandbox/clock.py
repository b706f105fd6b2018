"""The sandbox's notion of now: a base clock plus an offset the admin API can move forward."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SandboxClock:
    """Lets tests expire codes and tokens without sleeping (`POST /sandbox/clock/advance`)."""

    def __init__(self, base: Callable[[], float] | None = None) -> None:
        self._base = base or time.time
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            offset = self._offset
        return self._base() + offset

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
        return self.now()

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
