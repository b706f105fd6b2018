"""Running jobs: decode, run the registered handlers, then retry, stop or dead-letter.

Every job function goes through `guarded`, which turns a failure into the next step:
transient failures (timeouts, 5xx, 429, Redis hiccups, `RetryLater`) retry with
exponential backoff and jitter up to WORKER_MAX_TRIES, then go to the dead-letter list;
a lost grant marks the user and stops; anything else (a bug) goes to the dead-letter
list at once instead of being retried blindly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from arq import Retry

from handlers import metrics
from handlers.context import HandlerContext, HandlerOutcome, WorkerState
from handlers.errors import classify, requested_delay
from receiver import keys
from receiver.ingest.events import MalformedEvent, WebhookEvent, decode_body, event_label
from receiver.ingest.jobs import PROCESS_EVENT

logger = logging.getLogger("tiktok_webhooks.worker")
_outcome_log = logging.getLogger("tiktok_webhooks.handlers")

NO_EVENT: Final = "none"
_RECORDER_LIMIT: Final = 10_000


def backoff_seconds(job_try: int, *, base: float, cap: float, at_least: float | None) -> float:
    """Exponential backoff with jitter, at least what the failure asked for (TikTok's
    Retry-After), and never more than WORKER_RETRY_MAX_SECONDS."""
    delay = min(cap, base * 2 ** max(0, job_try - 1)) * random.uniform(0.5, 1.5)
    if at_least is not None:
        delay = max(delay, at_least * random.uniform(1.0, 1.2))
    return float(min(delay, cap))


async def guarded(
    ctx: dict[str, Any],
    function: str,
    event: str,
    run: Callable[[], Awaitable[Any]],
    *,
    args: list[Any],
    kwargs: dict[str, Any] | None = None,
) -> Any:
    state: WorkerState = ctx["state"]
    settings = state.settings
    job_try = int(ctx.get("job_try") or 1)
    started = time.perf_counter()
    try:
        # Our own timeout, inside arq's: arq would drop a timed-out job as failed,
        # this way it is retried and, at worst, dead-lettered.
        async with asyncio.timeout(settings.worker_job_timeout_seconds):
            result = await run()
    except Exception as exc:
        metrics.observe_duration(function, time.perf_counter() - started)
        kind = classify(exc)
        if kind == "transient" and job_try < settings.worker_max_tries:
            delay = backoff_seconds(
                job_try,
                base=settings.worker_retry_base_seconds,
                cap=settings.worker_retry_max_seconds,
                at_least=requested_delay(exc),
            )
            logger.warning(
                "%s (%s) try %d failed, retrying in %.1fs: %s",
                function, event, job_try, delay, _describe(exc),
            )  # fmt: skip
            metrics.count_job(function, event, "retry")
            raise Retry(defer=delay) from exc
        if kind in ("reauth", "gone"):
            logger.info("%s (%s) stopped: %s", function, event, _describe(exc))
            metrics.count_job(function, event, "failed" if kind == "reauth" else "ok")
            return {"stopped": kind}
        if kind == "permanent":
            logger.error(
                "%s (%s) failed permanently: %s", function, event, _describe(exc), exc_info=exc
            )
        letter = await state.dead_letters.add(
            function=function,
            args=args,
            kwargs=kwargs or {},
            job_id=ctx.get("job_id"),
            event=event,
            error=exc,
            tries=job_try,
        )
        logger.error(
            "%s (%s) dead-lettered as %s after %d tries", function, event, letter.id, job_try
        )
        metrics.count_job(function, event, "dead_lettered")
        metrics.DEAD_LETTER_SIZE.set(await state.dead_letters.size())
        return {"dead_lettered": letter.id}
    metrics.observe_duration(function, time.perf_counter() - started)
    metrics.count_job(function, event, "ok")
    return result


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__qualname__}: {exc}"


async def process_event(ctx: dict[str, Any], body: bytes) -> Any:
    """The arq job the receiver enqueues for every accepted delivery."""
    try:
        event = decode_body(body)
    except MalformedEvent as exc:
        failure = exc

        async def fail() -> None:
            raise failure

        return await guarded(ctx, PROCESS_EVENT, NO_EVENT, fail, args=[body])
    label = event_label(event.name)
    return await guarded(ctx, PROCESS_EVENT, label, lambda: run_handlers(ctx, event), args=[body])


async def run_handlers(ctx: dict[str, Any], event: WebhookEvent) -> dict[str, Any]:
    """Run every handler of the event; raise the first failure after all had their turn.

    When one of several handlers fails, the ones that succeeded are remembered (for the
    dedupe horizon) and skipped when the job runs again (a retry or a dead-letter
    replay). A first run that succeeds reads and writes nothing extra: that is most jobs.
    A worker killed between handlers re-runs them all, so handlers are idempotent.
    """
    state: WorkerState = ctx["state"]
    handlers = state.registry.handlers_for(event.name)
    job_id: str | None = ctx.get("job_id")
    job_try = int(ctx.get("job_try") or 1)
    hctx = HandlerContext(state=state, job_id=job_id, job_try=job_try)
    several = len(handlers) > 1
    markers = [f"{keys.HANDLED_PREFIX}{event.dedupe_key}:{h.name}" for h in handlers]
    done: list[bool] = [False] * len(handlers)
    if several and (job_try > 1 or (job_id or "").startswith("replay-")):
        done = [value is not None for value in await state.redis.mget(markers)]
    results: dict[str, Any] = {}
    failure: Exception | None = None
    succeeded: list[str] = []
    for handler, marker, skip in zip(handlers, markers, done, strict=True):
        if skip:
            continue
        try:
            results[handler.name] = await handler.func(event, hctx)
        except Exception as exc:
            _record(
                state, HandlerOutcome(job_id, event.name, handler.name, False, error=_describe(exc))
            )
            failure = failure or exc
            continue
        _record(
            state, HandlerOutcome(job_id, event.name, handler.name, True, results[handler.name])
        )
        succeeded.append(marker)
    if failure is not None:
        if several and succeeded:
            ttl = state.settings.webhook_dedupe_ttl_seconds
            async with state.redis.pipeline(transaction=False) as pipe:
                for marker in succeeded:
                    pipe.set(marker, b"1", ex=ttl)
                await pipe.execute()
        raise failure
    return results


def _record(state: WorkerState, outcome: HandlerOutcome) -> None:
    if state.log_outcomes:
        _outcome_log.info(
            "%s -> %s: %s (job %s)",
            outcome.event,
            outcome.handler,
            "ok" if outcome.ok else f"failed, {outcome.error}",
            outcome.job_id,
        )
    if state.recorder is not None:
        state.recorder.append(outcome)
        if len(state.recorder) > _RECORDER_LIMIT:
            del state.recorder[: len(state.recorder) - _RECORDER_LIMIT]
