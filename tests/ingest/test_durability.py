"""Acknowledge only what is durable: Redis faults give 503, and TikTok's retry then lands."""

from __future__ import annotations

from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker, func
from prometheus_client import REGISTRY

from receiver.app import create_app
from receiver.ingest.jobs import PROCESS_EVENT, job_deserializer, job_serializer
from receiver.testing.asgi import app_client
from receiver.testing.redis_server import RedisServer
from tests.factories import delivery, make_settings
from tests.store import Store

URL = "/webhooks/tiktok"


def unavailable_count() -> float:
    value = REGISTRY.get_sample_value(
        "tiktok_webhook_deliveries_total",
        {"event": "authorization.removed", "outcome": "unavailable"},
    )
    return value or 0.0


async def test_redis_down_gives_503_then_the_retry_is_accepted(
    stoppable_redis: RedisServer,
) -> None:
    settings = make_settings(stoppable_redis.url, REDIS_TIMEOUT_SECONDS="0.5")
    async with app_client(create_app(settings)) as client:
        first, first_headers = delivery(open_id="before")
        assert (await client.post(URL, content=first, headers=first_headers)).status_code == 200

        stoppable_redis.stop()
        body, headers = delivery(open_id="during")
        before = unavailable_count()
        response = await client.post(URL, content=body, headers=headers)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"] == "unavailable"
        assert unavailable_count() == before + 1
        assert (await client.get("/readyz")).status_code == 503

        stoppable_redis.start()
        retry = await client.post(URL, content=body, headers=headers)
        assert retry.status_code == 200
        # Not marked as seen by the failed attempt: accepted, not "duplicate".
        assert retry.json() == {"status": "accepted"}
        assert (await client.get("/readyz")).status_code == 200

    store = Store(stoppable_redis.url)
    try:
        assert store.zcard("arq:queue") == 1
    finally:
        store.close()


async def test_redis_refusing_writes_gives_503_and_nothing_is_marked(
    stoppable_redis: RedisServer,
) -> None:
    store = Store(stoppable_redis.url)
    settings = make_settings(stoppable_redis.url)
    try:
        async with app_client(create_app(settings)) as client:
            store.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
            store.command("CONFIG", "SET", "maxmemory", "1")
            body, headers = delivery()
            response = await client.post(URL, content=body, headers=headers)
            assert response.status_code == 503
            assert store.dbsize() == 0
            store.command("CONFIG", "SET", "maxmemory", "0")
            retry = await client.post(URL, content=body, headers=headers)
            assert retry.json() == {"status": "accepted"}
    finally:
        store.close()


async def test_script_cache_flush_is_survived(redis_url: str) -> None:
    store = Store(redis_url)
    try:
        async with app_client(create_app(make_settings(redis_url))) as client:
            store.command("SCRIPT", "FLUSH")
            body, headers = delivery()
            response = await client.post(URL, content=body, headers=headers)
            assert response.json() == {"status": "accepted"}
            assert store.zcard("arq:queue") == 1
    finally:
        store.close()


async def test_a_real_arq_worker_consumes_the_job(redis_url: str) -> None:
    seen: list[Any] = []

    async def process_event(ctx: dict[str, Any], body: bytes) -> None:
        seen.append(body)

    async with app_client(create_app(make_settings(redis_url))) as client:
        body, headers = delivery("video.upload.failed", {"share_id": "video.1.x"})
        assert (await client.post(URL, content=body, headers=headers)).status_code == 200

    worker = Worker(
        functions=[func(process_event, name=PROCESS_EVENT)],
        redis_settings=RedisSettings.from_dsn(redis_url),
        burst=True,
        poll_delay=0,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    assert seen == [body]
    assert worker.jobs_complete == 1
    assert worker.jobs_failed == 0


async def test_concurrent_deliveries_share_round_trips(redis_url: str) -> None:
    import asyncio

    batches_before = REGISTRY.get_sample_value("tiktok_webhook_enqueue_batch_size_count") or 0.0
    async with app_client(create_app(make_settings(redis_url))) as client:
        deliveries = [delivery(open_id=f"user-{i}") for i in range(50)]
        responses = await asyncio.gather(
            *(client.post(URL, content=b, headers=h) for b, h in deliveries)
        )
    assert [r.status_code for r in responses] == [200] * 50
    batches = (REGISTRY.get_sample_value("tiktok_webhook_enqueue_batch_size_count") or 0) - (
        batches_before
    )
    assert 1 <= batches < 50
    store = Store(redis_url)
    try:
        assert store.zcard("arq:queue") == 50
    finally:
        store.close()


async def test_client_gone_mid_write_keeps_the_event(redis_url: str) -> None:
    """A write Redis confirmed stays, even if the request was cancelled meanwhile."""
    import asyncio

    app = create_app(make_settings(redis_url))
    async with app_client(app):
        queue = app.webhook.queue
        assert queue is not None
        task = asyncio.ensure_future(queue.enqueue("k" * 40, b"{}"))
        await asyncio.sleep(0)
        task.cancel()
        await queue.aclose()
    store = Store(redis_url)
    try:
        assert store.zcard("arq:queue") == 1
    finally:
        store.close()
