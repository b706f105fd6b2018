"""Running the real worker in tests: deliver through the receiver, drain in burst mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress

from handlers.context import HandlerOutcome
from handlers.registry import HandlerRegistry
from handlers.worker import create_worker
from receiver.app import create_app
from receiver.settings import Settings
from receiver.testing.asgi import app_client
from receiver.testing.tester import drain_worker
from receiver.vault.crypto import generate_key
from tests.factories import make_settings

TEST_ENCRYPTION_KEY = generate_key()


def worker_settings(redis_url: str, **env: str) -> Settings:
    base = {
        "TOKEN_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
        "WORKER_RETRY_BASE_SECONDS": "0.01",
        "WORKER_RETRY_MAX_SECONDS": "0.05",
        "WORKER_POLL_DELAY_SECONDS": "0.01",
        "WORKER_MAX_TRIES": "3",
    }
    return make_settings(redis_url, **{**base, **env})


async def deliver(settings: Settings, deliveries: Sequence[tuple[bytes, dict[str, str]]]) -> None:
    """POST signed deliveries to the receiver app; each must be accepted."""
    async with app_client(create_app(settings)) as client:
        for body, headers in deliveries:
            response = await client.post("/webhooks/tiktok", content=body, headers=headers)
            assert response.status_code == 200, response.text


async def drain(
    settings: Settings, handler_registry: HandlerRegistry | None = None
) -> list[HandlerOutcome]:
    """Run a real arq worker in burst mode until the queue is empty; return what ran."""
    return await drain_worker(settings, handler_registry)


@asynccontextmanager
async def worker_running(settings: Settings) -> AsyncIterator[None]:
    """A real arq worker (not burst: it waits for retries) in this event loop."""
    worker = create_worker(settings, handle_signals=False, with_crons=False)
    task = asyncio.ensure_future(worker.main())
    try:
        yield
    finally:
        # Start nothing more and let the jobs under way finish (briefly): arq's close()
        # cancels a job still running and re-raises its cancellation.
        worker.allow_pick_jobs = False
        running = [t for t in worker.tasks.values() if not t.done()]
        if running:
            await asyncio.wait(running, timeout=5)
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await worker.close()


async def wait_for(what: str, condition: Callable[[], bool], within: float = 60) -> None:
    """Poll `condition` until it holds; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
