"""Unsigned requests: counted by event; the portal's ping explained, optionally accepted."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from receiver.app import create_app
from receiver.ingest.delivery import build_body
from receiver.testing.asgi import app_client
from tests.factories import CLIENT_KEY, make_settings
from tests.store import Store

URL = "/webhooks/tiktok"


def unsigned(event: str) -> float:
    value = REGISTRY.get_sample_value("tiktok_webhook_unsigned_total", {"event": event})
    return value or 0.0


def ping() -> bytes:
    # The shape of a captured portal ping: a user_openid and a millisecond create_time.
    return build_body(
        client_key=CLIENT_KEY,
        event="tiktok.ping",
        content={"reason": "testing Webhook"},
        user_openid="7528370655977505848",
        create_time=1752894700622,
    )


async def test_an_unsigned_ping_is_refused_counted_and_explained(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = unsigned("tiktok.ping"), unsigned("authorization.removed")
    removal = build_body(client_key=CLIENT_KEY, event="authorization.removed", content={})
    with caplog.at_level(logging.WARNING, logger="tiktok_webhooks.webhook"):
        async with app_client(create_app(make_settings(redis_url))) as client:
            refused = await client.post(URL, content=ping())
            other = await client.post(URL, content=removal)
    assert refused.status_code == 401
    assert other.status_code == 401
    assert (unsigned("tiktok.ping"), unsigned("authorization.removed")) == (
        before[0] + 1,
        before[1] + 1,
    )
    hints = [
        r.getMessage() for r in caplog.records if "WEBHOOK_ACCEPT_UNSIGNED_PING" in r.getMessage()
    ]
    assert len(hints) == 1  # for the ping only


async def test_with_the_setting_an_unsigned_ping_is_200_and_not_enqueued(redis_url: str) -> None:
    settings = make_settings(redis_url, WEBHOOK_ACCEPT_UNSIGNED_PING="1")
    removal = build_body(client_key=CLIENT_KEY, event="authorization.removed", content={})
    async with app_client(create_app(settings)) as client:
        accepted = await client.post(URL, content=ping())
        still_refused = await client.post(URL, content=removal)
        bad_signature = await client.post(
            URL, content=ping(), headers={"TikTok-Signature": "t=1,s=" + "0" * 64}
        )
    assert accepted.status_code == 200
    assert accepted.json() == {"status": "ping"}
    assert still_refused.status_code == 401  # only the ping, and only unsigned
    assert bad_signature.status_code == 401  # a wrong signature is still wrong
    store = Store(redis_url)
    try:
        assert store.zrange("arq:queue") == []
    finally:
        store.close()
