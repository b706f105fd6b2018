"""A destination that hangs holds only its own lane: another destination and the
built-in handlers go on."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from handlers.worker import create_worker
from receiver.settings import Settings, load_settings
from tests.factories import CLIENT_KEY, CLIENT_SECRET, delivery
from tests.handlers.forwarding.consumer import Consumer, running
from tests.handlers.forwarding.support import SECRET
from tests.worker_support import TEST_ENCRYPTION_KEY, deliver

EVENTS = 6


@asynccontextmanager
async def worker_running(settings: Settings) -> AsyncIterator[None]:
    worker = create_worker(settings, handle_signals=False, with_crons=False)
    task = asyncio.ensure_future(worker.main())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await worker.close()


async def wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_hanging_destination_holds_back_nothing_else(
    redis_url: str, tmp_path: Path
) -> None:
    gate = threading.Event()
    hanging, healthy = Consumer(SECRET, gate=gate), Consumer(SECRET)
    with running(hanging) as slow_url, running(healthy) as fast_url:
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
[[forward]]
name = "hanging"
url = "{slow_url}"
secrets = ["{SECRET}"]
concurrency = 2
timeout_seconds = 60

[[forward]]
name = "healthy"
url = "{fast_url}"
secrets = ["{SECRET}"]
"""
        )
        settings = load_settings(
            {
                "TIKTOK_CLIENT_KEY": CLIENT_KEY,
                "TIKTOK_CLIENT_SECRET": CLIENT_SECRET,
                "REDIS_URL": redis_url,
                "TOKEN_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
                "TIKTOK_WEBHOOKS_ENV": "development",
                "WORKER_POLL_DELAY_SECONDS": "0.01",
            },
            config,
        )
        try:
            async with worker_running(settings):
                await deliver(
                    settings,
                    [delivery("tiktok.ping", {"reason": f"r{n}"}) for n in range(EVENTS)],
                )
                await wait_for("the healthy destination", lambda: len(healthy.handled) == EVENTS)
                # Meanwhile the hanging one has answered nothing, and holds at most its
                # concurrency in requests.
                assert hanging.handled == {}
                assert hanging.arrived <= 2
                gate.set()
                await wait_for("the hanging destination", lambda: len(hanging.handled) == EVENTS)
        finally:
            gate.set()
    assert healthy.handled_twice == []
    assert hanging.handled_twice == []
