"""Settings and deliveries for tests."""

from __future__ import annotations

from typing import Any

from receiver.ingest.delivery import build_body, signed_headers
from receiver.settings import Settings, load_settings

CLIENT_KEY = "test_client_key"
CLIENT_SECRET = "test_client_secret"


def make_settings(redis_url: str, **env: str) -> Settings:
    environ = {
        "TIKTOK_CLIENT_KEY": CLIENT_KEY,
        "TIKTOK_CLIENT_SECRET": CLIENT_SECRET,
        "REDIS_URL": redis_url,
        **env,
    }
    return load_settings(environ)


def delivery(
    event: str = "authorization.removed",
    content: dict[str, Any] | str | None = None,
    *,
    open_id: str | None = "user-1",
    create_time: int = 1_700_000_000,
    client_key: str = CLIENT_KEY,
    secret: str = CLIENT_SECRET,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A signed delivery: (body, headers)."""
    body = build_body(
        client_key=client_key,
        event=event,
        content={"reason": 1} if content is None else content,
        user_openid=open_id,
        create_time=create_time,
    )
    return body, signed_headers(secret, body, timestamp=timestamp)
