"""The TikTok sandbox on a real loopback port, for tests that need TikTok."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from receiver.testing.servers import serve_in_thread

TEST_REDIRECT_URI = "http://127.0.0.1:8000/oauth/tiktok/callback"


@dataclass(frozen=True)
class SandboxHandle:
    """Where the sandbox runs, and its admin API (synchronous, for test set-up)."""

    base_url: str
    client_key: str
    redirect_uri: str = TEST_REDIRECT_URI

    def settings_env(self) -> dict[str, str]:
        """Environment variables that point the service at this sandbox (over http, which
        only TIKTOK_WEBHOOKS_ENV=development allows)."""
        return {
            "TIKTOK_WEBHOOKS_ENV": "development",
            "TIKTOK_API_BASE_URL": self.base_url,
            "TIKTOK_AUTH_URL": f"{self.base_url}/v2/auth/authorize/",
        }

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.base_url}{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def add_user(self, open_id: str, **profile: Any) -> dict[str, Any]:
        user: dict[str, Any] = self.admin(
            "POST", "/sandbox/users", json={"open_id": open_id, **profile}
        )
        return user

    def calls(self, endpoint: str, **filters: str) -> list[dict[str, Any]]:
        body = self.admin("GET", "/sandbox/calls", params={"endpoint": endpoint, **filters})
        calls: list[dict[str, Any]] = body["calls"]
        return calls

    def fault(self, **spec: Any) -> None:
        self.admin("POST", "/sandbox/faults", json=spec)

    def reset(self) -> None:
        self.admin("POST", "/sandbox/reset")

    def authorize(self, authorize_url: str, open_id: str) -> dict[str, str]:
        """Follow TikTok's consent step (auto-approved); the callback's query parameters."""
        response = httpx.get(f"{authorize_url}&sandbox_user={open_id}", timeout=10)
        if response.status_code != 302:
            raise AssertionError(f"the sandbox refused to authorize: {response.text}")
        query = parse_qs(urlsplit(response.headers["location"]).query)
        return {name: values[-1] for name, values in query.items()}


@contextmanager
def running_sandbox(
    client_key: str, client_secret: str, *, redirect_uri: str = TEST_REDIRECT_URI
) -> Iterator[SandboxHandle]:
    from tiktok_sandbox.app import create_app
    from tiktok_sandbox.config import AppConfig, SandboxConfig

    config = SandboxConfig(
        apps=[
            AppConfig(
                client_key=client_key, client_secret=client_secret, redirect_uris=[redirect_uri]
            )
        ],
        rate_limit_per_minute=None,
    )
    with serve_in_thread(create_app(config)) as base_url:
        yield SandboxHandle(base_url, client_key, redirect_uri)
