"""The worker as a real process: SIGKILL mid-job, SIGTERM, metrics, health, dlq CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from receiver.testing.redis_server import free_port
from tests.factories import CLIENT_KEY, CLIENT_SECRET, delivery
from tests.store import Store
from tests.worker_support import TEST_ENCRYPTION_KEY, deliver, worker_settings

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "receiver.cli"]


def worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TIKTOK_CLIENT_KEY": CLIENT_KEY,
        "TIKTOK_CLIENT_SECRET": CLIENT_SECRET,
        "REDIS_URL": redis_url,
        "TOKEN_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
        "WORKER_POLL_DELAY_SECONDS": "0.02",
        **extra,
    }


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [*CLI, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def count(store: Store, key: str) -> int:
    value = store.get(key)
    return int(value) if value is not None else 0


def test_sigkill_mid_job_then_a_new_worker_completes_it_once(
    redis_url: str, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    store = Store(redis_url)
    env = worker_env(
        redis_url,
        WORKER_HANDLER_MODULES="tests.handlers.blocking_handlers",
        WORKER_JOB_TIMEOUT_SECONDS="3",
    )
    try:
        store.command("SET", "blocktest:block", "1")
        asyncio.run(deliver(worker_settings(redis_url), [delivery("tiktok.ping", {"reason": "x"})]))
        first = spawn("worker", "--metrics-port", "0", env=env)
        wait_for(lambda: count(store, "blocktest:starts") == 1, 20, "the job to start")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        store.command("DEL", "blocktest:block")

        second = spawn("worker", "--metrics-port", "0", env=env)
        # arq hands the job to another worker once the dead one's in-progress mark expires.
        wait_for(lambda: count(store, "blocktest:completions") >= 1, 45, "the job to complete")
        # arq removes the job from its queue just after the handler returns.
        wait_for(lambda: store.zcard("arq:queue") == 0, 10, "arq to finish the job")
        time.sleep(0.5)
        assert count(store, "blocktest:starts") == 2
        assert count(store, "blocktest:completions") == 1
        assert len(store.keys("blocktest:effect:*")) == 1
        assert store.zcard("tiktok:dlq:index") == 0

        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        store.close()


def test_worker_metrics_and_health_check(
    redis_url: str, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    env = worker_env(redis_url)
    failing = subprocess.run(
        [*CLI, "worker", "--check"], env=env, capture_output=True, timeout=30, check=False
    )
    assert failing.returncode == 1  # no worker yet
    spawn("worker", "--metrics-port", str(port), env=env)
    asyncio.run(deliver(worker_settings(redis_url), [delivery("tiktok.ping", {"reason": "x"})]))

    def metrics_text() -> str:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.TransportError:
            return ""

    line = 'tiktok_worker_jobs_total{event="tiktok.ping",function="process_event",outcome="ok"} 1.0'
    wait_for(lambda: line in metrics_text(), 30, "the job to be counted")
    text = metrics_text()
    for name in (
        "tiktok_worker_job_duration_seconds",
        "tiktok_worker_queue_depth",
        "tiktok_worker_queue_oldest_age_seconds",
        "tiktok_dead_letter_size",
        "tiktok_api_requests_total",
    ):
        assert name in text
    assert CLIENT_SECRET not in text
    wait_for(
        lambda: (
            subprocess.run(
                [*CLI, "worker", "--check"], env=env, capture_output=True, timeout=30, check=False
            ).returncode
            == 0
        ),
        20,
        "the health check to pass",
    )


def test_worker_refuses_to_start_without_an_encryption_key(redis_url: str) -> None:
    env = worker_env(redis_url)
    del env["TOKEN_ENCRYPTION_KEYS"]
    result = subprocess.run([*CLI, "worker"], env=env, capture_output=True, timeout=30, check=False)
    assert result.returncode == 2
    assert b"TOKEN_ENCRYPTION_KEYS" in result.stderr
    assert b"Traceback" not in result.stderr


def test_dlq_cli_list_show_replay_drop(redis_url: str) -> None:
    settings = worker_settings(redis_url, WORKER_MAX_TRIES="1")
    from handlers.errors import RetryLater
    from handlers.registry import HandlerRegistry
    from tests.worker_support import drain

    failing = HandlerRegistry()

    @failing.on("video.upload.failed", name="test.down")
    async def down(event: object, ctx: object) -> None:
        raise RetryLater("downstream is down")

    asyncio.run(
        deliver(
            settings,
            [
                delivery("video.upload.failed", {"share_id": "video.1.d"}),
                delivery("video.upload.failed", {"share_id": "video.2.d"}),
            ],
        )
    )
    asyncio.run(drain(settings, failing))
    env = worker_env(redis_url)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, "dlq", *args], env=env, capture_output=True, text=True, timeout=30, check=False
        )

    listing = cli("list")
    assert listing.returncode == 0
    header, *lines = listing.stdout.splitlines()
    assert header.split()[:2] == ["ID", "FAILED"]
    ids = [line.split()[0] for line in lines]
    assert len(ids) == 2
    assert "downstream is down" in listing.stdout
    shown = cli("show", ids[0])
    assert '"error_type": "RetryLater"' in shown.stdout
    assert "video.upload.failed" in shown.stdout
    assert cli("replay", ids[0]).returncode == 0
    assert cli("drop", ids[1]).returncode == 0
    assert "empty" in cli("list").stdout
    missing = cli("show", "no-such-id")
    assert missing.returncode == 1
    assert "not in the dead-letter list" in missing.stderr
    store = Store(redis_url)
    try:
        assert store.zcard("arq:queue") == 1  # the replayed job is back on the queue
    finally:
        store.close()
