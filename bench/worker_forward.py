"""The forwarding part of the worker benchmark (`bench/worker.py --parts forward`).

Three measurements, all with a consumer on the load core that answers 200 at once:

1. bare: one process on the worker core posts the N forwarded bodies with a plain
   `httpx.AsyncClient`, `concurrency` requests in flight (what a hand-written forwarder
   would do, without durability, signing or records);
2. forward: N events are enqueued through the receiver's enqueue path, then one worker
   process (on the worker core, forwarding as its only handler) drains the queue in burst
   mode: the event jobs create the deliveries, the delivery jobs sign, send and record.
   Rate = N / (first job start -> last delivery job end). Every delivery must have
   succeeded and the consumer must have counted N requests.
3. built-ins with and without forwarding: the same N events drained by a worker with the
   built-in handlers, once without destinations and once with one; the built-in
   handlers' drain rate (first -> last event job) must not drop by more than 10 %.

Child modes (run with the repo root on PYTHONPATH):

    python -m bench.worker_forward consumer --port P
    python -m bench.worker_forward bare --url URL --bodies FILE --concurrency C
    python -m bench.worker_forward drain {forward,builtins} --expect N
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Any

MARKER = "BENCH_FORWARD_RESULT "


# --------------------------------------------------------------------------- consumer


def run_consumer(port: int) -> int:
    """A consumer answering 200 at once; GET /count says how many POSTs it had."""
    import uvicorn

    count = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal count
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        if scope["method"] == "POST":
            count += 1
            body = b""
        else:
            body = str(count).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", http="httptools", loop="uvloop",
        access_log=False, lifespan="off",
    )  # fmt: skip
    return 0


# --------------------------------------------------------------------------- bare httpx


async def post_all(url: str, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    import httpx

    statuses: dict[int, int] = {}
    queue = list(reversed(bodies))
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        follow_redirects=False,
        timeout=10,
    ) as client:

        async def lane() -> None:
            while queue:
                body = queue.pop()
                response = await client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "per_second": len(bodies) / elapsed, "statuses": statuses}


# --------------------------------------------------------------------------- drains


@dataclasses.dataclass
class Span:
    first_start: float | None = None
    last_end: float = 0.0
    count: int = 0

    def wrap(self, function: Any) -> Any:
        async def wrapper(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            if self.first_start is None:
                self.first_start = started
            try:
                return await function(ctx, *args, **kwargs)
            finally:
                self.count += 1
                self.last_end = time.perf_counter()

        return wrapper


def run_drain(kind: str, expect: int, config: str | None) -> int:
    import resource

    from handlers.registry import HandlerRegistry
    from handlers.registry import registry as default_registry
    from handlers.worker import create_worker
    from receiver.settings import load_settings

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("arq").setLevel(logging.WARNING)
    from pathlib import Path

    settings = load_settings(os.environ, Path(config) if config else None)
    registry = HandlerRegistry() if kind == "forward" else default_registry
    asyncio.set_event_loop(asyncio.new_event_loop())
    worker = create_worker(
        settings, handler_registry=registry, burst=True, handle_signals=False, with_crons=False
    )
    events = Span()
    job = worker.functions["process_event"]
    worker.functions["process_event"] = dataclasses.replace(
        job, coroutine=events.wrap(job.coroutine)
    )
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    loop = worker.loop
    profile = os.environ.get("BENCH_FORWARD_PROFILE")
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        loop.run_until_complete(worker.main())
    finally:
        # close() runs on_shutdown, where a burst worker waits for its forwarding
        # dispatchers to send every delivery due.
        loop.run_until_complete(worker.close())
        closed = time.perf_counter()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{kind}.{os.getpid()}")
        loop.close()
    first = events.first_start or 0.0
    result = {
        "kind": kind,
        "events": events.count,
        "event_drain_seconds": events.last_end - first,
        # first event job start -> every delivery done (the dispatchers drained and stopped)
        "forward_seconds": closed - first,
        "jobs_failed": worker.jobs_failed,
        "cpu_seconds": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "expect": expect,
    }
    print(MARKER + json.dumps(result), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    consumer = sub.add_parser("consumer")
    consumer.add_argument("--port", type=int, required=True)
    bare = sub.add_parser("bare")
    bare.add_argument("--url", required=True)
    bare.add_argument("--bodies", required=True, help="a JSON list of bodies")
    bare.add_argument("--concurrency", type=int, default=10)
    drain = sub.add_parser("drain")
    drain.add_argument("kind", choices=["forward", "builtins"])
    drain.add_argument("--expect", type=int, required=True)
    drain.add_argument("--config", help="TOML settings file (the [[forward]] destination)")
    args = parser.parse_args()
    if args.mode == "consumer":
        return run_consumer(args.port)
    if args.mode == "bare":
        with open(args.bodies, encoding="utf-8") as handle:
            bodies = [b.encode() for b in json.load(handle)]
        result = asyncio.run(post_all(args.url, bodies, args.concurrency))
        print(MARKER + json.dumps(result), flush=True)
        return 0
    return run_drain(args.kind, args.expect, args.config)


if __name__ == "__main__":
    sys.exit(main())
