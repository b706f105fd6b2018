"""A company's service receiving forwarded events: a real HTTP server on loopback.

It answers with a scripted status per request (`answers`, then `then`), verifies every
request with the reference `standardwebhooks` library, and handles each `webhook-id`
once, the way the docs tell consumers to.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.testing.servers import serve_in_thread


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


@dataclass
class Consumer:
    secret: str
    answers: list[int] = field(default_factory=list)  # statuses for the first requests
    then: int = 200
    extra_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b"ok"
    received: list[Received] = field(default_factory=list)
    handled: dict[str, Any] = field(default_factory=dict)  # webhook-id -> payload
    handled_twice: list[str] = field(default_factory=list)
    redirect_hits: int = 0
    gate: threading.Event | None = None  # when set: requests wait for it before answering
    arrived: int = 0  # requests that reached the gate
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        if self.gate is not None:
            self.arrived += 1
            await asyncio.to_thread(self.gate.wait)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            payload = Webhook(self.secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            payload, verified = None, False
        with self._lock:
            self.received.append(Received(headers, body, verified))
            status = self.answers.pop(0) if self.answers else self.then
            if verified and 200 <= status < 300:
                message_id = headers["webhook-id"]
                if message_id in self.handled:
                    self.handled_twice.append(message_id)
                else:
                    self.handled[message_id] = payload
        extra = dict(self.extra_headers)
        if 300 <= status < 400:
            extra["location"] = "/elsewhere"
        return Response(self.response_body, status_code=status, headers=extra)

    async def elsewhere(self, request: Request) -> Response:
        self.redirect_hits += 1
        return Response(b"followed")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hook", self.hook, methods=["POST"]),
                Route("/elsewhere", self.elsewhere, methods=["GET", "POST"]),
            ]
        )


@contextmanager
def running(consumer: Consumer) -> Iterator[str]:
    """Serve the consumer; yield its hook URL."""
    with serve_in_thread(consumer.app()) as base:
        yield base + "/hook"
