"""The console's recent-delivery index: what a delivery leaves there, its bounds, and that
it never fails or changes a delivery's answer."""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from receiver import keys
from receiver.app import create_app
from receiver.ingest.recent import RecentIndex
from receiver.testing.asgi import app_client
from receiver.vault.crypto import generate_key
from tests.factories import delivery, make_settings

CONSOLE = {
    "CONSOLE_ENABLED": "1",
    "CONSOLE_TOKEN": "console-" + "t" * 40,
    "TOKEN_ENCRYPTION_KEYS": generate_key(),
}


def recent_counted(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "tiktok_console_recent_deliveries_total", {"outcome": outcome}
    )
    return value or 0.0


async def entries(redis: aioredis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in await redis.xrange(keys.RECENT_STREAM)]


async def test_every_verified_delivery_with_its_answer(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    app = create_app(make_settings(redis_url, **CONSOLE))
    accepted, _ = delivery(open_id="a")
    malformed, malformed_headers = delivery("video.upload.failed", content={"share_id": 5})
    async with app_client(app) as client:
        _, headers = delivery(open_id="a")
        for body, head in ((accepted, headers), (accepted, headers)):
            assert (await client.post("/webhooks/tiktok", content=body, headers=head)).is_success
        bad = await client.post("/webhooks/tiktok", content=malformed, headers=malformed_headers)
        assert bad.status_code == 400
        unsigned = await client.post(
            "/webhooks/tiktok", content=accepted, headers={"TikTok-Signature": "t=1,s=00"}
        )
        assert unsigned.status_code == 401
    # Leaving the lifespan wrote what was buffered.
    found = await entries(redis_client)
    assert [f[b"outcome"] for f in found] == [b"accepted", b"duplicate", b"malformed"]
    assert [f[b"body"] for f in found] == [accepted, accepted, malformed]
    assert set(found[0]) == {b"body", b"outcome", b"received_at"}
    assert abs(int(found[0][b"received_at"]) / 1000 - time.time()) < 60
    minute = f"{keys.RECENT_MINUTE_PREFIX}{int(int(found[0][b'received_at']) / 60000)}"
    counts = await redis_client.hgetall(minute)  # type: ignore[misc]
    assert sum(int(v) for v in counts.values()) == 3


async def test_bounded_by_count_and_age(redis_client: aioredis.Redis) -> None:
    old_ms = int((time.time() - 7200) * 1000)
    await redis_client.xadd(keys.RECENT_STREAM, {"body": b"old"}, id=f"{old_ms}-0")
    by_age = RecentIndex(redis_client, max_entries=100, max_age_seconds=3600)
    by_age.note(b"new", "accepted", time.time())
    await by_age.aclose()
    assert [f[b"body"] for f in await entries(redis_client)] == [b"new"]

    by_count = RecentIndex(redis_client, max_entries=4, max_age_seconds=3600)
    for number in range(10):
        by_count.note(b"body %d" % number, "accepted", time.time())
    await by_count.aclose()
    found = await entries(redis_client)
    assert [f[b"body"] for f in found] == [b"body 6", b"body 7", b"body 8", b"body 9"]


async def test_a_failing_index_never_fails_a_delivery(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    await redis_client.set(keys.RECENT_STREAM, "not a stream")  # every XADD: WRONGTYPE
    failed, ok = recent_counted("failed"), recent_counted("ok")
    app = create_app(make_settings(redis_url, **CONSOLE))
    async with app_client(app) as client:
        for number in range(3):
            body, headers = delivery(open_id=f"user-{number}")
            response = await client.post("/webhooks/tiktok", content=body, headers=headers)
            assert response.json() == {"status": "accepted"}
    assert recent_counted("failed") == failed + 3
    assert recent_counted("ok") == ok
    assert await redis_client.zcard("arq:queue") == 3
