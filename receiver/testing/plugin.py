"""pytest fixtures of tiktok-webhooks (loaded through the `pytest11` entry point).

- `tiktok_redis_server`: a private `redis-server` on a free port for the session.
- `tiktok_redis_url`: its URL, flushed before each test.
- `tiktok_settings`: Settings for a generated test app, pointing at that Redis.
- `tiktok_webhooks`: a `WebhookTester` (the receiver app in-process over httpx's ASGI
  transport, `make_delivery`, `deliver` = post + drain the worker).
- `tiktok_sandbox`: the TikTok sandbox on a real loopback port, with the test app
  registered; `tiktok_settings` point at it.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from receiver.testing.redis_server import RedisServer

if TYPE_CHECKING:
    from receiver.settings import Settings
    from receiver.testing.sandbox import SandboxHandle
    from receiver.testing.tester import WebhookTester


def pytest_configure(config: pytest.Config) -> None:
    # arq's Worker.close() calls redis-py's deprecated close(); the warning is about arq,
    # not about the tests that drain a worker.
    config.addinivalue_line("filterwarnings", "ignore:Call to deprecated close:DeprecationWarning")


@pytest.fixture(scope="session")
def tiktok_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("tiktok-redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tiktok_redis_url(tiktok_redis_server: RedisServer) -> str:
    tiktok_redis_server.flushall()
    return tiktok_redis_server.url


@pytest.fixture(scope="session")
def tiktok_app_credentials() -> tuple[str, str]:
    """(client key, client secret) of the test app: random per session."""
    return f"test_{secrets.token_hex(6)}", secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def tiktok_sandbox(tiktok_app_credentials: tuple[str, str]) -> Iterator[SandboxHandle]:
    from receiver.testing.sandbox import running_sandbox

    client_key, client_secret = tiktok_app_credentials
    with running_sandbox(client_key, client_secret) as handle:
        yield handle


@pytest.fixture
def tiktok_settings(
    request: pytest.FixtureRequest,
    tiktok_redis_url: str,
    tiktok_app_credentials: tuple[str, str],
) -> Settings:
    from receiver.settings import load_settings
    from receiver.vault.crypto import generate_key

    client_key, client_secret = tiktok_app_credentials
    env = {
        "TIKTOK_CLIENT_KEY": client_key,
        "TIKTOK_CLIENT_SECRET": client_secret,
        "REDIS_URL": tiktok_redis_url,
        "TOKEN_ENCRYPTION_KEYS": generate_key(),
        "WORKER_POLL_DELAY_SECONDS": "0.01",
        "WORKER_RETRY_BASE_SECONDS": "0.01",
        "WORKER_RETRY_MAX_SECONDS": "0.05",
    }
    if "tiktok_sandbox" in request.fixturenames:
        sandbox: SandboxHandle = request.getfixturevalue("tiktok_sandbox")
        env |= sandbox.settings_env()
    return load_settings(env)


@pytest.fixture
async def tiktok_webhooks(tiktok_settings: Settings) -> AsyncIterator[WebhookTester]:
    from receiver.app import create_app
    from receiver.testing.asgi import app_client
    from receiver.testing.tester import WebhookTester

    async with app_client(create_app(tiktok_settings)) as client:
        yield WebhookTester(tiktok_settings, client)
