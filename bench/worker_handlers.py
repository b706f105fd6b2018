"""Handler module for the latency part of `bench/worker.py` (WORKER_HANDLER_MODULES).

The real `tiktok-webhooks worker` imports this module at start-up; its `on_any` handler
takes `time.time()` first thing, then writes it to a Redis hash keyed by the delivery's
`user_openid`, where the benchmark reads it back. It registers into the default registry,
so it runs after the built-in handlers of the event, exactly like a company's handler.

With BENCH_WORKER_HANDLERS_ONLY=1 it unregisters every other handler first, so the
latency of the queue path alone can be told from the cost of the built-in handlers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final, cast

from handlers.registry import ANY, UNKNOWN, registry
from receiver.ingest.events import KNOWN_EVENTS

if TYPE_CHECKING:
    from handlers.context import HandlerContext
    from receiver.ingest.events import WebhookEvent

STARTS_KEY: Final = "bench:handler-starts"  # read by bench/worker.py
NAME: Final = "bench.record_start"

if os.environ.get("BENCH_WORKER_HANDLERS_ONLY") == "1":
    for _event in (*KNOWN_EVENTS, UNKNOWN, ANY):
        for _handler in registry.handlers_for(_event):
            registry.remove(_handler.name)


@registry.on_any(name=NAME)
async def record_start(event: WebhookEvent, ctx: HandlerContext) -> None:
    """Record when this handler started, for the 200 -> handler start latency."""
    started = time.time()
    openid = event.envelope.user_openid or event.dedupe_key
    await cast(Awaitable[int], ctx.redis.hset(STARTS_KEY, openid, repr(started)))
