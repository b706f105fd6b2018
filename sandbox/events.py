"""The outbox of webhook events the sandbox would send (e.g. `authorization.removed`).

Nothing delivers them yet. A later webhook sender subscribes here, signs each event with
the app's client_secret (contract §1.4) and POSTs it to the app's callback URL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgspec

from sandbox.models import SandboxEvent

# `reason` values of authorization.removed (contract §1.3).
REASON_USER_DISCONNECTED = 1
REASON_DEVELOPER_REVOKED = 5

Listener = Callable[[SandboxEvent], None]


class Outbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[SandboxEvent] = []
        self._listeners: list[Listener] = []
        self._seq = 0

    def clear(self) -> None:
        """Drop the events; listeners stay, since they belong to the process, not the state."""
        with self._lock:
            self._events = []

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def emit(
        self, *, client_key: str, event: str, open_id: str, content: dict[str, Any], now: float
    ) -> SandboxEvent:
        with self._lock:
            self._seq += 1
            record = SandboxEvent(
                seq=self._seq,
                client_key=client_key,
                event=event,
                create_time=int(now),
                user_openid=open_id,
                # TikTok sends `content` as a string holding serialized JSON.
                content=msgspec.json.encode(content).decode(),
            )
            self._events.append(record)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(record)
        return record

    def list(self, since: int = 0) -> list[SandboxEvent]:
        with self._lock:
            return [e for e in self._events if e.seq > since]
