"""Fixtures for TikTok client tests: a scripted TikTok on loopback and a client aimed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from receiver.secrets import Secret
from receiver.settings import AppCredentials, Settings
from receiver.tiktok.client import TikTokClient
from tests.tiktok.scripted_tiktok import ScriptedTikTok, scripted_tiktok

CLIENT_KEY = "awapitestclient1"
CLIENT_SECRET = "api-test-client-secret-91c2"
ACCESS = "act.PLAINACCESS-0123456789abcdef"
REFRESH = "rft.PLAINREFRESH-0123456789abcdef"
CODE = "CODE-PLAIN-0123456789abcdef"


def client_settings(base_url: str, *, timeout: float = 2.0) -> Settings:
    return Settings(
        apps=(AppCredentials(CLIENT_KEY, (Secret(CLIENT_SECRET), Secret("older-secret"))),),
        tiktok_api_base_url=base_url,
        tiktok_auth_url="https://www.tiktok.com/v2/auth/authorize/",
        tiktok_scopes=("user.info.basic", "user.info.profile"),
        http_timeout_seconds=timeout,
    )


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[tuple[ScriptedTikTok, str]]:
    with scripted_tiktok() as server:
        yield server


@pytest.fixture
def fake(scripted_server: tuple[ScriptedTikTok, str]) -> ScriptedTikTok:
    server, _ = scripted_server
    server.replies.clear()
    server.seen.clear()
    return server


@pytest.fixture
async def client(
    scripted_server: tuple[ScriptedTikTok, str], fake: ScriptedTikTok
) -> AsyncIterator[TikTokClient]:
    async with TikTokClient(client_settings(scripted_server[1], timeout=0.5)) as client:
        yield client
