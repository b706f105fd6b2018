"""The sandbox as TikTok for worker tests, with the app of tests.factories registered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from receiver.settings import Settings
from receiver.testing.servers import serve_in_thread
from receiver.tiktok.client import TikTokClient, TokenGrant
from receiver.vault.crypto import TokenCipher
from receiver.vault.vault import TokenVault
from tests.factories import CLIENT_KEY, CLIENT_SECRET
from tiktok_sandbox.app import create_app
from tiktok_sandbox.config import AppConfig, SandboxConfig

REDIRECT_URI = "https://receiver.example/oauth/tiktok/callback"


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    config = SandboxConfig(
        apps=[
            AppConfig(
                client_key=CLIENT_KEY, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT_URI]
            )
        ],
        rate_limit_per_minute=None,
    )
    with serve_in_thread(create_app(config)) as url:
        yield url


class Tiktok:
    """The sandbox's admin API, and connecting users through the real OAuth endpoints."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10)
        self._clients: list[TikTokClient] = []

    def vault(self, settings: Settings, redis: Any) -> TokenVault:
        """A vault of the test's app (its TikTok client is closed with the fixture)."""
        client = TikTokClient(settings)
        self._clients.append(client)
        return TokenVault(redis, TokenCipher(settings.token_encryption_keys), client, CLIENT_KEY)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        await self.http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        assert response.is_success, response.text
        return response.json() if response.content else None

    async def add_user(self, open_id: str, **profile: Any) -> None:
        await self.call("POST", "/sandbox/users", json={"open_id": open_id, **profile})

    async def calls(self, endpoint: str, **filters: str) -> list[dict[str, Any]]:
        body = await self.call("GET", "/sandbox/calls", params={"endpoint": endpoint, **filters})
        calls: list[dict[str, Any]] = body["calls"]
        return calls

    async def fault(self, **spec: Any) -> None:
        await self.call("POST", "/sandbox/faults", json=spec)

    async def connect(
        self, settings: Settings, vault: TokenVault, open_id: str, scopes: str
    ) -> TokenGrant:
        """Login Kit end to end against the sandbox, then store the grant in the vault."""
        async with TikTokClient(settings) as client:
            url = client.authorize_url(
                state="s", redirect_uri=REDIRECT_URI, scopes=scopes.split(",")
            )
            response = await self.http.get(url + f"&sandbox_user={open_id}")
            assert response.status_code == 302, response.text
            code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
            grant = await client.exchange_code(code, redirect_uri=REDIRECT_URI)
        await vault.save_grant(grant)
        return grant


@pytest.fixture
async def tiktok(sandbox_url: str) -> AsyncIterator[Tiktok]:
    admin = Tiktok(sandbox_url)
    await admin.call("POST", "/sandbox/reset")
    yield admin
    await admin.aclose()
