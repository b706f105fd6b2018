"""Capture: verified deliveries go to a bounded stream, byte-exact; it never fails one."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis.asyncio as aioredis

from receiver import keys
from receiver.ingest import capture as capture_module
from receiver.ingest.capture import Capture, CaptureConfig
from receiver.ingest.delivery import signed_headers
from receiver.settings import ConfigError
from receiver.testing.asgi import app_client
from receiver.testing.redis_server import free_port
from tests.factories import CLIENT_SECRET, delivery, make_settings
from tests.ingest.conftest import (
    captured,
    captures_counted,
    capturing_app,
    running_receiver,
    wait_until,
)

ON = CaptureConfig(enabled=True)


def test_config_defaults_and_values() -> None:
    assert CaptureConfig.from_env({}) == CaptureConfig(
        enabled=False, max_entries=10_000, max_age_seconds=7 * 24 * 3600
    )
    config = CaptureConfig.from_env(
        {
            "WEBHOOK_CAPTURE": "1",
            "WEBHOOK_CAPTURE_MAX_ENTRIES": " 500 ",
            "WEBHOOK_CAPTURE_MAX_AGE_SECONDS": "3600",
        }
    )
    assert config == CaptureConfig(enabled=True, max_entries=500, max_age_seconds=3600)
    assert CaptureConfig.from_env({"WEBHOOK_CAPTURE": "0"}).enabled is False
    assert CaptureConfig.from_env({"WEBHOOK_CAPTURE": "true"}).enabled is True


def test_config_reports_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        CaptureConfig.from_env(
            {
                "WEBHOOK_CAPTURE": "maybe",
                "WEBHOOK_CAPTURE_MAX_ENTRIES": "1e4",
                "WEBHOOK_CAPTURE_MAX_AGE_SECONDS": "0",
            }
        )
    problems = caught.value.problems
    assert len(problems) == 3
    assert "WEBHOOK_CAPTURE must be 1" in problems[0]
    assert "'maybe'" in problems[0]
    assert "WEBHOOK_CAPTURE_MAX_ENTRIES must be a whole number" in problems[1]
    assert "WEBHOOK_CAPTURE_MAX_AGE_SECONDS must be at least 1" in problems[2]
    with pytest.raises(ConfigError, match="WEBHOOK_CAPTURE_MAX_ENTRIES must be at least 1"):
        CaptureConfig(max_entries=0)


def test_capture_on_stores_verified_deliveries_byte_exact(redis_url: str) -> None:
    settings = make_settings(redis_url)
    # Odd spacing, raw UTF-8 and a trailing newline: what was signed is what is kept.
    odd = (
        b'{ "client_key" : "test_client_key", "event": "authorization.removed",\n'
        b' "create_time": 1700000000, "user_openid": "us\xc3\xa9r",'
        b' "content": "{\\"reason\\": 1}" }\n'
    )
    not_json = b"\xff\xfe not an envelope"
    normal, normal_headers = delivery(open_id="user-1")
    sent = [
        (odd, signed_headers(CLIENT_SECRET, odd), 200),
        (normal, normal_headers, 200),
        (normal, normal_headers, 200),  # a duplicate is a delivery too
    ]
    unverified, _ = delivery(open_id="user-2")
    before = time.time()
    with running_receiver(settings, ON) as url:
        for body, headers, status in sent:
            assert httpx.post(url, content=body, headers=headers).status_code == status
        # Not an envelope: refused before any signature check, so never verified or kept.
        not_envelope = httpx.post(
            url, content=not_json, headers=signed_headers(CLIENT_SECRET, not_json)
        )
        assert not_envelope.status_code == 400
        bad_headers = signed_headers("not the secret", unverified)
        assert httpx.post(url, content=unverified, headers=bad_headers).status_code == 401
        stale_headers = signed_headers(CLIENT_SECRET, unverified, timestamp=int(before) - 3600)
        assert httpx.post(url, content=unverified, headers=stale_headers).status_code == 401
        wait_until(lambda: len(captured(redis_url)) >= len(sent))
    entries = captured(redis_url)
    assert [entry[b"body"] for entry in entries] == [body for body, _, _ in sent]
    assert [entry[b"signature"].decode() for entry in entries] == [
        headers["TikTok-Signature"] for _, headers, _ in sent
    ]
    for entry in entries:
        assert set(entry) == {b"body", b"signature", b"received_at"}
        assert before * 1000 - 1 <= int(entry[b"received_at"]) <= time.time() * 1000 + 1


def test_capture_off_writes_no_stream(redis_url: str) -> None:
    body, headers = delivery()
    with running_receiver(make_settings(redis_url)) as url:
        assert httpx.post(url, content=body, headers=headers).json() == {"status": "accepted"}
        time.sleep(0.1)
    assert captured(redis_url) == []


async def _record(redis_url: str, config: CaptureConfig, count: int, tag: str = "") -> None:
    client = aioredis.Redis.from_url(redis_url)
    capture = Capture(client, config)
    for i in range(count):
        capture.record(f"body {tag}{i}".encode(), b"t=1,s=00", time.time())
    await capture.aclose()
    await client.aclose()


async def test_retention_by_count_is_exact_for_small_limits(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    await _record(redis_url, CaptureConfig(enabled=True, max_entries=5), 12)
    entries = await redis_client.xrange(keys.CAPTURE_STREAM)
    kept = [fields[b"body"] for _, fields in entries]
    assert kept == [f"body {i}".encode() for i in range(7, 12)]


async def test_retention_by_count_is_approximate_for_large_limits(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    await _record(redis_url, CaptureConfig(enabled=True, max_entries=1000), 1600)
    # Redis drops whole stream nodes (100 entries each by default), never too many.
    assert 1000 <= await redis_client.xlen(keys.CAPTURE_STREAM) <= 1100


async def test_retention_by_age(redis_url: str, redis_client: aioredis.Redis) -> None:
    now_ms = int(time.time() * 1000)
    day_ms = 24 * 3600 * 1000
    for age_ms, body in [(3 * day_ms, b"three days"), (2 * day_ms, b"two days")]:
        await redis_client.xadd(keys.CAPTURE_STREAM, {"body": body}, id=f"{now_ms - age_ms}-0")
    await redis_client.xadd(keys.CAPTURE_STREAM, {"body": b"an hour"}, id=f"{now_ms - 3600_000}-0")
    config = CaptureConfig(enabled=True, max_entries=100, max_age_seconds=24 * 3600)
    await _record(redis_url, config, 2, tag="new ")
    entries = await redis_client.xrange(keys.CAPTURE_STREAM)
    assert [fields[b"body"] for _, fields in entries] == [b"an hour", b"body new 0", b"body new 1"]


async def test_a_failing_capture_never_fails_a_delivery(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    await redis_client.set(keys.CAPTURE_STREAM, "not a stream")  # every XADD: WRONGTYPE
    app = capturing_app(make_settings(redis_url), ON)
    failed, ok = captures_counted("failed"), captures_counted("ok")
    async with app_client(app) as client:
        for n in range(3):
            body, headers = delivery(open_id=f"user-{n}")
            response = await client.post("/webhooks/tiktok", content=body, headers=headers)
            assert response.json() == {"status": "accepted"}
    # Leaving the lifespan wrote (or failed to write) what was buffered.
    assert captures_counted("failed") == failed + 3
    assert captures_counted("ok") == ok
    assert await redis_client.zcard("arq:queue") == 3


async def test_an_unreachable_redis_only_counts_failures() -> None:
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1)
    capture = Capture(client, ON)
    failed = captures_counted("failed")
    capture.record(b"body", b"t=1,s=00", time.time())
    await asyncio.sleep(0.2)
    assert captures_counted("failed") == failed + 1
    await capture.aclose()
    await client.aclose()


async def test_the_buffer_is_bounded(redis_url: str, redis_client: aioredis.Redis) -> None:
    capture = Capture(redis_client, ON, max_pending=3)
    failed, ok = captures_counted("failed"), captures_counted("ok")
    for i in range(5):
        capture.record(b"%d" % i, None, time.time())
    await capture.aclose()
    capture.record(b"after close", None, time.time())
    assert captures_counted("failed") == failed + 3
    assert captures_counted("ok") == ok + 3
    assert await redis_client.xlen(keys.CAPTURE_STREAM) == 3


async def test_the_buffer_is_bounded_in_bytes_too(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    capture = Capture(redis_client, ON, max_pending_bytes=2500)
    failed = captures_counted("failed")
    for _ in range(3):
        capture.record(b"x" * 1000, None, time.time())
    await capture.aclose()
    assert captures_counted("failed") == failed + 1
    assert await redis_client.xlen(keys.CAPTURE_STREAM) == 2


async def test_large_batches_are_split_by_count_and_bytes(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture_module, "MAX_BYTES_PER_CALL", 2500)
    calls: list[int] = []
    capture = Capture(redis_client, ON)
    roundtrip = capture._roundtrip

    async def counting(chunk: list[tuple[bytes, bytes | None, float]]) -> object:
        calls.append(len(chunk))
        return await roundtrip(chunk)

    monkeypatch.setattr(capture, "_roundtrip", counting)
    for _ in range(5):
        capture.record(b"x" * 1000, None, time.time())  # 2.5 KB per call: 2 + 2 + 1 + ...
    for _ in range(300):
        capture.record(b"y", None, time.time())  # ... 255, then 45: 256 entries per call
    await capture.aclose()
    assert calls == [2, 2, 256, 45]
    assert await redis_client.xlen(keys.CAPTURE_STREAM) == 305


async def test_deliveries_arriving_together_share_one_round_trip(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    capture = Capture(redis_client, ON, linger_seconds=0.01)
    for i in range(600):  # more than one call's worth: split into chunks, all written
        capture.record(b"%d" % i, b"sig", time.time())
    await asyncio.sleep(0.3)
    assert await redis_client.xlen(keys.CAPTURE_STREAM) == 600
    # Arrivals while a batch is being written go into the next one.
    capture.record(b"late", b"sig", time.time())
    await capture.aclose()
    assert await redis_client.xlen(keys.CAPTURE_STREAM) == 601
