"""Latest status per share / publish / download, as the company's backend reads it."""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis

from receiver.status_store import StatusRecord, get_status, save_status
from tests.factories import CLIENT_KEY, delivery
from tests.worker_support import deliver, drain, worker_settings


async def test_publish_status_latest_wins_and_failure_reason_kept(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    settings = worker_settings(redis_url)
    await deliver(
        settings,
        [
            delivery(
                "post.publish.failed",
                {"publish_id": "p-1", "fail_reason": "spam_risk", "publish_type": "DIRECT_POST"},
                create_time=100,
            ),
            delivery(
                "post.publish.failed",
                {"publish_id": "p-2", "reason": "internal", "publish_type": "INBOX_SHARE"},
                create_time=100,
            ),
        ],
    )
    await drain(settings)
    failed = await get_status(redis_client, "publish", CLIENT_KEY, "p-1")
    assert failed is not None
    assert failed.status == "failed"
    assert failed.reason == "spam_risk"
    assert failed.retryable is False
    internal = await get_status(redis_client, "publish", CLIENT_KEY, "p-2")
    assert internal is not None
    assert internal.retryable is True

    # Newer event wins; an older one arriving late (a TikTok retry) does not overwrite.
    await deliver(
        settings,
        [
            delivery(
                "post.publish.publicly_available",
                {"publish_id": "p-2", "post_id": 7281234567890123456},
                create_time=300,
            )
        ],
    )
    await drain(settings)
    await deliver(
        settings,
        [delivery("post.publish.inbox_delivered", {"publish_id": "p-2"}, create_time=200)],
    )
    await drain(settings)
    latest = await get_status(redis_client, "publish", CLIENT_KEY, "p-2")
    assert latest is not None
    assert latest.status == "publicly_available"
    assert latest.post_id == "7281234567890123456"


async def test_share_and_portability_status(redis_url: str, redis_client: aioredis.Redis) -> None:
    settings = worker_settings(redis_url)
    await deliver(
        settings,
        [
            delivery("video.upload.failed", {"share_id": "video.1.s"}),
            delivery("portability.download.ready", {"request_id": 123123123123123}, open_id=None),
        ],
    )
    await drain(settings)
    share = await get_status(redis_client, "share", CLIENT_KEY, "video.1.s")
    assert share is not None
    assert share.status == "upload_failed"
    download = await get_status(redis_client, "portability", CLIENT_KEY, "123123123123123")
    assert download is not None
    assert download.status == "download_ready"
    assert download.user_openid is None
    assert await get_status(redis_client, "share", CLIENT_KEY, "nope") is None


async def test_records_are_per_app_and_older_unkeyed_records_are_still_found(
    redis_client: aioredis.Redis,
) -> None:
    mine = StatusRecord(
        kind="publish", id="p-9", status="complete", event="post.publish.complete",
        create_time=1, client_key=CLIENT_KEY,
    )  # fmt: skip
    assert await save_status(redis_client, mine)
    theirs = msgspec.structs.replace(mine, client_key="other_app", status="failed")
    assert await save_status(redis_client, theirs)
    found = await get_status(redis_client, "publish", CLIENT_KEY, "p-9")
    assert found is not None
    assert found.status == "complete"
    other = await get_status(redis_client, "publish", "other_app", "p-9")
    assert other is not None
    assert other.status == "failed"
    # Written by an earlier version, under the id alone: found for its own app only.
    legacy = msgspec.structs.replace(mine, id="p-old")
    await redis_client.hset(
        "tiktok:status:publish:p-old",
        mapping={"create_time": 1, "record": msgspec.json.encode(legacy)},
    )  # type: ignore[misc]
    assert await get_status(redis_client, "publish", CLIENT_KEY, "p-old") == legacy
    assert await get_status(redis_client, "publish", "other_app", "p-old") is None
