"""Replay over real HTTP to real receivers: as captured, re-signed, rate-limited, counted."""

from __future__ import annotations

import asyncio
import io
import time

import httpx
import pytest
import redis.asyncio as aioredis

from receiver.ingest.capture import CaptureConfig, export_capture
from receiver.ingest.replay import (
    Delivery,
    Progress,
    TokenBucket,
    read_deliveries,
    replay,
)
from receiver.testing.redis_server import free_port
from tests.factories import CLIENT_SECRET, delivery, make_settings
from tests.ingest.conftest import captured, running_receiver, wait_until


def signed(count: int, *, timestamp: int | None = None, tag: str = "user") -> list[Delivery]:
    deliveries = []
    for i in range(count):
        body, headers = delivery(open_id=f"{tag}-{i}", timestamp=timestamp)
        deliveries.append(Delivery(i + 1, body, headers["TikTok-Signature"]))
    return deliveries


async def test_captured_deliveries_replay_as_captured(redis_url: str, other_db_url: str) -> None:
    sent = signed(5)
    with running_receiver(make_settings(redis_url), CaptureConfig(enabled=True)) as first:
        async with httpx.AsyncClient() as client:
            for d in sent:
                headers = {"TikTok-Signature": d.signature or ""}
                response = await client.post(first, content=d.body, headers=headers)
                assert response.status_code == 200
        wait_until(lambda: len(captured(redis_url)) == 5)
    lines: list[bytes] = []
    redis = aioredis.Redis.from_url(redis_url)
    assert await export_capture(redis, lines.append) == 5
    await redis.aclose()
    deliveries, bad = read_deliveries(lines)
    assert bad == []
    assert [(d.body, d.signature) for d in deliveries] == [(d.body, d.signature) for d in sent]

    # A second receiver with a Redis of its own: the captured signatures are still fresh.
    with running_receiver(make_settings(other_db_url)) as second:
        result = await replay(deliveries, second)
        assert (result.sent, result.accepted, result.duplicate, result.failed) == (5, 5, 0, 0)
        assert result.succeeded
        again = await replay(deliveries, second)
    assert (again.accepted, again.duplicate) == (0, 5)
    assert again.succeeded  # a duplicate is still a 200


async def test_old_signatures_are_refused_unless_resigned(redis_url: str) -> None:
    deliveries = signed(4, timestamp=int(time.time()) - 3600)
    with running_receiver(make_settings(redis_url)) as url:
        as_captured = await replay(deliveries, url)
        resigned = await replay(deliveries, url, secret=CLIENT_SECRET)
        wrong_secret = await replay(deliveries, url, secret="not the secret")
    assert as_captured.statuses == {401: 4}
    assert as_captured.reasons == {(401, "stale_timestamp"): 4}
    assert as_captured.failed == 4
    assert not as_captured.succeeded
    assert sorted(as_captured.failures) == [(n, "401 stale_timestamp") for n in (1, 2, 3, 4)]
    assert (resigned.accepted, resigned.failed) == (4, 0)
    assert wrong_secret.reasons == {(401, "invalid_signature"): 4}


async def test_the_rate_is_honoured(redis_url: str) -> None:
    deliveries = signed(30)
    with running_receiver(make_settings(redis_url)) as url:
        started = time.monotonic()
        result = await replay(deliveries, url, rate=20, concurrency=8)
        elapsed = time.monotonic() - started
    assert result.accepted == 30
    # One token at the start, then one every 50 ms.
    assert 1.35 <= elapsed < 3.0


async def test_the_token_bucket_allows_a_small_burst_then_the_rate() -> None:
    bucket = TokenBucket(200)
    assert bucket.burst == 10
    started = time.monotonic()
    await asyncio.gather(*(bucket.acquire() for _ in range(110)))
    assert 0.45 <= time.monotonic() - started < 1.0
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)


async def test_answers_without_a_receiver_json_are_still_counted() -> None:
    answers = iter(
        [
            httpx.Response(200, text="OK"),
            httpx.Response(500, text="Internal Server Error"),
            httpx.Response(503, json={"error": "unavailable", "message": "retry"}),
            httpx.Response(400, json={"error": "malformed"}),
        ]
    )

    def answer(_request: httpx.Request) -> httpx.Response:
        return next(answers)

    result = await replay(
        signed(4),
        "http://receiver/webhooks/tiktok",
        concurrency=1,
        transport=httpx.MockTransport(answer),
    )
    assert (result.sent, result.ok, result.other_200, result.failed) == (4, 1, 1, 3)
    assert result.statuses == {500: 1, 503: 1, 400: 1}
    assert result.reasons == {(500, "other"): 1, (503, "unavailable"): 1, (400, "malformed"): 1}
    summary = result.summary()
    assert "503              1 (unavailable 1)" in summary
    assert summary.endswith("FAILED: 3 not answered 200")


async def test_no_answer_is_a_failure() -> None:
    url = f"http://127.0.0.1:{free_port()}/webhooks/tiktok"
    result = await replay(signed(3), url)
    assert result.errors == {"ConnectError": 3}
    assert result.failed == 3
    assert "no answer        3 (ConnectError 3)" in result.summary()


async def test_stopping_waits_for_requests_in_flight_and_counts_them() -> None:
    stop = asyncio.Event()
    seen = 0

    def answer(_request: httpx.Request) -> httpx.Response:
        nonlocal seen
        seen += 1
        if seen == 3:
            stop.set()  # Ctrl-C while the third request is in flight
        return httpx.Response(200, json={"status": "accepted"})

    result = await replay(
        signed(10), "http://r/", concurrency=1, stop=stop, transport=httpx.MockTransport(answer)
    )
    assert (result.sent, result.accepted, result.interrupted) == (3, 3, True)
    assert "interrupted: 7 deliveries not sent" in result.summary()
    assert not result.succeeded


async def test_abandoning_cancels_requests_in_flight() -> None:
    abandon = asyncio.Event()

    async def answer(_request: httpx.Request) -> httpx.Response:
        abandon.set()
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    started = time.monotonic()
    result = await replay(
        signed(5),
        "http://r/",
        concurrency=2,
        abandon=abandon,
        transport=httpx.MockTransport(answer),
    )
    assert time.monotonic() - started < 5
    assert (result.sent, result.interrupted) == (0, True)


def test_the_progress_bar_redraws_in_place_on_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(stream, 10, tty=True)
    progress.draw(5, 1)
    progress.log("line 3: 401 stale_timestamp")
    progress.finish(10, 1)
    out = stream.getvalue()
    first = out.split("\r")[1]
    assert first.startswith("[############............] 5/10  50%")
    assert "errors 1" in first
    assert "\rline 3: 401 stale_timestamp\n" in out
    assert out.endswith("\n")
    assert "[########################] 10/10 100%" in out
    assert "\x1b" not in out  # plain \r, no escape codes


def test_progress_is_periodic_lines_elsewhere() -> None:
    stream = io.StringIO()
    progress = Progress(stream, 4)  # StringIO is not a terminal
    assert progress.interval == 2.0
    progress.draw(1, 0)
    progress.finish(4, 0)
    lines = stream.getvalue().splitlines()
    assert [line[:16] for line in lines] == ["replay: 1/4  25%", "replay: 4/4 100%"]
    assert "\r" not in stream.getvalue()


async def test_replay_draws_progress_while_it_runs() -> None:
    stream = io.StringIO()

    async def answer(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return httpx.Response(200, json={"status": "duplicate"})

    progress = Progress(stream, 20, tty=False, interval=0.05)
    result = await replay(
        signed(20),
        "http://r/",
        concurrency=1,
        progress=progress,
        transport=httpx.MockTransport(answer),
    )
    assert result.duplicate == 20
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3
    assert lines[-1].startswith("replay: 20/20 100%")
