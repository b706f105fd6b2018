"""The company's service for the forwarding experiment: a real HTTP server on loopback.

It verifies every request with the reference `standardwebhooks` library (code we did not
write checks what the workers sign), counts each `webhook-id` as it arrives, and answers
200 only after `delay` seconds, so that sends are in flight when a worker is killed. A
request whose signature does not verify gets 401 and is counted apart, as is one whose
sender went away before its body arrived (it is neither handled nor answered).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.testing.servers import serve_in_thread


@dataclass
class Consumer:
    secret: str
    delay: float = 0.3
    verified: Counter[str] = field(default_factory=Counter)  # webhook-id -> requests
    refused: int = 0  # requests whose signature did not verify
    cut_off: int = 0  # requests whose sender went away before the whole body arrived
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def hook(self, request: Request) -> Response:
        try:
            body = await request.body()
        except ClientDisconnect:  # its worker was killed while sending the body
            with self._lock:
                self.cut_off += 1
            return Response(status_code=400)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            Webhook(self.secret).verify(body, headers)
        except (WebhookVerificationError, ValueError):  # ValueError: a malformed header
            with self._lock:
                self.refused += 1
            return Response(b"invalid signature", status_code=401)
        with self._lock:
            self.verified[headers["webhook-id"]] += 1
        await asyncio.sleep(self.delay)  # handled; the answer takes a while
        return Response(b"ok")

    def snapshot(self) -> tuple[Counter[str], int, int]:
        """(requests per verified webhook-id, refused, cut off), copied under the lock."""
        with self._lock:
            return Counter(self.verified), self.refused, self.cut_off

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])


@contextmanager
def running(consumer: Consumer) -> Iterator[str]:
    """Serve the consumer in a thread of this process; yield its URL."""
    with serve_in_thread(consumer.app(), lifespan="off") as base:
        yield base + "/hook"
