"""Forwarding with a real worker, a real Redis and a real consumer on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgspec
import svix.webhooks
from prometheus_client import REGISTRY
from standardwebhooks.webhooks import Webhook

from handlers.forwarding.admin import enable
from handlers.forwarding.store import DeliveryStore, delivery_id
from receiver import fetched
from receiver.forward_config import generate_secret
from receiver.ingest.events import decode_body
from receiver.settings import Settings
from receiver.users import Profile
from tests.factories import delivery
from tests.handlers.forwarding.consumer import Consumer, running
from tests.handlers.forwarding.support import SECRET, forward_settings
from tests.worker_support import deliver, drain

BIG_POST_ID = 7300000000000000001  # 19 digits: a float would round it
PUBLIC = {"publish_id": "v_pub_url~v2.7", "post_id": BIG_POST_ID, "publish_type": "DIRECT_PUBLISH"}


async def records(settings: Settings, redis_client: object) -> DeliveryStore:
    return DeliveryStore(
        redis_client,  # type: ignore[arg-type]
    )


def attempts_of(destination: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "tiktok_forward_attempts_total", {"destination": destination, "outcome": outcome}
    )
    return value or 0.0


async def test_an_event_arrives_signed_as_standard_webhooks(
    redis_url: str, redis_client: object
) -> None:
    consumer = Consumer(SECRET)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url)
        body, headers = delivery("post.publish.publicly_available", PUBLIC, open_id="user-9")
        # What the profile handler stored for this user earlier.
        profile = Profile({"display_name": "Nina", "follower_count": 3}, fetched_at=1.5)
        await redis_client.set(  # type: ignore[attr-defined]
            "tiktok:profile:test_client_key:user-9", msgspec.json.encode(profile)
        )
        await deliver(settings, [(body, headers)])
        before = attempts_of("default", "success")
        await drain(settings)
    [received] = consumer.received
    assert received.verified
    # Checked again by a second implementation we did not write.
    svix.webhooks.Webhook(SECRET).verify(received.body, received.headers)
    assert received.headers["content-type"] == "application/json"
    expected_id = delivery_id(decode_body(body).dedupe_key, "default")
    assert received.headers["webhook-id"] == expected_id
    payload = received.json()
    assert payload["type"] == "post.publish.publicly_available"
    assert payload["timestamp"] == "2023-11-14T22:13:20Z"  # create_time 1_700_000_000
    data = payload["data"]
    assert data["client_key"] == "test_client_key"
    assert data["user_openid"] == "user-9"
    assert data["create_time"] == 1_700_000_000
    assert data["content"]["post_id"] == str(BIG_POST_ID)
    assert data["content"]["publish_id"] == "v_pub_url~v2.7"
    # The built-in status handler ran first; its record travels along.
    assert data["status"]["status"] == "publicly_available"
    assert data["status"]["post_id"] == str(BIG_POST_ID)
    assert b"7300000000000000001" in received.body
    assert data["profile"] == {
        "fields": {"display_name": "Nina", "follower_count": 3},
        "fetched_at": 1.5,
    }
    assert attempts_of("default", "success") == before + 1
    store = await records(settings, redis_client)
    record = await store.get(expected_id)
    assert record is not None
    assert record.state == "succeeded"
    [attempt] = await store.attempts(expected_id)
    assert attempt.status == 200
    assert attempt.outcome == "success"
    assert attempt.response == "ok"
    assert attempt.next_attempt_at is None


async def test_what_the_follow_up_fetches_stored_travels_along(
    redis_url: str, redis_client: object
) -> None:
    """The publish status and the video details fetched for earlier events of the same
    publish are in the body (ids as strings); absent when nothing was fetched."""
    redis = redis_client  # the test's client of the suite's Redis
    await fetched.save_publish_fetch(
        redis,  # type: ignore[arg-type]
        fetched.PublishFetch(
            client_key="test_client_key",
            publish_id="v_pub_url~v2.7",
            open_id="user-9",
            state="fetched",
            status="PUBLISH_COMPLETE",
            post_ids=[str(BIG_POST_ID)],
        ),
    )
    await fetched.save_video_details(
        redis,  # type: ignore[arg-type]
        "test_client_key",
        str(BIG_POST_ID),
        state="fetched",
        details={"id": str(BIG_POST_ID), "view_count": 12},
    )
    consumer = Consumer(SECRET)
    with running(consumer) as url:
        # This event's own fetches are separate jobs that may run before its delivery is
        # written (docs/forwarding.md): left out here, so what travels along is what
        # earlier events fetched.
        settings = forward_settings(
            redis_url,
            url,
            WORKER_DISABLED_HANDLERS="builtin.fetch_publish_status,builtin.fetch_video",
        )
        await deliver(
            settings,
            [
                delivery("post.publish.publicly_available", PUBLIC, open_id="user-9"),
                delivery("tiktok.ping", {"reason": "nothing fetched"}),
            ],
        )
        await drain(settings)
    by_type = {r.json()["type"]: r.json()["data"] for r in consumer.received}
    public = by_type["post.publish.publicly_available"]
    assert public["publish"]["status"] == "PUBLISH_COMPLETE"
    assert public["publish"]["post_ids"] == [str(BIG_POST_ID)]
    assert public["video"] == {"id": str(BIG_POST_ID), "view_count": 12}
    ping = by_type["tiktok.ping"]
    assert "publish" not in ping
    assert "video" not in ping


async def test_every_secret_of_a_rotation_signs(redis_url: str) -> None:
    newer = generate_secret()
    consumer = Consumer(newer)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url, FORWARD_SECRET=f"{newer},{SECRET}")
        await deliver(settings, [delivery("tiktok.ping", {"reason": "test"})])
        await drain(settings)
    [received] = consumer.received
    signatures = received.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    # Either secret alone verifies the request: consumers can rotate at their own pace.
    Webhook(newer).verify(received.body, received.headers)
    Webhook(SECRET).verify(received.body, received.headers)
    svix.webhooks.Webhook(SECRET).verify(received.body, received.headers)
    # And the signature is exactly HMAC-SHA256 over "id.timestamp.body".
    key = base64.b64decode(newer.removeprefix("whsec_"))
    signed = (
        f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode()
        + received.body
    )
    expected = base64.b64encode(hmac.digest(key, signed, hashlib.sha256)).decode()
    assert signatures[0] == f"v1,{expected}"


async def test_failures_retry_with_the_same_id_and_fresh_signatures(
    redis_url: str, redis_client: object
) -> None:
    consumer = Consumer(SECRET, answers=[500, 503])
    with running(consumer) as url:
        settings = forward_settings(redis_url, url)
        await deliver(settings, [delivery("video.publish.completed", {"share_id": "video.1.a"})])
        await drain(settings)
    assert [r.verified for r in consumer.received] == [True, True, True]
    ids = {r.headers["webhook-id"] for r in consumer.received}
    assert len(ids) == 1
    signatures = [r.headers["webhook-signature"] for r in consumer.received]
    # Each try is signed afresh (a new timestamp, or at least a new signing).
    assert len(consumer.handled) == 1
    assert consumer.handled_twice == []
    bodies = {r.body for r in consumer.received}
    assert len(bodies) == 1  # the body never changes between tries
    store = await records(settings, redis_client)
    [message_id] = ids
    attempts = await store.attempts(message_id)
    assert [a.status for a in attempts] == [500, 503, 200]
    assert [a.number for a in attempts] == [1, 2, 3]
    assert attempts[0].next_attempt_at is not None
    assert attempts[0].next_attempt_at > attempts[0].at
    assert attempts[-1].next_attempt_at is None
    record = await store.get(message_id)
    assert record is not None
    assert record.state == "succeeded"
    assert len(signatures) == 3


async def test_retry_after_is_honoured(redis_url: str, redis_client: object) -> None:
    consumer = Consumer(SECRET, answers=[429], extra_headers={"retry-after": "1"})
    with running(consumer) as url:
        settings = forward_settings(redis_url, url)
        await deliver(settings, [delivery("tiktok.ping", {"reason": "x"})])
        await drain(settings)
    store = await records(settings, redis_client)
    first, second = await store.attempts(consumer.received[0].headers["webhook-id"])
    assert first.status == 429
    assert first.next_attempt_at is not None
    assert first.next_attempt_at - first.at >= 1.0  # the schedule alone said 20 ms
    assert second.status == 200
    assert second.at >= first.next_attempt_at - 0.01
    # The second try carries its own, later timestamp and a signature over it.
    one, two = consumer.received
    assert int(two.headers["webhook-timestamp"]) > int(one.headers["webhook-timestamp"])
    assert two.headers["webhook-signature"] != one.headers["webhook-signature"]
    assert one.headers["webhook-id"] == two.headers["webhook-id"]


async def test_after_the_last_try_a_delivery_is_dead_and_replays(
    redis_url: str, redis_client: object
) -> None:
    consumer = Consumer(SECRET, then=500)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url, FORWARD_RETRY_SCHEDULE="10ms,10ms")
        await deliver(settings, [delivery("tiktok.ping", {"reason": "x"})])
        await drain(settings)
        assert len(consumer.received) == 3  # the first try and two retries
        store = await records(settings, redis_client)
        message_id = consumer.received[0].headers["webhook-id"]
        record = await store.get(message_id)
        assert record is not None
        assert record.state == "dead"
        assert "gave up after 3 tries" in record.note
        dead = await store.ids_between(0, 2e9, destination="default", unfinished=True)
        assert dead == [message_id]
        consumer.then = 200
        assert await store.requeue(message_id, only_unfinished=True)
        await drain(settings)
    assert len(consumer.received) == 4
    assert list(consumer.handled) == [message_id]
    record = await store.get(message_id)
    assert record is not None
    assert record.state == "succeeded"
    assert await store.ids_between(0, 2e9, destination="default", unfinished=True) == []
    # A succeeded delivery is not sent again by a range replay.
    assert not await store.requeue(message_id, only_unfinished=True)


async def test_410_gone_disables_the_destination_and_holds_deliveries(
    redis_url: str, redis_client: object
) -> None:
    consumer = Consumer(SECRET, answers=[410])
    with running(consumer) as url:
        settings = forward_settings(redis_url, url)
        await deliver(settings, [delivery("tiktok.ping", {"reason": "one"})])
        await drain(settings)
        store = await records(settings, redis_client)
        state = await store.destination_state("default")
        assert "410" in state["disabled_reason"]
        await deliver(settings, [delivery("tiktok.ping", {"reason": "two"})])
        await drain(settings)
        assert len(consumer.received) == 1  # nothing is sent to a disabled destination
        held = await store.ids_between(0, 2e9, destination="default", unfinished=True)
        assert len(held) == 2
        assert {(await store.get(i)).state for i in held} == {"held"}  # type: ignore[union-attr]
        assert await enable(store, "default") == (True, 2)
        assert (await store.counts("default"))["held"] == 0
        await drain(settings)
    assert set(consumer.handled) == set(held)
    assert {(await store.get(i)).state for i in held} == {"succeeded"}  # type: ignore[union-attr]


async def test_a_destination_failing_too_long_is_disabled(
    redis_url: str, redis_client: object
) -> None:
    consumer = Consumer(SECRET, answers=[500])
    with running(consumer) as url:
        settings = forward_settings(redis_url, url, FORWARD_DISABLE_AFTER_SECONDS="60")
        store = await records(settings, redis_client)
        # It has been failing since two minutes ago (as another worker recorded).
        await redis_client.hset(  # type: ignore[attr-defined]
            "tiktok:fwd:dest:default", "failing_since", "1"
        )
        await deliver(settings, [delivery("tiktok.ping", {"reason": "x"})])
        await drain(settings)
    assert len(consumer.received) == 1
    state = await store.destination_state("default")
    assert state["disabled_reason"].startswith("failing for")
    [message_id] = await store.ids_between(0, 2e9, destination="default", unfinished=True)
    record = await store.get(message_id)
    assert record is not None
    assert record.state == "held"


async def test_redirects_are_not_followed(redis_url: str, redis_client: object) -> None:
    consumer = Consumer(SECRET, answers=[302])
    with running(consumer) as url:
        settings = forward_settings(redis_url, url)
        await deliver(settings, [delivery("tiktok.ping", {"reason": "x"})])
        await drain(settings)
    assert consumer.redirect_hits == 0
    store = await records(settings, redis_client)
    first = (await store.attempts(consumer.received[0].headers["webhook-id"]))[0]
    assert first.status == 302
    assert first.error is not None
    assert "redirects are not followed" in first.error


async def test_a_huge_answer_is_read_only_in_part(redis_url: str, redis_client: object) -> None:
    consumer = Consumer(SECRET, response_body=b"x" * 5_000_000)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url)
        await deliver(settings, [delivery("tiktok.ping", {"reason": "x"})])
        await drain(settings)
    store = await records(settings, redis_client)
    [attempt] = await store.attempts(consumer.received[0].headers["webhook-id"])
    assert attempt.status == 200
    assert attempt.response == "x" * 1024


async def test_only_matching_events_are_forwarded(redis_url: str) -> None:
    consumer = Consumer(SECRET)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url, FORWARD_EVENTS="post.publish.*,tiktok.ping")
        await deliver(
            settings,
            [
                delivery("post.publish.complete", {"publish_id": "p1"}),
                delivery("video.publish.completed", {"share_id": "video.1.a"}),
                delivery("tiktok.ping", {"reason": "x"}),
            ],
        )
        await drain(settings)
    types = sorted(r.json()["type"] for r in consumer.received)
    assert types == ["post.publish.complete", "tiktok.ping"]


async def test_a_redelivered_event_is_forwarded_once(redis_url: str) -> None:
    consumer = Consumer(SECRET)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url)
        first = delivery("tiktok.ping", {"reason": "x"})
        await deliver(settings, [first])
        await drain(settings)
        # The same event once more (TikTok retried; another receiver did not know it).
        await redis_client_flush_dedupe(redis_url)
        await deliver(settings, [first])
        await drain(settings)
    assert len(consumer.received) == 1


async def redis_client_flush_dedupe(redis_url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        async for key in client.scan_iter(match="tiktok:dedupe:*"):
            await client.delete(key)
    finally:
        await client.aclose()


def test_the_body_keeps_ids_exact() -> None:
    from handlers.forwarding.payload import build_payload

    body, _ = delivery("portability.download.ready", {"request_id": 123456789012345678901234567890})
    payload = msgspec.json.decode(build_payload(decode_body(body).envelope))
    assert payload["data"]["content"]["request_id"] == "123456789012345678901234567890"


async def test_gauges_per_destination(redis_url: str, redis_client: object) -> None:
    from handlers.forwarding.forwarder import Forwarder

    consumer = Consumer(SECRET, then=500)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url, FORWARD_RETRY_SCHEDULE="10ms")
        await deliver(
            settings,
            [delivery("tiktok.ping", {"reason": "a"}), delivery("tiktok.ping", {"reason": "b"})],
        )
        await drain(settings)
    forwarder = Forwarder(settings, redis_client)  # type: ignore[arg-type]
    try:
        await forwarder.update_stats()
    finally:
        await forwarder.aclose()

    def gauge(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"destination": "default"})

    assert gauge("tiktok_forward_dead_letters") == 2
    assert gauge("tiktok_forward_pending") == 0
    assert gauge("tiktok_forward_oldest_pending_age_seconds") == 0
    assert gauge("tiktok_forward_destination_disabled") == 0
    assert attempts_of("default", "http_error") >= 4


async def test_without_destinations_no_forwarding_handler_runs(redis_url: str) -> None:
    from tests.worker_support import worker_settings

    settings = worker_settings(redis_url)
    await deliver(settings, [delivery("tiktok.ping", {"reason": "x"})])
    outcomes = await drain(settings)
    assert outcomes
    assert all(o.handler != "builtin.forward" for o in outcomes)
    with_destination = forward_settings(redis_url, "http://127.0.0.1:9/hook")
    await deliver(with_destination, [delivery("tiktok.ping", {"reason": "y"})])
    outcomes = await drain(with_destination)
    assert [o.handler for o in outcomes][-1] == "builtin.forward"  # last, after the built-ins
