"""The forwarding handler and one try of one delivery.

`forward_event` runs as a handler after the built-in ones of the same event (it is
registered last, for every event, only when destinations are configured) and creates
the deliveries, due at once. Each destination's dispatcher (handlers/forwarding/
dispatcher.py) claims due deliveries and calls `Forwarder.deliver` for each: it sends,
records the attempt, and makes the delivery due again on FORWARD_RETRY_SCHEDULE (or
Retry-After, if longer), dead-letters it after the last try, or holds it when its
destination is disabled. A destination at its rate limit has the delivery due again
shortly instead of waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, cast

from handlers.forwarding import metrics
from handlers.forwarding.payload import build_payload
from handlers.forwarding.sender import (
    Result,
    destination_connections,
    send,
    split_credentials,
)
from handlers.forwarding.store import (
    RESPONSE_KEPT_CHARS,
    Attempt,
    Claim,
    DeliveryStore,
    delivery_id,
    destination_key,
)
from handlers.ratelimit import RateLimiter, RateLimitWaitTooLong
from handlers.registry import HandlerRegistry
from receiver import fetched, keys
from receiver.forward_config import ForwardDestination
from receiver.ingest.events import (
    PortabilityDownloadReady,
    VideoPublishCompleted,
    VideoUploadFailed,
    WebhookEvent,
)
from receiver.settings import Settings
from receiver.status_store import status_key

if TYPE_CHECKING:
    from arq.connections import ArqRedis

    from handlers.context import HandlerContext

logger = logging.getLogger("tiktok_webhooks.forward")

HANDLER_NAME: Final = "builtin.forward"
STATE_CACHE_SECONDS: Final = 1.0


class Forwarder:
    """Per worker process: the destinations, their connection pools and limits, the store."""

    def __init__(self, settings: Settings, redis: ArqRedis) -> None:
        self.settings = settings
        self.store = DeliveryStore(redis)
        self.destinations = {d.name: d for d in settings.forward_destinations}
        self._keys = {d.name: d.secret_keys() for d in settings.forward_destinations}
        # (URL without user info, the Basic authorization it stood for) per destination
        self._targets = {d.name: split_credentials(d.url) for d in settings.forward_destinations}
        self._connections = {
            d.name: destination_connections(self._targets[d.name][0], concurrency=d.concurrency)
            for d in settings.forward_destinations
        }
        self._limiters = {
            d.name: _limiter(redis, d) for d in self.destinations.values() if d.rate_per_second
        }
        self._state: dict[str, tuple[float, bool, bool]] = {}
        # Set by the dispatchers: tell this process's dispatcher of new due deliveries.
        self.on_due: Callable[[str], None] | None = None

    async def aclose(self) -> None:
        await self.store.aclose()
        for connections in self._connections.values():
            await connections.aclose()

    # ------------------------------------------------------------------ the handler

    async def on_event(self, event: WebhookEvent) -> dict[str, Any]:
        envelope = event.envelope
        matching = [
            d for d in self.destinations.values() if d.matches(envelope.event, envelope.client_key)
        ]
        if not matching:
            return {"forwarded": 0}
        status_of = _status_object(event)
        profile_key = (
            f"{keys.PROFILE_PREFIX}{envelope.client_key}:{envelope.user_openid}"
            if envelope.user_openid
            else ""
        )
        items = [(delivery_id(event.dedupe_key, d.name), d.name) for d in matching]
        created = await self.store.create(
            items,
            body=build_payload(envelope),
            event=envelope.event,
            client_key=envelope.client_key,
            status_key=(
                status_key(status_of[0], envelope.client_key, status_of[1])
                if status_of is not None
                else ""
            ),
            profile_key=profile_key,
            publish_key=(
                fetched.publish_key(envelope.client_key, status_of[1])
                if status_of is not None and status_of[0] == "publish"
                else ""
            ),
            video_key=_video_key_of(event, envelope.client_key),
        )
        if self.on_due is not None:
            for (_, name), outcome in zip(items, created, strict=True):
                if outcome == "due":
                    self.on_due(name)
        return {
            "deliveries": [item[0] for item in items],
            "created": sum(outcome != "existed" for outcome in created),
        }

    async def _flags(self, name: str) -> tuple[bool, bool]:
        """(disabled, failing) of a destination, shared by all workers via Redis, cached
        for a second per process."""
        now = time.monotonic()
        cached = self._state.get(name)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        disabled, failing = await cast(
            Awaitable[list[bytes | None]],
            self.store.redis.hmget(destination_key(name), ["disabled_at", "failing_since"]),
        )
        self._state[name] = (now + STATE_CACHE_SECONDS, disabled is not None, failing is not None)
        return disabled is not None, failing is not None

    # ------------------------------------------------------------------ one try

    async def deliver(
        self, dest: ForwardDestination, claim: Claim, sent: Callable[[], None] | None = None
    ) -> str:
        """One try of a claimed delivery; returns the delivery's state afterwards.

        `sent` is called once, when the destination's part is over (the answer read, or
        no request made), before the result is recorded: the send slot is free again."""
        try:
            tried = await self._try(dest, claim)
        finally:
            if sent is not None:
                sent()
        if isinstance(tried, str):
            return tried
        result, failing = tried
        metrics.count_attempt(dest.name, result.outcome, result.latency)
        return await self._after(claim, dest, result, failing=failing)

    async def _try(self, dest: ForwardDestination, claim: Claim) -> tuple[Result, bool] | str:
        """The request and its result, with whether the destination was failing; or the
        delivery's new state when no request was made (disabled, rate limited)."""
        store = self.store
        disabled, failing = await self._flags(dest.name)
        if disabled:
            await store.finish(claim, attempt=None, state="held", note="destination disabled")
            return "held"
        limiter = self._limiters.get(dest.name)
        if limiter is not None:
            try:
                await limiter.acquire(f"forward:{dest.name}")
            except RateLimitWaitTooLong as exc:
                await store.finish(
                    claim, attempt=None, state="pending", delay=exc.wait_seconds,
                    note="rate limited",
                )  # fmt: skip
                return "pending"
        result = await send(
            self._connections[dest.name],
            keys=self._keys[dest.name],
            message_id=claim.id,
            body=claim.body,
            timeout_seconds=dest.timeout_seconds,
            authorization=self._targets[dest.name][1],
        )
        return result, failing

    async def _after(
        self, claim: Claim, dest: ForwardDestination, result: Result, *, failing: bool
    ) -> str:
        """Record the try; returns the delivery's state, or "superseded" when a replay or
        a newer claim took over meanwhile (then nothing is recorded, counted or logged)."""
        store = self.store
        now = time.time()

        def attempt(next_at: float | None) -> Attempt:
            return Attempt(
                number=claim.attempts + 1,
                at=now,
                outcome=result.outcome,
                status=result.status,
                latency_ms=round(result.latency * 1000, 2),
                response=result.response.decode("utf-8", "replace")[:RESPONSE_KEPT_CHARS],
                error=result.error,
                next_attempt_at=next_at,
            )

        if result.ok:
            if not await store.finish(claim, attempt=attempt(None), state="succeeded"):
                return "superseded"
            if failing:
                await store.note_success(dest.name)
                self._state.pop(dest.name, None)
            return "succeeded"
        if result.outcome == "gone":
            if await store.disable(dest.name, "the destination answered 410 Gone"):
                logger.error("forward destination %s answered 410 Gone: disabled", dest.name)
            self._state.pop(dest.name, None)
            written = await store.finish(
                claim, attempt=attempt(None), state="held",
                note="destination answered 410 Gone and was disabled",
            )  # fmt: skip
            return "held" if written else "superseded"
        schedule = self.settings.forward_retry_schedule
        if claim.tries < len(schedule):
            delay = schedule[claim.tries] * random.uniform(0.9, 1.1)
            if result.retry_after is not None:
                delay = max(delay, result.retry_after)
            state = "pending"
            written = await store.finish(
                claim, attempt=attempt(now + delay), state="pending", delay=delay,
                note=result.error or "",
            )  # fmt: skip
        else:
            state = "dead"
            written = await store.finish(
                claim, attempt=attempt(None), state="dead",
                note=f"gave up after {claim.tries + 1} tries: {result.error}",
            )  # fmt: skip
            if written:
                metrics.DEAD_LETTERED.labels(dest.name).inc()
                logger.warning(
                    "forward delivery %s to %s dead-lettered after %d tries: %s",
                    claim.id, dest.name, claim.tries + 1, result.error,
                )  # fmt: skip
        if not written:
            return "superseded"
        if await store.note_failure(
            dest.name, disable_after=self.settings.forward_disable_after_seconds
        ):
            logger.error("forward destination %s failed for too long: disabled", dest.name)
        self._state.pop(dest.name, None)
        return state

    # ------------------------------------------------------------------ metrics

    async def update_stats(self) -> None:
        now = time.time()
        for name in self.destinations:
            counts = await self.store.counts(name)
            metrics.PENDING.labels(name).set(counts["pending"])
            oldest = counts["oldest_pending_at"]
            metrics.OLDEST_PENDING_AGE.labels(name).set(max(0.0, now - oldest) if oldest else 0.0)
            metrics.DEAD_LETTERS.labels(name).set(counts["dead"])
            metrics.HELD.labels(name).set(counts["held"])
            metrics.DISABLED.labels(name).set(1 if counts["disabled"] else 0)


def _limiter(redis: ArqRedis, dest: ForwardDestination) -> RateLimiter:
    # A sliding window of one second (or of one request, below one per second).
    if dest.rate_per_second >= 1:
        return RateLimiter(
            redis, per_minute=int(dest.rate_per_second), window_ms=1000, max_sleep_seconds=2.0
        )
    return RateLimiter(
        redis,
        per_minute=1,
        window_ms=int(1000 / dest.rate_per_second),
        max_sleep_seconds=2.0,
    )


def _video_key_of(event: WebhookEvent, client_key: str) -> str:
    """The stored video of the event's post, for the post.publish.* events that name one."""
    post_id = getattr(event.content, "post_id", None)
    if isinstance(post_id, int | str) and not isinstance(post_id, bool) and str(post_id):
        return fetched.video_key(client_key, str(post_id))
    return ""


def _status_object(event: WebhookEvent) -> tuple[Any, str] | None:
    content = event.content
    if isinstance(content, VideoUploadFailed | VideoPublishCompleted):
        return "share", content.share_id
    if isinstance(content, PortabilityDownloadReady):
        return "portability", str(content.request_id)
    publish_id = getattr(content, "publish_id", None)
    if isinstance(publish_id, str):
        return "publish", publish_id
    return None


async def forward_event(event: WebhookEvent, ctx: HandlerContext) -> dict[str, Any] | None:
    """The handler: create this event's deliveries (see the module's docstring)."""
    forwarder = ctx.state.forwarder
    if forwarder is None:
        return None
    return await forwarder.on_event(event)


def with_forwarding(registry: HandlerRegistry) -> HandlerRegistry:
    """A copy of `registry` with the forwarding handler last for every event."""
    if any(h.name == HANDLER_NAME for h in registry.handlers_for("*forward-probe*")):
        return registry
    extended = registry.copy()
    extended.on_any(name=HANDLER_NAME)(forward_event)
    return extended
