"""The console's Forwarding page and actions, and a user's videos and data requests."""

from __future__ import annotations

import re

import redis.asyncio as aioredis

from handlers.forwarding.store import DeliveryStore
from receiver import fetched, keys
from tests.console.conftest import CONSOLE, console_settings, csrf_of, signed_in
from tests.factories import CLIENT_KEY, delivery
from tests.handlers.forwarding.consumer import Consumer, running
from tests.handlers.forwarding.support import SECRET, forward_settings
from tests.oauth.conftest import Tiktok
from tests.worker_support import deliver, drain

FORWARD_POSTS = (
    "/forwarding/destinations/default/disable",
    "/forwarding/destinations/default/enable",
)


async def test_forwarding_page_retry_disable_enable(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    consumer = Consumer(SECRET, then=500)
    with running(consumer) as url:
        worker = forward_settings(redis_url, url, FORWARD_RETRY_SCHEDULE="10ms")
        await deliver(worker, [delivery("tiktok.ping", {"reason": "x"})])
        await drain(worker)
        store = DeliveryStore(redis_client)
        [dead] = await store.recent(limit=10)
        assert dead.state == "dead"

        settings = console_settings(redis_url, tiktok.url, FORWARD_URL=url, FORWARD_SECRET=SECRET)
        async with signed_in(settings) as operator:
            page = await operator.page("/forwarding")
            assert page.status_code == 200
            assert dead.id in page.text
            assert "<td>tiktok.ping</td>" in page.text
            assert "status-dead" in page.text
            assert "(HTTP 500)" in page.text
            assert "status-failing" in page.text  # the destination answered 500
            assert SECRET not in page.text
            only_dead = (await operator.page("/forwarding?state=dead")).text
            assert dead.id in only_dead
            none_pending = (await operator.page("/forwarding?state=pending")).text
            assert dead.id not in none_pending
            odd = await operator.page("/forwarding?state=zzz&destination=" + "x" * 5000)
            assert odd.status_code == 200

            detail_path = f"/forwarding/deliveries/{dead.id}"
            detail = (await operator.page(detail_path)).text
            assert len(re.findall(r"<td>500</td>", detail)) == 2
            assert (await operator.page("/forwarding/deliveries/msg_nope")).status_code == 404

            # Without the session's CSRF token nothing happens.
            for path in (f"{detail_path}/retry", *FORWARD_POSTS):
                for data in ({}, {"csrf": "forged", "confirm": "yes"}):
                    response = await operator.http.post(f"{CONSOLE}{path}", data=data)
                    assert response.status_code == 403, (path, data)
            assert await redis_client.llen(keys.CONSOLE_ACTIONS_LIST) == 0  # type: ignore[misc]
            assert (await store.get(dead.id)) == dead

            # Retry: asked first, then sent again; the consumer now takes it.
            asked = await operator.post(f"{detail_path}/retry", from_page=detail_path)
            assert asked.status_code == 200
            assert "Yes, do it" in asked.text
            assert (await store.get(dead.id)) == dead  # only asked
            done = await operator.http.post(
                f"{CONSOLE}{detail_path}/retry",
                data={"csrf": csrf_of(asked.text), "confirm": "yes"},
            )
            assert done.status_code == 303
            requeued = await store.get(dead.id)
            assert requeued is not None
            assert requeued.state == "pending"
            consumer.then = 200
            await drain(worker)
            delivered = await store.get(dead.id)
            assert delivered is not None
            assert delivered.state == "succeeded"
            page = await operator.page("/forwarding")
            assert "status-enabled" in page.text  # a success ends "failing"
            assert "status-failing" not in page.text

            # Disable, then enable the destination.
            disable = FORWARD_POSTS[0]
            asked = await operator.post(disable, from_page="/forwarding")
            assert "Disable this forward destination" in asked.text
            assert await store.destination_state("default") == {}
            done = await operator.http.post(
                f"{CONSOLE}{disable}", data={"csrf": csrf_of(asked.text), "confirm": "yes"}
            )
            assert done.status_code == 303
            state = await store.destination_state("default")
            assert state["disabled_reason"] == "disabled by hand"
            page = await operator.page("/forwarding")
            assert "status-disabled" in page.text
            assert "Enable…" in page.text
            overview = (await operator.page("/")).text
            assert re.search(r'class="number">1</span> disabled', overview)

            enable = FORWARD_POSTS[1]
            asked = await operator.post(enable, from_page="/forwarding")
            done = await operator.http.post(
                f"{CONSOLE}{enable}", data={"csrf": csrf_of(asked.text), "confirm": "yes"}
            )
            assert done.status_code == 303
            assert await store.destination_state("default") == {}
            overview = (await operator.page("/")).text
            assert re.search(r'class="number">1</span> enabled', overview)
            assert re.search(r'class="number">0</span> disabled', overview)

            actions = (await operator.page("/forwarding")).text
            for what in (
                "retry forward delivery",
                "disable forward destination",
                "enable forward destination",
            ):
                assert what in actions
            assert "session " in actions

            unknown = await operator.post(
                "/forwarding/destinations/nobody/disable", from_page="/forwarding", confirm="yes"
            )
            assert unknown.status_code == 404
            odd_action = await operator.post(
                "/forwarding/destinations/default/delete", from_page="/forwarding", confirm="yes"
            )
            assert odd_action.status_code == 404
            gone = await operator.post(
                "/forwarding/deliveries/msg_nope/retry", from_page="/forwarding", confirm="yes"
            )
            assert gone.status_code == 404


async def test_forwarding_page_without_destinations(redis_url: str, tiktok: Tiktok) -> None:
    async with signed_in(console_settings(redis_url, tiktok.url)) as operator:
        page = await operator.page("/forwarding")
        assert page.status_code == 200
        assert "No forward destination is configured" in page.text
        assert "No forward delivery" in page.text
        overview = (await operator.page("/")).text
        assert "No forward destination is configured" in overview


async def test_user_page_shows_videos_and_data_requests(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    await fetched.note_video(
        redis_client,
        CLIENT_KEY,
        "7300000000000000001",
        open_id="alice",
        publish_id="v_pub_42",
        public=True,
        event_time=1_700_000_000,
    )
    await fetched.save_video_details(
        redis_client,
        CLIENT_KEY,
        "7300000000000000001",
        state="fetched",
        details={"title": "My <first> video", "view_count": 12},
    )
    await fetched.save_data_request(
        redis_client,
        fetched.DataRequest(
            client_key=CLIENT_KEY,
            request_id="7400000000000000002",
            open_id="alice",
            categories=["profile", "activity"],
            data_format="json",
            status="downloaded",
            requested_at=1_700_000_100.0,
            size=2048,
            sha256="ab" * 32,
        ),
    )
    async with signed_in(console_settings(redis_url, tiktok.url)) as operator:
        assert (await operator.browser.connect("alice")).status_code == 200
        page = await operator.page(f"/users/{CLIENT_KEY}/alice")
        assert page.status_code == 200
        text = page.text
        assert "<td>7300000000000000001</td>" in text
        assert "My &lt;first&gt; video" in text
        assert "<td>v_pub_42</td>" in text
        assert "<td>7400000000000000002</td>" in text
        assert "downloaded" in text
        assert "profile, activity" in text
        assert "2048 bytes" in text
        other = (await operator.page(f"/users/{CLIENT_KEY}/bob")).text
        assert "7300000000000000001" not in other
