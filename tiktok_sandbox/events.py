"""The outbox of webhook events the sandbox raises (e.g. `authorization.removed`).

Every event is kept here (`GET /sandbox/events`); the state's delivery log subscribes and
turns each event of an app with a callback URL into a delivery, which the webhook sender
(`sandbox.webhooks`) signs with the app's client_secret (contract §1.4) and POSTs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgspec

from tiktok_sandbox.models import SandboxEvent

# `reason` values of authorization.removed (contract §1.3).
REASON_USER_DISCONNECTED = 1
REASON_DEVELOPER_REVOKED = 5

Listener = Callable[[SandboxEvent], object]  # what it returns is ignored


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
        self,
        *,
        client_key: str,
        event: str,
        open_id: str | None,
        content: dict[str, Any] | str,
        now: float,
        create_time: int | None = None,
    ) -> SandboxEvent:
        """Record an event and tell the listeners; a str `content` is sent as it is."""
        with self._lock:
            self._seq += 1
            record = SandboxEvent(
                seq=self._seq,
                client_key=client_key,
                event=event,
                create_time=int(now) if create_time is None else create_time,
                user_openid=open_id,
                # TikTok sends `content` as a string holding serialized JSON.
                content=content
                if isinstance(content, str)
                else msgspec.json.encode(content).decode(),
            )
            self._events.append(record)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(record)
        return record

    def list(self, since: int = 0) -> list[SandboxEvent]:
        with self._lock:
            return [e for e in self._events if e.seq > since]
