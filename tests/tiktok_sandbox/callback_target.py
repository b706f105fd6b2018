"""A webhook callback URL for tests: records what it gets and answers as it is told."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.ingest.signature import HEADER_NAME, verify_signature
from receiver.secrets import Secret
from receiver.testing.servers import serve_in_thread

PATH = "/webhooks/tiktok"
TIMEOUT = "timeout"  # an answer: hold the request longer than the sender waits
SLOW = "slow"  # an answer: 200 after `hang_seconds`
BIG = "big"  # an answer: 200 with a 64 KiB body

T = TypeVar("T")


@dataclass(frozen=True)
class Received:
    body: bytes
    headers: dict[str, str]  # lower-case names
    at: float  # time.monotonic()

    @property
    def signature(self) -> str:
        return self.headers[HEADER_NAME.lower()]

    @property
    def t(self) -> int:
        return int(self.signature.split(",")[0].removeprefix("t="))

    def envelope(self) -> dict[str, Any]:
        envelope: dict[str, Any] = json.loads(self.body)
        return envelope

    def verify(self, secret: str, *, now: float | None = None) -> int:
        """The receiver's own check; `now` defaults to the signed `t` itself."""
        return verify_signature(
            self.signature,
            self.body,
            [Secret(secret)],
            tolerance_seconds=300,
            now=self.t if now is None else now,
        )


class CallbackTarget:
    """Answers 200 unless told otherwise: `answer_next(503, 503, TIMEOUT, SLOW, ...)`."""

    def __init__(self, hang_seconds: float = 0.6) -> None:
        self.hang_seconds = hang_seconds
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._script: deque[int | str] = deque()
        self._active = 0
        self.max_active = 0
        self.url = ""
        self.app = Starlette(routes=[Route(PATH, self._endpoint, methods=["POST"])])

    def answer_next(self, *answers: int | str) -> None:
        with self._lock:
            self._script.extend(answers)

    def always(self, answer: int | str, count: int = 1000) -> None:
        self.answer_next(*([answer] * count))

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self._received.append(Received(body, dict(request.headers), time.monotonic()))
            answer = self._script.popleft() if self._script else 200
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        try:
            if answer in (TIMEOUT, SLOW):
                await asyncio.sleep(self.hang_seconds)
                return Response(b"slow 200", status_code=200)
            if answer == BIG:
                return Response(b"x" * 65536, status_code=200)
            if isinstance(answer, str):
                raise AssertionError(f"unknown answer {answer!r}")
            await asyncio.sleep(0)
            headers = {"location": "https://elsewhere.example/"} if 300 <= answer < 400 else {}
            # A 204 has no body: with one, the server breaks the connection, and a retry
            # that reuses it fails for a reason the test did not ask for.
            body = b"" if answer in (204, 304) else f"answer {answer}".encode()
            return Response(body, status_code=answer, headers=headers)
        finally:
            with self._lock:
                self._active -= 1


@contextmanager
def serve_target(hang_seconds: float = 0.6) -> Iterator[CallbackTarget]:
    target = CallbackTarget(hang_seconds)
    with serve_in_thread(target.app) as base_url:
        target.url = base_url + PATH
        yield target


def wait_until(check: Callable[[], T | None], timeout: float = 5.0, what: str = "") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.01)


class Webhooks:
    """The webhook side of the sandbox's admin API, over real HTTP."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def set_callback(self, client_key: str, url: str | None) -> httpx.Response:
        return self.http.put(f"/sandbox/apps/{client_key}/callback", json={"callback_url": url})

    def settings(self, **changes: Any) -> dict[str, Any]:
        response = self.http.put("/sandbox/settings", json={"webhooks": changes})
        assert response.status_code == 200, response.text
        settings: dict[str, Any] = response.json()["webhooks"]
        return settings

    def trigger(self, **spec: Any) -> dict[str, Any]:
        response = self.http.post("/sandbox/webhooks", json=spec)
        assert response.status_code == 202, response.text
        delivery: dict[str, Any] = response.json()
        return delivery

    def list(self, **filters: str) -> list[dict[str, Any]]:
        response = self.http.get("/sandbox/webhooks", params=filters)
        assert response.status_code == 200, response.text
        deliveries: list[dict[str, Any]] = response.json()["deliveries"]
        return deliveries

    def get(self, delivery_id: int) -> dict[str, Any]:
        response = self.http.get(f"/sandbox/webhooks/{delivery_id}")
        assert response.status_code == 200, response.text
        delivery: dict[str, Any] = response.json()
        return delivery

    def wait_finished(self, delivery_id: int, timeout: float = 5.0) -> dict[str, Any]:
        """The delivery once it is delivered or discarded."""

        def finished() -> dict[str, Any] | None:
            delivery = self.get(delivery_id)
            return delivery if delivery["status"] != "pending" else None

        return wait_until(finished, timeout, f"delivery {delivery_id} to finish")
