"""A scripted stand-in for TikTok: each path answers with queued replies, and remembers requests.

The sandbox plays TikTok faithfully; this plays TikTok *badly* on demand (HTML 502s,
Retry-After headers, slow answers, garbage bodies), which the error mapping tests need.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.testing.servers import serve_in_thread


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]


class ScriptedTikTok:
    def __init__(self) -> None:
        self.replies: defaultdict[str, deque[Reply]] = defaultdict(deque)
        self.seen: list[Seen] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._answer, methods=["GET", "POST"])])

    def queue(self, path: str, *replies: Reply) -> None:
        self.replies[path].extend(replies)

    async def _answer(self, request: Request) -> Response:
        raw = await request.body()
        self.seen.append(
            Seen(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                form=dict(parse_qsl(raw.decode())),
            )
        )
        queue = self.replies[request.url.path]
        if not queue:
            return Response(b"no scripted reply", status_code=599)
        reply = queue.popleft()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        body = reply.body if reply.body is not None else b""
        headers = dict(reply.headers)
        if reply.json is not None:
            body = json.dumps(reply.json).encode()
            headers.setdefault("content-type", "application/json")
        return Response(body, status_code=reply.status, headers=headers)


@contextmanager
def scripted_tiktok() -> Iterator[tuple[ScriptedTikTok, str]]:
    fake = ScriptedTikTok()
    with serve_in_thread(fake.app) as base_url:
        yield fake, base_url
