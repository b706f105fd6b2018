"""The pytest plugin as a company uses it: fixtures by entry point, five-line tests."""

from __future__ import annotations

import textwrap

import pytest

from handlers.context import HandlerContext
from handlers.registry import registry
from receiver.ingest.events import VideoPublishCompleted, WebhookEvent
from receiver.testing import HandlerNeverRan, WebhookTester, make_delivery, sign
from receiver.testing.redis_server import RedisServer

pytest_plugins = ["pytester"]


async def test_a_company_handler_in_five_lines(tiktok_webhooks: WebhookTester) -> None:
    mine = registry.copy()

    @mine.on("video.publish.completed", name="company.notify_team")
    async def notify_team(event: WebhookEvent, ctx: HandlerContext) -> str:
        assert isinstance(event.content, VideoPublishCompleted)
        return f"shared {event.content.share_id}"

    outcomes = await tiktok_webhooks.deliver(
        tiktok_webhooks.make_delivery("video.publish.completed", {"share_id": "v.1"}),
        registry=mine,
    )
    assert outcomes.succeeded("company.notify_team")
    assert outcomes.results("company.notify_team") == ["shared v.1"]
    assert outcomes.errors() == []


async def test_errors_are_reported_not_hidden(tiktok_webhooks: WebhookTester) -> None:
    mine = registry.copy()

    @mine.on("tiktok.ping", name="company.broken")
    async def broken(event: WebhookEvent, ctx: HandlerContext) -> None:
        raise ValueError("no such table")

    outcomes = await tiktok_webhooks.deliver(
        tiktok_webhooks.make_delivery("tiktok.ping"), registry=mine
    )
    assert not outcomes.succeeded("company.broken")
    [error] = outcomes.errors()
    assert error.error == "ValueError: no such table"


async def test_a_handler_that_never_ran_is_named_not_false(tiktok_webhooks: WebhookTester) -> None:
    outcomes = await tiktok_webhooks.deliver(
        tiktok_webhooks.make_delivery("tiktok.ping"), registry=registry.copy()
    )
    with pytest.raises(HandlerNeverRan, match=r"'company\.typo' never ran; .*builtin\.record_ping"):
        outcomes.succeeded("company.typo")
    with pytest.raises(HandlerNeverRan):
        outcomes.results("company.typo")


async def test_deliveries_are_signed_like_tiktok(tiktok_webhooks: WebhookTester) -> None:
    delivery = make_delivery(
        "authorization.removed",
        client_key=tiktok_webhooks.client_key,
        secret=tiktok_webhooks.secret,
        timestamp=1700000000,
        create_time=1700000000,
    )
    assert delivery.headers["TikTok-Signature"] == sign(
        tiktok_webhooks.secret, delivery.body, 1700000000
    )
    response = await tiktok_webhooks.post(delivery)
    assert response.status_code == 401  # a 2023 timestamp is stale now
    fresh = tiktok_webhooks.make_delivery("authorization.removed")
    assert (await tiktok_webhooks.post(fresh)).json() == {"status": "accepted"}
    assert (await tiktok_webhooks.post(fresh)).json() == {"status": "duplicate"}


def test_redis_is_private_and_flushed(
    tiktok_redis_server: RedisServer, tiktok_redis_url: str
) -> None:
    assert tiktok_redis_server.port != 6379
    assert tiktok_redis_url == tiktok_redis_server.url


def test_the_plugin_loads_by_entry_point(pytester: pytest.Pytester) -> None:
    """A project with no conftest gets the fixtures just by installing the package."""
    pytester.makepyfile(
        test_company=textwrap.dedent(
            """
            async def test_ping(tiktok_webhooks):
                ping = tiktok_webhooks.make_delivery("tiktok.ping")
                outcomes = await tiktok_webhooks.deliver(ping)
                assert outcomes.succeeded("builtin.record_ping")
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "asyncio", "-o", "asyncio_mode=auto", "-q")
    result.assert_outcomes(passed=1)


async def test_every_contract_event_of_the_corpus_is_handled(
    tiktok_webhooks: WebhookTester,
) -> None:
    from receiver.ingest.events import KNOWN_EVENTS

    deliveries = tiktok_webhooks.corpus()
    assert len(deliveries) >= len(KNOWN_EVENTS)
    outcomes = await tiktok_webhooks.deliver(deliveries)
    assert outcomes.errors() == []
    assert outcomes.succeeded("builtin.record_status")
    assert outcomes.succeeded("builtin.purge_user")
