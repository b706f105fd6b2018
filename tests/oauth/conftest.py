"""The sandbox as TikTok for the OAuth tests, reset before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from receiver.testing.redis_server import free_port
from receiver.testing.servers import serve_in_thread
from tests.factories import CLIENT_KEY, CLIENT_SECRET
from tests.oauth.harness import OTHER_REDIRECT_URI, REDIRECT_URI, USERS
from tiktok_sandbox.app import create_app
from tiktok_sandbox.config import AppConfig, SandboxConfig
from tiktok_sandbox.models import SandboxUser


@dataclass(frozen=True)
class SandboxInfo:
    url: str
    # A loopback port whose http callback URI is registered, for `serve` in a subprocess.
    dev_port: int

    @property
    def dev_redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.dev_port}/oauth/tiktok/callback"


@pytest.fixture(scope="session")
def sandbox_info() -> Iterator[SandboxInfo]:
    dev_port = free_port()
    config = SandboxConfig(
        apps=[
            AppConfig(
                client_key=CLIENT_KEY,
                client_secret=CLIENT_SECRET,
                redirect_uris=[
                    REDIRECT_URI,
                    OTHER_REDIRECT_URI,
                    f"http://127.0.0.1:{dev_port}/oauth/tiktok/callback",
                ],
            )
        ],
        users=[SandboxUser(open_id=open_id, display_name=open_id.title()) for open_id in USERS],
        rate_limit_per_minute=None,
    )
    with serve_in_thread(create_app(config)) as url:
        yield SandboxInfo(url, dev_port)


class Tiktok:
    """The sandbox's admin API."""

    def __init__(self, info: SandboxInfo) -> None:
        self.url = info.url
        self.info = info
        self.http = httpx.AsyncClient(base_url=info.url, timeout=10)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        assert response.is_success, response.text
        return response.json() if response.content else None

    async def calls(self, endpoint: str, **filters: str) -> list[dict[str, Any]]:
        body = await self.call("GET", "/sandbox/calls", params={"endpoint": endpoint, **filters})
        calls: list[dict[str, Any]] = body["calls"]
        return calls

    async def fault(self, **spec: Any) -> None:
        await self.call("POST", "/sandbox/faults", json=spec)


@pytest.fixture
async def tiktok(sandbox_info: SandboxInfo) -> AsyncIterator[Tiktok]:
    admin = Tiktok(sandbox_info)
    await admin.call("POST", "/sandbox/reset")
    yield admin
    await admin.http.aclose()
