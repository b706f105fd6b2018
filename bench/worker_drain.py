"""Child process of `bench/worker.py`: drain a queue with one worker, no-op jobs, and report.

    python -m bench.worker_drain {bare,ours,builtins} --redis-url URL --expect N
        [--poll-delay S] [--max-jobs N] [--queue-read-limit N] [--uvloop] [--profile FILE]

(run with the repo root on PYTHONPATH; `ours`/`builtins` read the service's settings from
the environment, as `tiktok-webhooks worker` does)

`bare` is a plain `arq.worker.Worker` with one no-op function (arq's default serializer,
pickle); `ours` is `handlers.worker.create_worker` with a registry holding one no-op
`on_any` handler (`builtins`: the default registry, i.e. the built-in handlers, plus
the no-op). All are burst workers, `keep_result=0`, no signal handling, arq's
logger at WARNING, and the same `poll_delay`/`max_jobs`. The no-op of each records, with
identical code, the `perf_counter` of its first start and of its last end, so the drain
time (first job start -> last job end) is measured the same way in both workers. The job
function (arq's no-op, or our `process_event`) is wrapped by the same timer in both, to
report the time spent inside it per job.

The result is one line on stdout: ``BENCH_DRAIN_RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import logging
import os
import resource
import sys
import time
from typing import Any

RESULT_MARKER = "BENCH_DRAIN_RESULT "


class NoopStats:
    """What the no-op saw: how many ran, the first start and the last end (perf_counter)."""

    def __init__(self) -> None:
        self.count = 0
        self.first_start: float | None = None
        self.last_end = 0.0
        # Time inside the job function (arq's coroutine), summed over all jobs.
        self.function_seconds = 0.0

    def ran(self, started: float) -> None:
        if self.first_start is None:
            self.first_start = started
        self.count += 1
        self.last_end = time.perf_counter()


STATS = NoopStats()


class GcTimer:
    """Time spent in the cyclic garbage collector, per generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.collections[generation] += 1


async def noop(ctx: dict[str, Any], body: bytes) -> None:
    """The bare arq job: does nothing but record that it ran."""
    STATS.ran(time.perf_counter())


async def noop_handler(event: Any, ctx: Any) -> None:
    """Our no-op handler (registered with `on_any`): the same recording, nothing else."""
    STATS.ran(time.perf_counter())


def timed(function: Any) -> Any:
    """Wrap an arq job coroutine to sum the time spent inside it (same wrapper for all)."""

    async def wrapper(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await function(ctx, *args, **kwargs)
        finally:
            STATS.function_seconds += time.perf_counter() - started

    return wrapper


def build_bare(args: argparse.Namespace) -> Any:
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    return Worker(
        functions=[func(timed(noop), name="noop")],
        redis_settings=RedisSettings.from_dsn(args.redis_url),
        queue_name=args.queue,
        burst=True,
        poll_delay=args.poll_delay,
        max_jobs=args.max_jobs,
        queue_read_limit=args.queue_read_limit,
        keep_result=0,
        handle_signals=False,
    )


def build_ours(args: argparse.Namespace) -> Any:
    from handlers.registry import HandlerRegistry
    from handlers.registry import registry as default_registry
    from handlers.worker import create_worker
    from receiver.settings import load_settings

    settings = load_settings(os.environ)
    # `builtins`: the default registry, i.e. the built-in handlers, then the no-op (where
    # a company's handler would be), to measure what the built-ins cost per event.
    registry = default_registry if args.kind == "builtins" else HandlerRegistry()
    registry.on_any(name="bench.noop")(noop_handler)
    worker = create_worker(
        settings, handler_registry=registry, burst=True, handle_signals=False, with_crons=False
    )
    if args.queue_read_limit:
        worker.queue_read_limit = args.queue_read_limit
    job = worker.functions["process_event"]
    # With a no-op handler `process_event` never waits, so its time is CPU time.
    worker.functions["process_event"] = dataclasses.replace(job, coroutine=timed(job.coroutine))
    return worker


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["bare", "ours", "builtins"])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--queue", default="arq:queue")
    parser.add_argument("--expect", type=int, required=True, help="jobs in the queue")
    parser.add_argument("--poll-delay", type=float, default=0.05, help="bare only")
    parser.add_argument("--max-jobs", type=int, default=50, help="bare only")
    parser.add_argument("--queue-read-limit", type=int, default=None)
    parser.add_argument("--uvloop", action="store_true", help="run the worker on uvloop")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() the start-up heap (experiment)"
    )
    parser.add_argument("--profile", help="write a cProfile of the drain to this file")
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("arq").setLevel(logging.WARNING)
    logging.getLogger("tiktok_webhooks").setLevel(logging.WARNING)
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())

    worker = build_bare(args) if args.kind == "bare" else build_ours(args)
    loop: asyncio.AbstractEventLoop = worker.loop
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    gc_timer = GcTimer()
    gc.callbacks.append(gc_timer)
    if args.gc_freeze:
        gc.freeze()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    try:
        loop.run_until_complete(worker.main())
    finally:
        if profiler is not None:
            profiler.disable()
        t1 = time.perf_counter()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        gc.callbacks.remove(gc_timer)
        loop.run_until_complete(worker.close())
        loop.close()
    if profiler is not None:
        profiler.dump_stats(args.profile)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    first = STATS.first_start
    drain = (STATS.last_end - first) if first is not None else None
    result = {
        "kind": args.kind,
        "expect": args.expect,
        "noop_calls": STATS.count,
        "jobs_complete": worker.jobs_complete,
        "jobs_failed": worker.jobs_failed,
        "jobs_retried": worker.jobs_retried,
        # first job start -> last job end, as seen by the no-op
        "drain_seconds": drain,
        # Worker.main(): connect, start-up hooks, drain, final queue check
        "main_seconds": t1 - t0,
        "startup_seconds": (first - t0) if first is not None else None,
        "cpu_seconds": cpu,
        # per job, inside the job function: arq's no-op vs our process_event (no-op handler)
        "function_us_per_job": round(1e6 * STATS.function_seconds / max(1, STATS.count), 2),
        "poll_delay": worker.poll_delay_s,
        "max_jobs": worker.max_jobs,
        "queue_read_limit": worker.queue_read_limit,
        "gc_seconds": [round(x, 4) for x in gc_timer.seconds],
        "gc_collections": gc_timer.collections,
        "gc_tracked_objects_at_end": len(gc.get_objects()),
        "loop": type(loop).__module__ + "." + type(loop).__name__,
    }
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
