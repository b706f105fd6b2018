"""Environments for running the CLI in a subprocess: this process's, minus every setting."""

from __future__ import annotations

import os

from receiver.settings import ENV_NAMES
from tests.factories import CLIENT_KEY, CLIENT_SECRET
from tests.worker_support import TEST_ENCRYPTION_KEY


def clean_env(**values: str) -> dict[str, str]:
    """os.environ without any of the service's settings, plus `values`."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    return {**env, **values}


def app_env(redis_url: str, **values: str) -> dict[str, str]:
    """A development configuration of the test app on `redis_url`, plus `values`."""
    return clean_env(
        TIKTOK_CLIENT_KEY=CLIENT_KEY,
        TIKTOK_CLIENT_SECRET=CLIENT_SECRET,
        TOKEN_ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
        REDIS_URL=redis_url,
        TIKTOK_WEBHOOKS_ENV="development",
        **values,
    )
