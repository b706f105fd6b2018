"""Dispatch, retries and dead letters with a real arq worker and a real Redis."""

from __future__ import annotations

import pytest
from arq.connections import create_pool

from handlers.context import HandlerContext
from handlers.deadletter import DeadLetterStore
from handlers.errors import RetryLater
from handlers.registry import HandlerRegistry, registry
from handlers.worker import redis_settings
from receiver.ingest.events import VideoPublishCompleted, WebhookEvent
from receiver.ingest.jobs import job_deserializer, job_serializer
from tests.factories import delivery
from tests.store import Store
from tests.worker_support import deliver, drain, worker_settings


def empty_registry() -> HandlerRegistry:
    return HandlerRegistry()


async def test_a_custom_handler_gets_the_typed_event(redis_url: str) -> None:
    settings = worker_settings(redis_url)
    mine = registry.copy()
    seen: list[WebhookEvent] = []

    @mine.on("video.publish.completed", name="test.notify_team")
    async def notify_team(event: WebhookEvent, ctx: HandlerContext) -> str:
        seen.append(event)
        return "notified"

    await deliver(settings, [delivery("video.publish.completed", {"share_id": "video.7.a"})])
    outcomes = await drain(settings, mine)
    assert len(seen) == 1
    assert isinstance(seen[0].content, VideoPublishCompleted)
    assert seen[0].content.share_id == "video.7.a"
    assert seen[0].envelope.user_openid == "user-1"
    ours = [o for o in outcomes if o.handler == "test.notify_team"]
    assert len(ours) == 1
    assert ours[0].ok
    assert ours[0].result == "notified"
    # The built-in handler for the same event ran too.
    assert any(o.handler == "builtin.record_status" and o.ok for o in outcomes)


async def test_transient_failures_retry_then_dead_letter_then_replay(redis_url: str) -> None:
    settings = worker_settings(redis_url, WORKER_MAX_TRIES="3")
    flaky = empty_registry()
    calls: list[int] = []

    @flaky.on("tiktok.ping", name="test.always_busy")
    async def always_busy(event: WebhookEvent, ctx: HandlerContext) -> None:
        calls.append(ctx.job_try)
        raise RetryLater("the company's backend is busy")

    await deliver(settings, [delivery("tiktok.ping", {"reason": "testing Webhook"})])
    await drain(settings, flaky)
    assert calls == [1, 2, 3]

    pool = await create_pool(
        redis_settings(settings), job_serializer=job_serializer, job_deserializer=job_deserializer
    )
    try:
        store = DeadLetterStore(pool)
        letters = await store.list()
        assert len(letters) == 1
        letter = letters[0]
        assert letter.tries == 3
        assert letter.error_type == "RetryLater"
        assert "busy" in letter.error_message
        assert letter.event == "tiktok.ping"
        assert letter.function == "process_event"

        job_id = await store.replay(letter.id, pool, queue_name=settings.queue_name)
        assert job_id is not None
        assert await store.size() == 0
    finally:
        await pool.aclose()

    fixed = empty_registry()
    replayed: list[str] = []

    @fixed.on("tiktok.ping", name="test.always_busy")
    async def now_fine(event: WebhookEvent, ctx: HandlerContext) -> None:
        replayed.append(event.name)

    await drain(settings, fixed)
    assert replayed == ["tiktok.ping"]


async def test_a_bug_is_dead_lettered_without_blind_retries(redis_url: str) -> None:
    settings = worker_settings(redis_url, WORKER_MAX_TRIES="5")
    buggy = empty_registry()
    calls: list[int] = []

    @buggy.on("video.upload.failed", name="test.buggy")
    async def buggy_handler(event: WebhookEvent, ctx: HandlerContext) -> None:
        calls.append(ctx.job_try)
        raise KeyError("oops")

    await deliver(settings, [delivery("video.upload.failed", {"share_id": "video.1.b"})])
    await drain(settings, buggy)
    assert calls == [1]
    store = Store(redis_url)
    try:
        assert store.zcard("tiktok:dlq:index") == 1
    finally:
        store.close()


async def test_retry_runs_only_the_handlers_that_have_not_succeeded(redis_url: str) -> None:
    settings = worker_settings(redis_url)
    mixed = empty_registry()
    steady: list[int] = []
    flaky: list[int] = []

    @mixed.on("video.upload.failed", name="test.steady")
    async def steady_handler(event: WebhookEvent, ctx: HandlerContext) -> None:
        steady.append(ctx.job_try)

    @mixed.on("video.upload.failed", name="test.flaky")
    async def flaky_handler(event: WebhookEvent, ctx: HandlerContext) -> None:
        flaky.append(ctx.job_try)
        if ctx.job_try < 2:
            raise RetryLater("not yet")

    await deliver(settings, [delivery("video.upload.failed", {"share_id": "video.1.c"})])
    await drain(settings, mixed)
    assert steady == [1]
    assert flaky == [1, 2]


async def test_unknown_events_and_pings_are_recorded(redis_url: str) -> None:
    settings = worker_settings(redis_url)
    await deliver(
        settings,
        [delivery("live.started", {"room": 5}), delivery("tiktok.ping", {"reason": "x"})],
    )
    outcomes = await drain(settings)
    handlers = {o.handler for o in outcomes if o.ok}
    assert {"builtin.record_unknown", "builtin.record_ping"} <= handlers
    store = Store(redis_url)
    try:
        entries = store.command("LRANGE", "tiktok:events:unknown", 0, -1)
        assert len(entries) == 2
        assert any(b"live.started" in e for e in entries)
        assert not any(b"room" in e for e in entries)  # no content is kept
    finally:
        store.close()


def test_registry_rejects_double_registration() -> None:
    mine = empty_registry()

    async def handler(event: WebhookEvent, ctx: HandlerContext) -> None:
        return None

    mine.on("tiktok.ping", name="x")(handler)
    with pytest.raises(ValueError, match="already registered"):
        mine.on("tiktok.ping", name="x")(handler)
    assert [h.name for h in mine.handlers_for("tiktok.ping")] == ["x"]
    assert mine.handlers_for("never.heard.of") == []
