"""`/oauth/tiktok/start` writes nothing to Redis and is limited per client address."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis

from receiver.testing.redis_server import free_port
from tests.deploy.processes import ENTRYPOINT, answers, running, service_env
from tests.oauth.conftest import Tiktok
from tests.oauth.harness import ENCRYPTION_KEY, REDIRECT_URI, oauth_settings
from tests.oauth.harness import running as running_app
from tests.oauth.test_state import with_query

FLOOD = 2000


def used_memory(store: redis.Redis) -> int:
    info = cast(dict[str, Any], store.info("memory"))
    return int(info["used_memory"])


def test_a_flood_of_starts_leaves_redis_flat_and_is_limited_per_address(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(
        redis_url,
        TIKTOK_REDIRECT_URI=REDIRECT_URI,
        TOKEN_ENCRYPTION_KEYS=ENCRYPTION_KEY,
        OAUTH_START_RATE_PER_MINUTE="5",
    )
    argv = [ENTRYPOINT, "serve", "--port", str(port)]  # trusts X-Forwarded-For from 127.0.0.1
    store = redis.Redis.from_url(redis_url)
    try:
        with (
            running(argv, env, tmp_path / "serve.log", answers(f"{base}/readyz")),
            httpx.Client(base_url=base, timeout=10) as http,
        ):
            keys_before = store.dbsize()
            memory_before = used_memory(store)
            statuses = {
                http.get(
                    "/oauth/tiktok/start",
                    headers={"X-Forwarded-For": f"198.51.{i // 250}.{i % 250}"},
                ).status_code
                for i in range(FLOOD)
            }
            assert statuses == {302}
            assert store.dbsize() == keys_before
            # Before, each start stored ~375 bytes: 2,000 of them grew Redis by ~750 KB.
            assert used_memory(store) - memory_before < 100_000

            one = {"X-Forwarded-For": "203.0.113.7"}
            answers_one = [http.get("/oauth/tiktok/start", headers=one) for _ in range(8)]
            assert [r.status_code for r in answers_one] == [302] * 5 + [429] * 3
            assert 1 <= int(answers_one[-1].headers["retry-after"]) <= 60
            other = http.get("/oauth/tiktok/start", headers={"X-Forwarded-For": "203.0.113.8"})
            assert other.status_code == 302
    finally:
        store.close()


async def test_an_error_code_from_outside_is_logged_cleaned(
    redis_url: str, tiktok: Tiktok, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    injected = "server_error\n2026-01-01 00:00:00 CRITICAL forged: admin logged in"
    async with running_app(oauth_settings(redis_url, tiktok.url)) as browser:
        callback = await browser.authorize(await browser.start(), decision="deny")
        response = await browser.http.get(with_query(callback, error=injected))
    assert response.status_code == 400
    assert "forged" not in response.text
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("tiktok_webhooks")]
    assert not any("forged" in message for message in messages), messages
    assert any("invalid" in message for message in messages), messages
