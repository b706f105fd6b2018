"""A job that has to wait for TikTok's rate limit runs again later as a new job.

Waiting for a rate-limit slot is not a failure: it must not use up the job's tries (a
burst of 100 events for one user would dead-letter most of them) and must not hold a
worker slot asleep. So the job enqueues itself again, deferred past the wait, and ends.
A burst for one user becomes a queue that drains at that user's allowance.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Final

from prometheus_client import Counter

from handlers.context import WorkerState
from handlers.errors import RetryLater

logger = logging.getLogger("tiktok_webhooks.worker")

# After this many deferrals something is wrong with the limits: fail like any job would.
MAX_DEFERRALS: Final = 500
# Spread the jobs woken for one window, so they do not all wake in the same millisecond.
SPREAD_SECONDS: Final = 10.0

DEFERRALS: Final = Counter(
    "tiktok_worker_jobs_deferred_total",
    "Jobs that re-queued themselves to wait for a TikTok rate limit (not counted as tries).",
    ["function", "limit"],
)


async def defer(
    state: WorkerState,
    function: str,
    args: list[Any],
    *,
    wait_seconds: float,
    deferrals: int,
    limit: str,
) -> dict[str, Any]:
    """Enqueue `function(*args, deferrals + 1)` to run after `wait_seconds` (plus spread)."""
    if deferrals >= MAX_DEFERRALS:
        raise RetryLater(f"{function} waited for the {limit} rate limit {deferrals} times")
    delay = max(0.0, wait_seconds) + random.uniform(0.0, SPREAD_SECONDS)
    await state.redis.enqueue_job(
        function,
        *args,
        deferrals + 1,
        _job_id=f"{function}:deferred:{time.time_ns()}:{random.getrandbits(32):08x}",
        _defer_by=delay,
        _queue_name=state.settings.queue_name,
    )
    DEFERRALS.labels(function, limit).inc()
    logger.info("%s waits %.1fs for the %s rate limit", function, delay, limit)
    return {"deferred_seconds": round(delay, 3)}
