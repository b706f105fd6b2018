"""The delivery log: every webhook the sandbox sends, its retry schedule and its attempts.

One lock guards it and is never held across an await, so request handlers, the sender
and tests on other threads may all use it. Schedules run on `time.monotonic()`; the
times shown (`created_at`, `next_attempt_at`, an attempt's `started_at`) are on the
wall clock the log was given, the one webhooks are signed with.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from tiktok_sandbox.config import WebhookSettings
from tiktok_sandbox.models import SandboxEvent
from tiktok_sandbox.signing import envelope_body

MAX_DELIVERIES = 10_000
MAX_ATTEMPTS_KEPT = 100  # per delivery; `attempt_count` still counts them all
RESPONSE_SNIPPET_BYTES = 1024

DeliveryStatus = Literal["pending", "delivered", "discarded"]
STATUSES: frozenset[str] = frozenset({"pending", "delivered", "discarded"})


class Attempt(msgspec.Struct, kw_only=True):
    """One POST of a delivery. `status_code` None means no answer: see `error`."""

    number: int
    started_at: float
    duration_ms: float
    url: str | None
    signature_timestamp: int
    status_code: int | None
    error: str | None
    response_body: str  # the first RESPONSE_SNIPPET_BYTES bytes, decoded leniently
    response_truncated: bool = False

    @property
    def acknowledged(self) -> bool:
        # The contract: only 200 acknowledges; 202 or 204 are failures too (§1.1).
        return self.status_code == 200


class DeliverySummary(msgspec.Struct, kw_only=True):
    """A row of `GET /sandbox/webhooks`."""

    id: int
    event: str
    open_id: str | None
    client_key: str
    status: DeliveryStatus
    attempt_count: int
    last_status_code: int | None
    last_error: str | None
    created_at: float
    next_attempt_at: float | None
    finished_at: float | None
    event_seq: int | None
    redelivery_of: int | None


class DeliveryDetail(DeliverySummary, kw_only=True):
    """`GET /sandbox/webhooks/{id}`: the summary, the exact body and every attempt."""

    create_time: int
    body: str
    discard_reason: str | None
    attempts: list[Attempt]


@dataclass(frozen=True)
class Job:
    """A claimed delivery: what the sender needs for one attempt."""

    delivery_id: int
    client_key: str
    body: bytes
    number: int


@dataclass
class _Record:
    id: int
    client_key: str
    event: str
    open_id: str | None
    create_time: int
    body: bytes
    event_seq: int | None
    redelivery_of: int | None
    created_at: float
    created_mono: float
    status: DeliveryStatus = "pending"
    attempts: list[Attempt] = field(default_factory=list)
    attempt_count: int = 0
    due: float | None = None  # monotonic; None while in flight or once finished
    next_attempt_at: float | None = None
    in_flight: bool = False
    finished_at: float | None = None
    discard_reason: str | None = None

    def summary(self) -> DeliverySummary:
        last = self.attempts[-1] if self.attempts else None
        return DeliverySummary(**self._summary_fields(last))

    def detail(self) -> DeliveryDetail:
        last = self.attempts[-1] if self.attempts else None
        return DeliveryDetail(
            **self._summary_fields(last),
            create_time=self.create_time,
            body=self.body.decode("utf-8", "replace"),
            discard_reason=self.discard_reason,
            attempts=list(self.attempts),
        )

    def _summary_fields(self, last: Attempt | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "open_id": self.open_id,
            "client_key": self.client_key,
            "status": self.status,
            "attempt_count": self.attempt_count,
            "last_status_code": last.status_code if last else None,
            "last_error": last.error if last else None,
            "created_at": self.created_at,
            "next_attempt_at": self.next_attempt_at,
            "finished_at": self.finished_at,
            "event_seq": self.event_seq,
            "redelivery_of": self.redelivery_of,
        }


class DeliveryLog:
    """Deliveries by id (ids keep counting across `clear`, so a late attempt result of a
    cleared delivery can never land on a new one)."""

    def __init__(self, wall_clock: Callable[[], float] | None = None) -> None:
        self.wall_clock: Callable[[], float] = wall_clock or time.time
        self._lock = threading.Lock()
        self._records: dict[int, _Record] = {}
        self._by_event: dict[int, int] = {}
        self._next_id = 1
        self._notify: Callable[[], None] | None = None

    def set_notifier(self, notify: Callable[[], None] | None) -> None:
        """`notify()` is called (from any thread) whenever a delivery becomes due now."""
        with self._lock:
            self._notify = notify

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._records)
            self._records = {}
            self._by_event = {}
        return cleared

    # -- adding --------------------------------------------------------------------

    def add_event(self, event: SandboxEvent) -> DeliveryDetail:
        """Queue the event for delivery, its body built like TikTok's envelope."""
        body = envelope_body(
            client_key=event.client_key,
            event=event.event,
            content=event.content,
            user_openid=event.user_openid,
            create_time=event.create_time,
        )
        return self._add(
            client_key=event.client_key,
            event=event.event,
            open_id=event.user_openid,
            create_time=event.create_time,
            body=body,
            event_seq=event.seq,
            redelivery_of=None,
        )

    def redeliver(self, delivery_id: int) -> DeliveryDetail | None:
        """A new delivery of the same body bytes (a duplicate, as at-least-once allows)."""
        with self._lock:
            source = self._records.get(delivery_id)
        if source is None:
            return None
        return self._add(
            client_key=source.client_key,
            event=source.event,
            open_id=source.open_id,
            create_time=source.create_time,
            body=source.body,
            event_seq=source.event_seq,
            redelivery_of=source.id,
        )

    def _add(
        self,
        *,
        client_key: str,
        event: str,
        open_id: str | None,
        create_time: int,
        body: bytes,
        event_seq: int | None,
        redelivery_of: int | None,
    ) -> DeliveryDetail:
        wall, mono = self.wall_clock(), time.monotonic()
        with self._lock:
            record = _Record(
                id=self._next_id,
                client_key=client_key,
                event=event,
                open_id=open_id,
                create_time=create_time,
                body=body,
                event_seq=event_seq,
                redelivery_of=redelivery_of,
                created_at=wall,
                created_mono=mono,
                due=mono,
                next_attempt_at=wall,
            )
            self._next_id += 1
            self._records[record.id] = record
            if event_seq is not None:
                self._by_event.setdefault(event_seq, record.id)
            self._prune()
            detail = record.detail()
            notify = self._notify
        if notify is not None:
            notify()
        return detail

    def _prune(self) -> None:
        """Keep at most MAX_DELIVERIES, dropping the oldest finished ones first."""
        excess = len(self._records) - MAX_DELIVERIES
        if excess <= 0:
            return
        drop = [r.id for r in self._records.values() if r.status != "pending"][:excess]
        if len(drop) < excess:
            chosen = set(drop)
            drop += [i for i in self._records if i not in chosen][: excess - len(drop)]
        for delivery_id in drop:
            del self._records[delivery_id]

    # -- reading -------------------------------------------------------------------

    def get(self, delivery_id: int) -> DeliveryDetail | None:
        with self._lock:
            record = self._records.get(delivery_id)
            return record.detail() if record is not None else None

    def for_event(self, seq: int) -> DeliveryDetail | None:
        """The first delivery of outbox event `seq`, if one was made."""
        with self._lock:
            delivery_id = self._by_event.get(seq)
            record = self._records.get(delivery_id) if delivery_id is not None else None
            return record.detail() if record is not None else None

    # -- the sender's side -----------------------------------------------------------

    def claim_due(self, now: float, limit: int) -> list[Job]:
        """Take up to `limit` deliveries due by `now` (monotonic), earliest first."""
        if limit <= 0:
            return []
        with self._lock:
            due = sorted(
                (r for r in self._records.values() if r.due is not None and r.due <= now),
                key=lambda r: (r.due, r.id),
            )[:limit]
            for record in due:
                record.due = None
                record.in_flight = True
            return [
                Job(
                    delivery_id=r.id,
                    client_key=r.client_key,
                    body=r.body,
                    number=r.attempt_count + 1,
                )
                for r in due
            ]

    def next_due(self) -> float | None:
        """When (monotonic) the earliest waiting delivery is due; None when none waits."""
        with self._lock:
            return min((r.due for r in self._records.values() if r.due is not None), default=None)

    def finish(
        self, job: Job, attempt: Attempt, settings: WebhookSettings, now: float
    ) -> DeliveryStatus | None:
        """Record an attempt; schedule the next one or finish the delivery.

        Returns the delivery's status after it, None if the delivery is gone.

        `now` is monotonic. The n-th failure waits `settings.retry_delay(n)`; a retry that
        would fall past the horizon (or past `max_attempts`) is not made: discarded.
        """
        wall = self.wall_clock()
        with self._lock:
            record = self._records.get(job.delivery_id)
            if record is None or not record.in_flight:
                return None  # cleared (reset) while the attempt ran
            record.in_flight = False
            record.attempt_count += 1
            record.attempts.append(attempt)
            del record.attempts[:-MAX_ATTEMPTS_KEPT]
            record.next_attempt_at = None
            if attempt.acknowledged:
                record.status = "delivered"
                record.finished_at = wall
                return record.status
            max_attempts = settings.max_attempts
            delay = settings.retry_delay(record.attempt_count)
            if max_attempts is not None and record.attempt_count >= max_attempts:
                reason = f"no retry after {max_attempts} attempt(s) (max_attempts)"
            elif now + delay - record.created_mono > settings.horizon:
                reason = (
                    f"the next retry would come after the horizon "
                    f"({settings.horizon_seconds:g} s x time_scale {settings.time_scale:g})"
                )
            else:
                record.due = now + delay
                record.next_attempt_at = wall + delay
                return record.status
            record.status = "discarded"
            record.finished_at = wall
            record.discard_reason = reason
            return record.status

    def release(self, job: Job) -> None:
        """Give back a claim whose attempt was cut short (the sender stopping): due now."""
        with self._lock:
            record = self._records.get(job.delivery_id)
            if record is not None and record.in_flight:
                record.in_flight = False
                record.due = time.monotonic()
                record.next_attempt_at = self.wall_clock()

    def list(
        self,
        *,
        status: str | None = None,
        event: str | None = None,
        open_id: str | None = None,
        client_key: str | None = None,
        since: int = 0,
    ) -> list[DeliverySummary]:
        """Oldest first; `since` is a delivery id."""
        with self._lock:
            return [
                r.summary()
                for r in self._records.values()
                if r.id > since
                and (status is None or r.status == status)
                and (event is None or r.event == event)
                and (open_id is None or r.open_id == open_id)
                and (client_key is None or r.client_key == client_key)
            ]
