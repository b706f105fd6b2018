"""Load for the experiments: distinct signed deliveries from concurrent senders, with a
record of every answer (status, time taken) keyed by the delivery's open_id."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from chaos.procs import CLIENT_KEY, CLIENT_SECRET
from receiver.ingest.delivery import build_body, signed_headers
from receiver.ingest.events import decode_body


@dataclass
class Answer:
    open_id: str
    status: int | None  # None: no HTTP answer (refused, reset, client timeout)
    seconds: float
    error: str = ""


@dataclass
class Load:
    """Sends until `stop` is set (or `limit` deliveries were sent)."""

    base_url: str
    run: str
    concurrency: int = 8
    limit: int = 100_000
    pause: float = 0.0  # per sender, between its deliveries
    client_timeout: float = 10.0
    event: str = "tiktok.ping"  # no built-in handler: only chaos.record runs
    answers: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    _next: int = 0

    def body(self, open_id: str) -> bytes:
        return build_body(
            client_key=CLIENT_KEY,
            event=self.event,
            content={},
            user_openid=open_id,
            create_time=1_700_000_000,  # fixed: the open_id alone tells deliveries apart
        )

    def acknowledged(self) -> list[str]:
        return [a.open_id for a in self.answers if a.status == 200]

    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for answer in self.answers:
            key = str(answer.status) if answer.status is not None else f"none:{answer.error}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def dedupe_key(self, open_id: str) -> str:
        return decode_body(self.body(open_id)).dedupe_key

    async def _sender(self, client: httpx.AsyncClient) -> None:
        while not self.stop.is_set() and self._next < self.limit:
            index = self._next
            self._next += 1
            open_id = f"{self.run}-{index}"
            body = self.body(open_id)
            started = time.monotonic()
            try:
                response = await client.post(
                    f"{self.base_url}/webhooks/tiktok",
                    content=body,
                    headers=signed_headers(CLIENT_SECRET, body),
                )
                status: int | None = response.status_code
                error = ""
            except httpx.HTTPError as exc:
                status, error = None, type(exc).__name__
            self.answers.append(Answer(open_id, status, time.monotonic() - started, error))
            if status is None:
                await asyncio.sleep(0.05)  # refused: do not spin
            elif self.pause:
                await asyncio.sleep(self.pause)

    async def run_until_stopped(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=self.client_timeout, limits=limits) as client:
            await asyncio.gather(*(self._sender(client) for _ in range(self.concurrency)))
