"""The receiver app in-process over httpx's ASGI transport, with its lifespan run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from receiver.app import ReceiverApp


@asynccontextmanager
async def app_client(app: ReceiverApp) -> AsyncIterator[httpx.AsyncClient]:
    async with app.lifespan(app.starlette):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            yield client
