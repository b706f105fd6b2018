"""The handler the chaos experiments run in real workers (WORKER_HANDLER_MODULES).

It records every event it handled by appending its open_id to CHAOS_RECORD_FILE: a
record outside Redis, so an event lost with Redis cannot be counted as handled. Events
whose open_id contains "-slow-" first take CHAOS_SLOW_SECONDS (longer than the kill
interval of the worker storm, so they never finish).
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from handlers.registry import registry

if TYPE_CHECKING:
    from handlers.context import HandlerContext
    from receiver.ingest.events import WebhookEvent


@registry.on_any(name="chaos.record")
async def record(event: WebhookEvent, ctx: HandlerContext) -> None:
    open_id = event.envelope.user_openid or ""
    if "-slow-" in open_id:
        await asyncio.sleep(float(os.environ.get("CHAOS_SLOW_SECONDS", "5")))
    line = (open_id + "\n").encode()
    fd = os.open(os.environ["CHAOS_RECORD_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)  # one write of one short line: atomic with O_APPEND
    finally:
        os.close(fd)
