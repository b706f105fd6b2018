"""One arq worker per destination, inside the worker process: its delivery jobs' lane.

Each destination's delivery jobs are in a queue of their own (`<ARQ_QUEUE_NAME>:forward:
<name>`), consumed by an arq `Worker` that runs next to the main one with `max_jobs` set to
the destination's `concurrency`. So a slow or dead destination holds at most its own
lane: the built-in handlers and the other destinations never wait for it, and arq never
walks delivery jobs that are waiting on a busy destination.

The built-in handlers go first: while the main queue has ready jobs that the main
worker has not started yet (a backlog), the lanes start no new delivery; they carry on
as soon as the main worker keeps up. Under a sustained backlog forwarding waits (the
TikTokForwardBacklog alert says so) rather than slowing the built-in handlers.

The lanes start with the main worker and stop with it. A burst-mode worker (tests,
`worker --burst`) waits, before it stops them, for the delivery jobs due within
BURST_HORIZON_SECONDS; later retries are left for the next worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Final

from arq.connections import RedisSettings
from arq.worker import Worker, func

from handlers.forwarding.forwarder import forward_delivery
from handlers.forwarding.store import FORWARD_DELIVERY
from receiver.ingest.jobs import job_deserializer, job_serializer

if TYPE_CHECKING:
    from handlers.context import WorkerState

logger = logging.getLogger("tiktok_webhooks.forward")

BURST_HORIZON_SECONDS: Final = 60.0


class _Lane(Worker):
    """An arq worker that starts no job while the main worker has a backlog."""

    def __init__(self, *args: Any, main: Worker | None, main_queue: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._main = main
        self._main_queue = main_queue

    async def _poll_iteration(self) -> None:
        if self._main is not None:
            ready = int(await self.pool.zcount(self._main_queue, "-inf", time.time() * 1000))
            self.allow_pick_jobs = ready <= self._main.job_counter
        await super()._poll_iteration()


class Lanes:
    def __init__(
        self, state: WorkerState, redis_settings: RedisSettings, main: Worker | None = None
    ) -> None:
        settings = state.settings
        assert state.forwarder is not None
        store = state.forwarder.store
        self._state = state
        self._queues = [store.queue_of(d.name) for d in settings.forward_destinations]
        self._workers = [
            _Lane(
                main=main,
                main_queue=settings.queue_name,
                functions=[func(forward_delivery, name=FORWARD_DELIVERY)],
                redis_settings=redis_settings,
                queue_name=store.queue_of(dest.name),
                poll_delay=settings.worker_poll_delay_seconds,
                max_jobs=dest.concurrency,
                job_timeout=settings.worker_job_timeout_seconds + 5,
                max_tries=settings.worker_max_tries + 3,
                keep_result=0,
                job_serializer=job_serializer,
                job_deserializer=job_deserializer,
                handle_signals=False,
                health_check_interval=60,
                ctx={"state": state},
            )
            for dest in settings.forward_destinations
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(w.main()) for w in self._workers]

    async def drain(self) -> None:
        """Wait until no delivery job is running or due within the burst horizon."""
        redis = self._state.redis
        while True:
            due = 0
            horizon_ms = (time.time() + BURST_HORIZON_SECONDS) * 1000
            for queue in self._queues:
                due += int(await redis.zcount(queue, "-inf", horizon_ms))
            if not due and not any(not t.done() for w in self._workers for t in w.tasks.values()):
                return
            await asyncio.sleep(self._state.settings.worker_poll_delay_seconds)

    async def stop(self, *, wait_seconds: float) -> None:
        """Let running deliveries finish (up to `wait_seconds`), then stop every lane."""
        running = [t for w in self._workers for t in w.tasks.values() if not t.done()]
        if running:
            await asyncio.wait(running, timeout=wait_seconds)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for worker in self._workers:
            try:
                await worker.close()
            except Exception as exc:  # a lane that never connected has nothing to close
                logger.warning("forwarding lane not closed cleanly: %s", type(exc).__name__)

    def __len__(self) -> int:
        return len(self._workers)
