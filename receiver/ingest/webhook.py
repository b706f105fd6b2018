"""`POST /webhooks/tiktok`: read (capped), verify, decode, dedupe, enqueue, then 200.

A plain ASGI callable rather than a Starlette route: it is the hot path, and every
allocation a framework adds per request shows up directly in deliveries per second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

import msgspec
from starlette.types import Message, Receive, Scope, Send

from receiver import metrics
from receiver.ingest.enqueue import EventQueue, QueueUnavailable
from receiver.ingest.events import (
    Envelope,
    MalformedEvent,
    decode_envelope,
    decode_event,
    event_label,
)
from receiver.ingest.signature import SignatureError, parse_signature_header, verify_with_keys
from receiver.ingest.unsigned import accept_unsigned
from receiver.settings import Settings

logger = logging.getLogger("tiktok_webhooks.webhook")

PATH: Final = "/webhooks/tiktok"
_SIGNATURE_HEADER: Final = b"tiktok-signature"
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]
_ACCEPTED: Final = b'{"status":"accepted"}'
_DUPLICATE: Final = b'{"status":"duplicate"}'
_PING_ACCEPTED: Final = b'{"status":"ping"}'


def _error_body(error: str, message: str) -> bytes:
    return msgspec.json.encode({"error": error, "message": message})


class _Reject(Exception):
    """Ends a request early with a status, an error code and an outcome."""

    def __init__(
        self, status: int, error: str, message: str, outcome: str, event: str = metrics.NO_EVENT
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = _error_body(error, message)
        self.outcome = outcome
        self.event = event


class WebhookEndpoint:
    """The ASGI app behind the callback URL. `queue` is attached by the lifespan."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.queue: EventQueue | None = None
        # Opt-in capture (receiver/ingest/capture.py): called with (raw body, signature header,
        # arrival time) for every verified delivery; set by the app's lifespan.
        self.capture: Callable[[bytes, bytes | None, float], None] | None = None
        # The console's recent-delivery index (receiver/ingest/recent.py): called with (raw
        # body, outcome, arrival time) for every verified delivery once its answer is known.
        self.recent: Callable[[bytes, str, float], None] | None = None
        self._clock = clock
        self._max_body = settings.webhook_max_body_bytes
        self._tolerance = settings.webhook_tolerance_seconds
        # Secrets encoded once: the HMAC keys of each app.
        self._keys: dict[str, tuple[bytes, ...]] = {
            app.client_key: tuple(s.reveal().encode() for s in app.client_secrets)
            for app in settings.apps
        }
        self._retry_after = str(settings.webhook_retry_after_seconds).encode()
        self._body_timeout = settings.webhook_body_timeout_seconds
        self._accept_unsigned_ping = settings.webhook_accept_unsigned_ping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        if scope["method"] != "POST":
            await _respond(
                send,
                405,
                _error_body("method_not_allowed", "use POST"),
                [(b"allow", b"POST")],
            )
            return
        try:
            status, body, event, outcome = await self._handle(scope, receive)
            extra: list[tuple[bytes, bytes]] = []
        except _Reject as reject:
            status, body, event, outcome = reject.status, reject.body, reject.event, reject.outcome
            extra = []
            if status == 503:
                extra = [(b"retry-after", self._retry_after)]
            elif status in (408, 413):
                extra = [(b"connection", b"close")]
        except Exception:
            # A bug of ours: log it (never the body or headers, which may be anyone's)
            # and ask TikTok to retry rather than lose the event with a 4xx.
            logger.exception("unexpected error while handling a webhook delivery")
            status, event, outcome = 503, metrics.NO_EVENT, "error"
            body = _error_body("unavailable", "temporary failure, retry later")
            extra = [(b"retry-after", self._retry_after)]
        await _respond(send, status, body, extra)
        metrics.count_delivery(event, outcome)
        metrics.REQUEST_DURATION.observe(time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, bytes, str, str]:
        # A peer that sends its body slowly, or never finishes it, must not hold the
        # request (nor a graceful shutdown) for longer than this.
        try:
            async with asyncio.timeout(self._body_timeout):
                raw = await self._read_body(scope, receive)
        except TimeoutError:
            raise _Reject(
                408,
                "body_timeout",
                f"the body did not arrive within {self._body_timeout:g} s",
                "body_timeout",
            ) from None
        signature: bytes | None = None
        for name, value in scope["headers"]:
            if name == _SIGNATURE_HEADER:
                signature = value
                break

        try:
            envelope = decode_envelope(raw)
        except MalformedEvent:
            envelope = None
        if envelope is None:
            # Not an envelope, so the app (and its secret) cannot be known: answer before
            # any HMAC work, which would otherwise be spent on every configured secret.
            # Only the header's form is checked (cheap): without one it is a 401.
            try:
                parse_signature_header(signature)
            except SignatureError as exc:
                raise _Reject(401, "invalid_signature", str(exc), "invalid_signature") from None
            raise _Reject(400, "malformed", "body is not a TikTok webhook envelope", "malformed")
        label = event_label(envelope.event)
        keys = self._keys.get(envelope.client_key)
        if keys is None:
            raise _Reject(401, "unknown_app", "client_key is not configured", "unknown_app", label)

        now = self._clock()
        try:
            timestamp = verify_with_keys(
                signature, raw, keys, tolerance_seconds=self._tolerance, now=now
            )
        except SignatureError as exc:
            if exc.reason == "missing" and accept_unsigned(
                label, accept_ping=self._accept_unsigned_ping
            ):
                return 200, _PING_ACCEPTED, label, "unsigned_ping"
            if exc.reason == "stale":
                assert exc.timestamp is not None
                metrics.SIGNATURE_AGE.observe(max(0.0, now - exc.timestamp))
                raise _Reject(401, "stale_timestamp", str(exc), "stale_timestamp", label) from None
            raise _Reject(401, "invalid_signature", str(exc), "invalid_signature", label) from None
        metrics.SIGNATURE_AGE.observe(max(0.0, now - timestamp))
        if self.capture is not None:
            self.capture(raw, signature, now)
        recent = self.recent
        if recent is None:
            return await self._enqueue(envelope, raw, label)
        try:
            answer = await self._enqueue(envelope, raw, label)
        except _Reject as reject:
            recent(raw, reject.outcome, now)
            raise
        recent(raw, answer[3], now)
        return answer

    async def _enqueue(
        self, envelope: Envelope, raw: bytes, label: str
    ) -> tuple[int, bytes, str, str]:
        """Decode a verified delivery's content and enqueue it."""
        try:
            event = decode_event(envelope)
        except MalformedEvent as exc:
            raise _Reject(400, "malformed", str(exc), "malformed", label) from None

        queue = self.queue
        if queue is None:
            raise _Reject(503, "unavailable", "receiver is starting", "unavailable", label)
        enqueue_started = time.perf_counter()
        try:
            is_new = await queue.enqueue(event.dedupe_key, raw)
        except QueueUnavailable:
            metrics.ENQUEUE_DURATION.observe(time.perf_counter() - enqueue_started)
            raise _Reject(
                503, "unavailable", "event store unavailable, retry later", "unavailable", label
            ) from None
        metrics.ENQUEUE_DURATION.observe(time.perf_counter() - enqueue_started)
        if is_new:
            return 200, _ACCEPTED, label, "accepted"
        return 200, _DUPLICATE, label, "duplicate"

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        too_large = _Reject(
            413,
            "too_large",
            f"body exceeds {self._max_body} bytes",
            "too_large",
        )
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    raise _Reject(400, "malformed", "invalid Content-Length", "malformed")
                if int(value) > self._max_body:
                    raise too_large
                break
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                raise _Reject(400, "disconnected", "client went away", "malformed")
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise too_large  # stop reading: the rest never reaches memory
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(
    send: Send, status: int, body: bytes, extra_headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
