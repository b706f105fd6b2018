"""The echo consumer of `forward echo` (and of the `dev` stack): verify, dedupe, print.

A minimal company service: it checks each request's Standard Webhooks signature, handles
each `webhook-id` once, prints one line per event, and answers 200 (401 when the
signature does not verify, so forwarding's retries and records show the mistake).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from handlers.forwarding.signing import verify

_SEEN_KEPT: Final = 10_000


def create_echo_app(keys: Sequence[bytes]) -> Starlette:
    seen: OrderedDict[str, None] = OrderedDict()

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not verify(keys, headers, body):
            print("echo: refused a request whose signature does not verify", flush=True)
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        message_id = headers["webhook-id"]
        if message_id in seen:
            print(f"echo: {message_id} again (already handled)", flush=True)
            return JSONResponse({"status": "duplicate"})
        seen[message_id] = None
        if len(seen) > _SEEN_KEPT:
            seen.popitem(last=False)
        try:
            payload = msgspec.json.decode(body)
            summary = f"{payload.get('type')} for {payload.get('data', {}).get('user_openid')}"
        except (msgspec.DecodeError, AttributeError):
            summary = f"{len(body)} bytes"
        print(f"echo: {message_id} {summary}", flush=True)
        return JSONResponse({"status": "ok"})

    # Under `dev`, the supervisor's per-run token: proof that this process answers.
    run_token = os.environ.get("TIKTOK_WEBHOOKS_RUN_TOKEN")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {"status": "ok"}, headers={"X-Run-Token": run_token} if run_token else None
        )

    return Starlette(
        routes=[Route("/", receive, methods=["POST"]), Route("/healthz", health, methods=["GET"])]
    )
