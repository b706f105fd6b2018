"""Receivers with capture on (WEBHOOK_CAPTURE), for the capture and replay tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import msgspec
import pytest
from prometheus_client import REGISTRY

from receiver import keys
from receiver.app import ReceiverApp, create_app
from receiver.ingest import webhook
from receiver.ingest.capture import CaptureConfig
from receiver.settings import Settings
from receiver.testing.servers import serve_in_thread
from tests.store import Store


def capturing_app(settings: Settings, capture: CaptureConfig) -> ReceiverApp:
    """The receiver app with `capture` as its WEBHOOK_CAPTURE* settings."""
    return create_app(
        msgspec.structs.replace(
            settings,
            webhook_capture=capture.enabled,
            webhook_capture_max_entries=capture.max_entries,
            webhook_capture_max_age_seconds=capture.max_age_seconds,
        )
    )


@contextlib.contextmanager
def running_receiver(settings: Settings, capture: CaptureConfig | None = None) -> Iterator[str]:
    """A real receiver on uvicorn; yields its webhook URL."""
    app = capturing_app(settings, capture or CaptureConfig())
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
