"""The implementation a user would write first: FastAPI, pydantic, json, arq.

It does the same job as the receiver (verify the signature, parse the envelope and its
`content`, enqueue a job with a job id so a repeat is not queued twice, answer 200),
the obvious way: a pydantic model, `json.loads`, `hmac.compare_digest`, and
`ArqRedis.enqueue_job(..., _job_id=sha256(body))` per request, which is several
Redis round trips and a pickled job (arq's default serializer). It is a reference
for the benchmark, not a model to copy.

Configured like the receiver: TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET, REDIS_URL,
WEBHOOK_TOLERANCE_SECONDS.

Run: ``uvicorn --app-dir bench/apps naive_fastapi:app --loop uvloop --http httptools``
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

CLIENT_KEY = os.environ.get("TIKTOK_CLIENT_KEY", "")
CLIENT_SECRET = os.environ.get("TIKTOK_CLIENT_SECRET", "")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
TOLERANCE = int(os.environ.get("WEBHOOK_TOLERANCE_SECONDS", "300"))


class TikTokEvent(BaseModel):
    client_key: str
    event: str
    create_time: int
    user_openid: str | None = None
    content: str


pool: dict[str, ArqRedis] = {}


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    pool["redis"] = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    yield
    await pool["redis"].aclose()


app = FastAPI(lifespan=lifespan)


def check_signature(header: str | None, body: bytes) -> None:
    if not header:
        raise HTTPException(status_code=401, detail="missing signature")
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(parts["t"])
        signature = parts["s"]
    except (ValueError, KeyError):
        raise HTTPException(status_code=401, detail="bad signature header") from None
    if abs(time.time() - timestamp) > TOLERANCE:
        raise HTTPException(status_code=401, detail="stale signature")
    expected = hmac.new(
        CLIENT_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise HTTPException(status_code=401, detail="bad signature")


@app.post("/webhooks/tiktok")
async def tiktok_webhook(request: Request) -> dict[str, Any]:
    body = await request.body()
    check_signature(request.headers.get("TikTok-Signature"), body)
    try:
        event = TikTokEvent(**json.loads(body))
        content = json.loads(event.content)
    except ValueError:
        raise HTTPException(status_code=400, detail="malformed event") from None
    if event.client_key != CLIENT_KEY:
        raise HTTPException(status_code=401, detail="unknown client_key")
    payload = event.model_dump()
    payload["content"] = content
    job = await pool["redis"].enqueue_job(
        "process_event", payload, _job_id=hashlib.sha256(body).hexdigest()
    )
    return {"status": "accepted" if job is not None else "duplicate"}
