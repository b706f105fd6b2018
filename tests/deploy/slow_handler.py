"""A handler module for the worker-shutdown tests (named in WORKER_HANDLER_MODULES).

It takes SLOW_HANDLER_SECONDS on every `tiktok.ping` and counts starts and completions
in Redis, so a test can send SIGTERM while a job is surely running and see what became
of it.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Final

from handlers.registry import registry

if TYPE_CHECKING:
    from handlers.context import HandlerContext
    from receiver.ingest.events import WebhookEvent

# Read by tests/deploy/test_worker_shutdown.py under the same names.
STARTED: Final = "test:slow-handler:started"
DONE: Final = "test:slow-handler:done"


@registry.on("tiktok.ping", name="tests.deploy.slow_handler")
async def slow_ping(event: WebhookEvent, ctx: HandlerContext) -> None:
    await ctx.redis.incr(STARTED)
    await asyncio.sleep(float(os.environ.get("SLOW_HANDLER_SECONDS", "0")))
    await ctx.redis.incr(DONE)
