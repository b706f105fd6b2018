"""A handler the browser test loads into the dev stack's worker (WORKER_HANDLER_MODULES).

It fails for good on `video.upload.failed` while the Redis key `BROKEN_FLAG` exists, so
the job lands in the dead-letter list; once the key is gone a replay succeeds.
"""

from __future__ import annotations

from typing import Final

from handlers.context import HandlerContext
from handlers.registry import registry
from receiver.ingest.events import WebhookEvent

BROKEN_FLAG: Final = "console-test:handler-broken"


@registry.on("video.upload.failed", name="console_test_handler")
async def fails_while_flagged(event: WebhookEvent, ctx: HandlerContext) -> None:
    if await ctx.redis.exists(BROKEN_FLAG):
        raise RuntimeError("the console test's handler is broken on purpose")
