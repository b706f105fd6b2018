"""A receiver with capture wired into its lifespan, as `receiver/app.py` is to wire it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette

from receiver import keys, webhook
from receiver.app import ReceiverApp
from receiver.capture import Capture, CaptureConfig, capturing
from receiver.settings import Settings
from tests.store import Store
from tests.uvicorn_thread import serve_in_thread


class CapturingApp(ReceiverApp):
    """`ReceiverApp` whose lifespan also enters `capturing(...)` (docs/replay.md)."""

    def __init__(self, settings: Settings, capture: CaptureConfig) -> None:
        super().__init__(settings)
        self.capture_config = capture
        self.capture: Capture | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with (
            super().lifespan(app),
            capturing(self.webhook, self.redis, self.capture_config) as capture,
        ):
            self.capture = capture
            yield
            self.capture = None


@contextlib.contextmanager
def running_receiver(settings: Settings, capture: CaptureConfig | None = None) -> Iterator[str]:
    """A real receiver on uvicorn; yields its webhook URL."""
    app = CapturingApp(settings, capture or CaptureConfig())
    with serve_in_thread(app) as base:
        yield base + webhook.PATH


def captured(redis_url: str) -> list[dict[bytes, bytes]]:
    store = Store(redis_url)
    try:
        entries = store.command("XRANGE", keys.CAPTURE_STREAM, "-", "+")
        return [dict(fields) for _, fields in entries]
    finally:
        store.close()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def captures_counted(outcome: str) -> float:
    value = REGISTRY.get_sample_value("tiktok_webhook_captures_total", {"outcome": outcome})
    return value or 0.0


@pytest.fixture
def other_db_url(redis_url: str) -> str:
    """Database 1 of the test server: a second receiver that shares no keys with the first."""
    return redis_url.rsplit("/", 1)[0] + "/1"
