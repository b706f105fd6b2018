"""SIGTERM to a real `tiktok-webhooks worker` with a job running.

Within WORKER_SHUTDOWN_WAIT_SECONDS the running job finishes and is removed from the
queue; past it the job is cancelled and handed back to the queue, where the next worker
runs it. Either way nothing is lost and the process exits within the bound.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from receiver.testing.redis_server import free_port
from tests.deploy.processes import (
    CLEAN_EXITS,
    ENTRYPOINT,
    answers,
    running,
    service_env,
    wait_for_exit,
)
from tests.factories import delivery
from tests.store import Store

QUEUE = "arq:queue"
# Counted by tests/deploy/slow_handler.py, which only the worker processes import (here it
# would add its handler to this process's registry, under other tests' feet).
STARTED = "test:slow-handler:started"
DONE = "test:slow-handler:done"


@contextmanager
def worker(
    redis_url: str, log: Path, *, handler_seconds: float, shutdown_wait: int
) -> Iterator[subprocess.Popen[bytes]]:
    port = free_port()
    env = service_env(
        redis_url,
        WORKER_HANDLER_MODULES="tests.deploy.slow_handler",
        WORKER_SHUTDOWN_WAIT_SECONDS=str(shutdown_wait),
        SLOW_HANDLER_SECONDS=str(handler_seconds),
    )
    argv = [ENTRYPOINT, "worker", "--metrics-port", str(port)]
    with running(argv, env, log, answers(f"http://127.0.0.1:{port}/metrics")) as process:
        yield process


def deliver_ping(redis_url: str, log: Path) -> None:
    """Through a real receiver, as TikTok would."""
    port = free_port()
    argv = [ENTRYPOINT, "serve", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running(argv, service_env(redis_url), log, answers(f"{base}/readyz")):
        body, headers = delivery("tiktok.ping", {}, open_id=None)
        response = httpx.post(f"{base}/webhooks/tiktok", content=body, headers=headers)
        assert response.json() == {"status": "accepted"}


def event_jobs(client: Store) -> list[bytes]:
    """Queued jobs other than the worker's own cron jobs (ids `cron:...`)."""
    return [job for job in client.zrange(QUEUE) if not job.startswith(b"cron:")]


def in_progress_event_jobs(client: Store) -> list[bytes]:
    """In-progress locks of non-cron jobs (arq keeps cron locks on purpose)."""
    return [
        key
        for key in client.keys("arq:in-progress:*")
        if not key.startswith(b"arq:in-progress:cron:")
    ]


def counter(client: Store, key: str) -> int:
    value = client.get(key)
    return int(value) if value is not None else 0


def wait_until(condition: object, timeout: float = 20) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_running_job_finishes_before_the_worker_exits(redis_url: str, tmp_path: Path) -> None:
    client = Store(redis_url)
    try:
        deliver_ping(redis_url, tmp_path / "serve.log")
        with worker(
            redis_url, tmp_path / "worker.log", handler_seconds=2, shutdown_wait=10
        ) as process:
            wait_until(lambda: counter(client, STARTED) == 1)
            process.send_signal(signal.SIGTERM)
            status, took = wait_for_exit(process, timeout=15)
        assert status in CLEAN_EXITS
        assert took < 10
        assert counter(client, DONE) == 1
        assert event_jobs(client) == []
        assert in_progress_event_jobs(client) == []
    finally:
        client.close()


def test_a_job_past_the_wait_is_handed_back_and_run_by_the_next_worker(
    redis_url: str, tmp_path: Path
) -> None:
    client = Store(redis_url)
    try:
        deliver_ping(redis_url, tmp_path / "serve.log")
        with worker(
            redis_url, tmp_path / "worker-1.log", handler_seconds=60, shutdown_wait=1
        ) as process:
            wait_until(lambda: counter(client, STARTED) == 1)
            process.send_signal(signal.SIGTERM)
            status, took = wait_for_exit(process, timeout=15)
        assert status in CLEAN_EXITS
        assert took < 8
        assert counter(client, DONE) == 0
        # Handed back: still queued, and no in-progress lock keeps others from it.
        assert len(event_jobs(client)) == 1
        assert in_progress_event_jobs(client) == []

        with worker(redis_url, tmp_path / "worker-2.log", handler_seconds=0, shutdown_wait=1):
            wait_until(lambda: counter(client, DONE) == 1)
            wait_until(lambda: event_jobs(client) == [])
        assert counter(client, STARTED) == 2
    finally:
        client.close()
