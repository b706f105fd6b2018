"""arq's own give-up paths end in the dead-letter list, with a metric and an ERROR log.

Each test leaves Redis the way the failure leaves it (a try count raised by worker
deaths, a payload that expired, bytes no deserializer accepts, a function this worker
does not have), then runs the real worker over it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from arq.worker import func
from prometheus_client import REGISTRY

from handlers.deadletter import DeadLetterStore
from handlers.registry import HandlerRegistry
from handlers.worker import create_worker
from receiver.ingest.jobs import PROCESS_EVENT, encode_job
from receiver.settings import Settings
from tests.factories import delivery
from tests.store import Store
from tests.worker_support import deliver, drain, worker_settings


def gave_up(reason: str) -> float:
    return REGISTRY.get_sample_value("tiktok_worker_gave_up_total", {"reason": reason}) or 0.0


async def letters(redis_url: str) -> list[Any]:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        return await DeadLetterStore(client).list()
    finally:
        await client.aclose()


def queued_job_id(store: Store) -> str:
    ids = store.zrange("arq:queue")
    assert len(ids) == 1
    return ids[0].decode()


def error_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture
def store(redis_url: str) -> Any:
    client = Store(redis_url)
    yield client
    client.close()


async def test_a_job_whose_worker_died_on_every_try_is_dead_lettered(
    redis_url: str, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    settings = worker_settings(redis_url)
    body, headers = delivery("video.publish.completed", {"share_id": "video.1.a"})
    await deliver(settings, [(body, headers)])
    job_id = queued_job_id(store)
    # What each killed worker left behind: arq counts a try when a job starts.
    store.client.set(f"arq:retry:{job_id}", settings.worker_max_tries + 3)
    before = gave_up("max_tries")
    with caplog.at_level(logging.INFO):
        await drain(settings, HandlerRegistry())
    [letter] = await letters(redis_url)
    assert letter.function == PROCESS_EVENT
    assert letter.args == [body]
    assert letter.job_id == job_id
    assert letter.event == "video.publish.completed"
    assert letter.error_type == "JobAbandoned"
    assert "retries exceeded" in letter.error_message
    assert gave_up("max_tries") == before + 1
    assert any("dead-lettered" in line and job_id in line for line in error_logs(caplog))
    assert store.zcard("arq:queue") == 0


async def test_an_expired_job_leaves_a_dead_letter_with_its_id(
    redis_url: str, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    settings = worker_settings(redis_url)
    await deliver(settings, [delivery()])
    job_id = queued_job_id(store)
    store.client.delete(f"arq:job:{job_id}")  # as JOB_EXPIRES_SECONDS would
    before = gave_up("expired")
    with caplog.at_level(logging.INFO):
        await drain(settings, HandlerRegistry())
    [letter] = await letters(redis_url)
    assert letter.job_id == job_id
    assert "expired" in letter.error_message
    assert gave_up("expired") == before + 1
    assert any("expired" in line for line in error_logs(caplog))


async def test_an_undecodable_job_is_dead_lettered_with_its_bytes(
    redis_url: str, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    settings = worker_settings(redis_url)
    raw = b"\x80\x04not msgpack at all"
    store.client.set("arq:job:garbage-1", raw)
    store.client.zadd("arq:queue", {"garbage-1": time.time() * 1000})
    before = gave_up("undecodable")
    with caplog.at_level(logging.INFO):
        await drain(settings, HandlerRegistry())
    [letter] = await letters(redis_url)
    assert letter.job_id == "garbage-1"
    assert letter.args == [raw]
    assert gave_up("undecodable") == before + 1
    assert any("garbage-1" in line for line in error_logs(caplog))
    assert store.zcard("arq:queue") == 0


async def test_a_job_for_an_unknown_function_is_dead_lettered(redis_url: str, store: Store) -> None:
    settings = worker_settings(redis_url)
    job = encode_job("no_such_function", [b"x"], {}, enqueue_time_ms=int(time.time() * 1000))
    store.client.set("arq:job:unknown-1", job)
    store.client.zadd("arq:queue", {"unknown-1": time.time() * 1000})
    before = gave_up("unknown_function")
    await drain(settings, HandlerRegistry())
    [letter] = await letters(redis_url)
    assert letter.function == "no_such_function"
    assert letter.args == [b"x"]
    assert gave_up("unknown_function") == before + 1


async def _explodes(ctx: dict[str, Any], value: str) -> None:
    raise RuntimeError(f"exploded on {value}")


async def _fine(ctx: dict[str, Any]) -> str:
    return "ok"


async def _run(settings: Settings) -> None:
    worker = create_worker(
        settings,
        handler_registry=HandlerRegistry(),
        burst=True,
        handle_signals=False,
        with_crons=False,
        extra_functions=[func(_explodes, name="explodes"), func(_fine, name="fine")],
    )
    try:
        await worker.main()
    finally:
        await worker.close()


async def test_a_failure_outside_the_handlers_is_dead_lettered_and_success_is_not(
    redis_url: str, store: Store
) -> None:
    settings = worker_settings(redis_url)
    now_ms = int(time.time() * 1000)
    store.client.set("arq:job:boom-1", encode_job("explodes", ["v"], {}, enqueue_time_ms=now_ms))
    store.client.set("arq:job:fine-1", encode_job("fine", [], {}, enqueue_time_ms=now_ms))
    store.client.zadd("arq:queue", {"boom-1": now_ms, "fine-1": now_ms})
    before = gave_up("failed")
    await _run(settings)
    [letter] = await letters(redis_url)
    assert letter.job_id == "boom-1"
    assert letter.function == "explodes"
    assert letter.args == ["v"]
    assert gave_up("failed") == before + 1
    assert store.zcard("arq:queue") == 0
