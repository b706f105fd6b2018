"""The log of simulated-API calls that tests assert on ("exactly one refresh call")."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from tiktok_sandbox.models import CallRecord

MAX_CALLS = 10_000


@dataclass
class CallContext:
    """What a handler learns about its call while it runs; logged when it answers."""

    endpoint: str
    method: str
    time: float
    log_id: str
    client_key: str | None = None
    open_id: str | None = None
    grant_type: str | None = None
    error: str | None = None
    fault: str | None = None


class CallLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: deque[CallRecord] = deque(maxlen=MAX_CALLS)
        self._seq = 0

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def record(self, ctx: CallContext, status: int) -> CallRecord:
        with self._lock:
            self._seq += 1
            record = CallRecord(
                seq=self._seq,
                time=ctx.time,
                endpoint=ctx.endpoint,
                method=ctx.method,
                status=status,
                error=ctx.error,
                client_key=ctx.client_key,
                open_id=ctx.open_id,
                grant_type=ctx.grant_type,
                fault=ctx.fault,
                log_id=ctx.log_id,
            )
            self._calls.append(record)
            return record

    def list(
        self, *, endpoint: str | None = None, since: int = 0, grant_type: str | None = None
    ) -> list[CallRecord]:
        with self._lock:
            return [
                c
                for c in self._calls
                if c.seq > since
                and (endpoint is None or c.endpoint == endpoint)
                and (grant_type is None or c.grant_type == grant_type)
            ]
