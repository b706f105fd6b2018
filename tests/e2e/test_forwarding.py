"""Forwarding end to end: the sandbox sends TikTok events to the real receiver over HTTP,
a real worker forwards them to a consumer on loopback that fails for a while, and every
event arrives, each `webhook-id` handled once; a consumer that is down the whole time
ends with dead letters that a replay delivers once it is up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import msgspec

from handlers.forwarding import admin
from handlers.forwarding.store import DeliveryStore
from receiver.app import create_app as create_receiver
from receiver.ingest.webhook import PATH
from receiver.redis_conn import create_redis
from receiver.settings import Settings
from receiver.testing.redis_server import free_port
from receiver.testing.servers import serve_in_thread
from tests.handlers.forwarding.consumer import Consumer, running
from tests.handlers.forwarding.support import SECRET, forward_settings
from tests.tiktok_sandbox.harness import make_config
from tests.worker_support import wait_for, worker_running
from tiktok_sandbox import create_app as create_sandbox

EVENTS = 20
BIG_POST_ID = 7300000000000000001


@contextmanager
def tiktok_sending_to(settings: Settings) -> Iterator[httpx.Client]:
    """The receiver on real HTTP, and the sandbox (as TikTok) calling it back."""
    with serve_in_thread(create_receiver(settings)) as receiver:
        config = make_config(rate_limit_per_minute=None)
        config.apps[0].callback_url = receiver + PATH
        with (
            serve_in_thread(create_sandbox(config)) as sandbox,
            httpx.Client(base_url=sandbox, timeout=10) as client,
        ):
            yield client


def send_events(sandbox: httpx.Client) -> None:
    for n in range(EVENTS):
        response = sandbox.post(
            "/sandbox/webhooks",
            json={
                "event": "post.publish.publicly_available",
                "open_id": f"user-{n % 3}",
                "content": {"publish_id": f"pub-{n}", "post_id": BIG_POST_ID + n},
            },
        )
        assert response.status_code == 202, response.text


async def test_a_consumer_failing_for_a_while_gets_every_event_once(redis_url: str) -> None:
    # 500 for the first 25 requests, then 200: some events need several tries.
    consumer = Consumer(SECRET, answers=[500] * 25)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url, FORWARD_RETRY_SCHEDULE="50ms,100ms,200ms,1s")
        with tiktok_sending_to(settings) as sandbox:
            async with worker_running(settings):
                send_events(sandbox)
                await wait_for("every event", lambda: len(consumer.handled) == EVENTS)
                await asyncio.sleep(0.3)  # anything late would show up as a second handling
    assert len(consumer.handled) == EVENTS
    assert consumer.handled_twice == []
    assert all(r.verified for r in consumer.received)
    assert len(consumer.received) >= EVENTS + 25  # every 500 was followed by a retry
    post_ids = sorted(p["data"]["content"]["post_id"] for p in consumer.handled.values())
    assert post_ids == sorted(str(BIG_POST_ID + n) for n in range(EVENTS))
    redis = create_redis(settings)
    try:
        store = DeliveryStore(redis)
        assert await store.ids_between(0, 2e9, destination="default", unfinished=True) == []
    finally:
        await redis.aclose()


async def test_a_consumer_down_all_along_gets_everything_by_replay(redis_url: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"  # nothing listens there yet
    settings = forward_settings(redis_url, url, FORWARD_RETRY_SCHEDULE="20ms,20ms")
    redis = create_redis(settings)
    store = DeliveryStore(redis)
    try:
        with tiktok_sending_to(settings) as sandbox:
            async with worker_running(settings):
                started = time.time()
                send_events(sandbox)

                async def all_dead() -> bool:
                    counts = await store.counts("default")
                    return bool(counts["dead"] == EVENTS)

                deadline = time.monotonic() + 60
                while not await all_dead():
                    assert time.monotonic() < deadline, await store.counts("default")
                    await asyncio.sleep(0.1)
                for delivery in await store.ids_between(
                    0, 2e9, destination="default", unfinished=True
                ):
                    attempts = await store.attempts(delivery)
                    assert [a.outcome for a in attempts] == ["network_error"] * 3

                consumer = Consumer(SECRET)
                app = consumer.app()
                import uvicorn

                server = uvicorn.Server(
                    uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
                )
                serving = asyncio.ensure_future(server.serve())
                try:
                    await wait_for("the consumer", lambda: server.started)
                    sent = await admin.replay(
                        store, since=started - 5, until=time.time(), destination="default"
                    )
                    assert len(sent) == EVENTS
                    await wait_for("every event", lambda: len(consumer.handled) == EVENTS)
                finally:
                    server.should_exit = True
                    await serving
        assert consumer.handled_twice == []
        assert (await store.counts("default"))["dead"] == 0
        types = {msgspec.json.decode(r.body)["type"] for r in consumer.received}
        assert types == {"post.publish.publicly_available"}
    finally:
        await redis.aclose()
