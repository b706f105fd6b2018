"""Handlers loaded into worker subprocesses by tests (WORKER_HANDLER_MODULES).

`blocking_effect` blocks while the key `blocktest:block` exists, so a test can kill the
worker in the middle of the job; its effect is idempotent (a SET keyed by the event).
"""

from __future__ import annotations

import asyncio

from handlers.context import HandlerContext
from handlers.registry import registry
from receiver.ingest.events import WebhookEvent


@registry.on("tiktok.ping", name="blocktest.blocking_effect")
async def blocking_effect(event: WebhookEvent, ctx: HandlerContext) -> str:
    await ctx.redis.incr("blocktest:starts")
    # Polls a Redis key: the test that releases it runs in another process.
    while await ctx.redis.exists("blocktest:block"):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await ctx.redis.set(f"blocktest:effect:{event.dedupe_key}", b"done")
    await ctx.redis.incr("blocktest:completions")
    return "done"
