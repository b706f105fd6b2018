"""The ceiling of this stack: Starlette on uvicorn that reads the body and answers 200.

No verification, no decoding, no Redis. Whatever the receiver does costs throughput
relative to this app, measured in the same run, on the same core, the same way.

Run: ``uvicorn --app-dir bench/apps bare_starlette:app --loop uvloop --http httptools``
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def webhook(request: Request) -> Response:
    await request.body()
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(routes=[Route("/webhooks/tiktok", webhook, methods=["POST"])])
