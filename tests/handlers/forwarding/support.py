"""Settings with a forwarding destination, and reading what forwarding recorded."""

from __future__ import annotations

from receiver.forward_config import generate_secret
from receiver.settings import Settings
from tests.worker_support import worker_settings

SECRET = generate_secret()


def forward_settings(redis_url: str, url: str, **env: str) -> Settings:
    base = {
        "TIKTOK_WEBHOOKS_ENV": "development",
        "FORWARD_URL": url,
        "FORWARD_SECRET": SECRET,
        "FORWARD_RETRY_SCHEDULE": "20ms,20ms,20ms",
    }
    return worker_settings(redis_url, **{**base, **env})
