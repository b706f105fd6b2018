"""The project's TikTok sandbox on loopback, plus the admin calls the vault tests need."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from receiver.testing.servers import serve_in_thread
from receiver.tiktok.client import TikTokClient, TokenGrant
from tests.vault.conftest import CLIENT_KEY, CLIENT_SECRET
from tiktok_sandbox.app import create_app
from tiktok_sandbox.config import AppConfig, SandboxConfig
from tiktok_sandbox.models import SandboxUser

REDIRECT_URI = "https://receiver.example/oauth/tiktok/callback"
USERS = ("alice", "bob")


@contextmanager
def running_sandbox() -> Iterator[str]:
    config = SandboxConfig(
        apps=[
            AppConfig(
                client_key=CLIENT_KEY, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT_URI]
            )
        ],
        users=[SandboxUser(open_id=open_id, display_name=open_id.title()) for open_id in USERS],
        access_token_ttl=7200,  # the tests count in TikTok's documented 2 h tokens
        rate_limit_per_minute=None,
    )
    with serve_in_thread(create_app(config)) as base_url:
        yield base_url


class SandboxAdmin:
    """`/sandbox/*` over real HTTP; the call log is how tests count refreshes."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        assert response.is_success, response.text
        return response.json()

    async def reset(self) -> None:
        await self._json("POST", "/sandbox/reset")

    async def refresh_calls(self) -> list[dict[str, Any]]:
        body = await self._json(
            "GET", "/sandbox/calls", params={"endpoint": "token", "grant_type": "refresh_token"}
        )
        calls: list[dict[str, Any]] = body["calls"]
        return calls

    async def add_fault(self, **spec: Any) -> None:
        await self._json("POST", "/sandbox/faults", json=spec)

    async def connect(self, client: TikTokClient, open_id: str) -> TokenGrant:
        """Run Login Kit end to end: authorize (auto-approved), then exchange the code."""
        url = client.authorize_url(state="st", redirect_uri=REDIRECT_URI)
        response = await self.http.get(url + f"&sandbox_user={open_id}")
        assert response.status_code == 302, response.text
        query = parse_qs(urlsplit(response.headers["location"]).query)
        return await client.exchange_code(query["code"][0], redirect_uri=REDIRECT_URI)
