"""The built-in follow-up handlers against the sandbox over real HTTP: publish status,
video details, data archives, the per-token limit, and turning handlers off."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from handlers.worker import create_worker
from receiver import fetched
from receiver.settings import ConfigError, Settings
from receiver.tiktok.client import TikTokClient
from receiver.tiktok.portability import add_data_request
from tests.factories import CLIENT_KEY, delivery
from tests.handlers.conftest import Tiktok
from tests.handlers.test_tiktok_jobs import settings_for
from tests.worker_support import deliver, drain, worker_running

OPEN_ID = "-000NAdxlHusXRGvLc05cl15y3jnkJg4utC5"  # the shape of real open_ids
POSTING = "user.info.basic,video.upload,video.list"


async def wait_until(what: str, check: Any, limit: float = 30.0) -> Any:
    deadline = time.monotonic() + limit
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def published(tiktok: Tiktok, **spec: Any) -> dict[str, Any]:
    """A sandbox publish of OPEN_ID run to its end (steps take no sandbox time)."""
    await tiktok.call("PUT", "/sandbox/settings", json={"publish_step_seconds": 0})
    publish = await tiktok.call("POST", "/sandbox/publishes", json={"open_id": OPEN_ID, **spec})
    path = f"/sandbox/publishes/{publish['publish_id']}"

    async def finished() -> dict[str, Any] | None:
        shown: dict[str, Any] = await tiktok.call("GET", path)
        done = (
            shown["post_ids"] or shown["status"] in ("FAILED",) or spec.get("outcome") == "private"
        )
        return shown if done and shown["status"] != "PROCESSING_UPLOAD" else None

    result: dict[str, Any] = await wait_until("the publish to finish", finished)
    return result


async def connected(settings: Settings, redis: aioredis.Redis, tiktok: Tiktok, scopes: str) -> None:
    await tiktok.add_user(OPEN_ID, display_name="Real Shape")
    await tiktok.connect(settings, tiktok.vault(settings, redis), OPEN_ID, scopes)


def public_event(publish: dict[str, Any], post_id: int | str, create_time: int) -> Any:
    content = {
        "publish_id": publish["publish_id"],
        "post_id": post_id,
        "publish_type": "INBOX_SHARE",
    }
    return delivery(
        "post.publish.publicly_available", content, open_id=OPEN_ID, create_time=create_time
    )


async def test_publish_status_and_public_video_are_fetched_and_kept(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = settings_for(redis_url, tiktok.base_url)
    await connected(settings, redis_client, tiktok, POSTING)
    publish = await published(tiktok)
    post_id = publish["post_ids"][0]
    assert len(post_id) == 19
    # TikTok sends the post id as a bare 19-digit JSON number: it must stay exact.
    await deliver(settings, [public_event(publish, int(post_id), 1_700_000_100)])
    await drain(settings)

    status = await fetched.get_publish_fetch(redis_client, CLIENT_KEY, publish["publish_id"])
    assert status is not None
    assert status.state == "fetched"
    assert status.status == "PUBLISH_COMPLETE"
    assert status.post_ids == [post_id]
    assert status.uploaded_bytes == 10_000_000
    video = await fetched.get_video(redis_client, CLIENT_KEY, post_id)
    assert video is not None
    assert video.public is True
    assert video.visible is True
    assert video.details is not None
    assert video.details["id"] == post_id
    assert video.details["view_count"] == 1234
    assert [v.post_id for v in await fetched.list_videos(redis_client, CLIENT_KEY, OPEN_ID)] == [
        post_id
    ]

    # The creator hides it: the event marks it not public; a later query finds nothing,
    # and the stored counts stay (an empty answer is "not visible", not zero views).
    await tiktok.call("POST", f"/sandbox/publishes/{publish['publish_id']}/make-private")
    hidden = {"publish_id": publish["publish_id"], "post_id": post_id}
    await deliver(
        settings,
        [
            delivery(
                "post.publish.no_longer_publicaly_available",
                hidden,
                open_id=OPEN_ID,
                create_time=1_700_000_200,
            ),
            # A late retry of the older "public" event must not make it public again...
            public_event(publish, post_id, 1_700_000_150),
        ],
    )
    await drain(settings)
    video = await fetched.get_video(redis_client, CLIENT_KEY, post_id)
    assert video is not None
    assert video.public is False
    assert video.state == "not_visible"  # ...though its query ran, and found nothing
    assert video.visible is False
    assert video.details is not None
    assert video.details["view_count"] == 1234


async def test_a_failed_publish_keeps_tiktoks_reason_and_retry_flag(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = settings_for(redis_url, tiktok.base_url)
    await connected(settings, redis_client, tiktok, POSTING)
    publish = await published(tiktok, outcome="failed", fail_reason="video_pull_failed")
    content = {"publish_id": publish["publish_id"], "reason": "video_pull_failed"}
    await deliver(settings, [delivery("post.publish.failed", content, open_id=OPEN_ID)])
    await drain(settings)
    status = await fetched.get_publish_fetch(redis_client, CLIENT_KEY, publish["publish_id"])
    assert status is not None
    assert (status.status, status.fail_reason, status.retryable) == (
        "FAILED",
        "video_pull_failed",
        True,
    )


async def test_without_the_scope_it_is_not_permitted_and_not_retried(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = settings_for(redis_url, tiktok.base_url)
    await connected(settings, redis_client, tiktok, "user.info.basic")
    publish = await tiktok.call("POST", "/sandbox/publishes", json={"open_id": OPEN_ID})
    await deliver(
        settings,
        [
            delivery(
                "post.publish.complete", {"publish_id": publish["publish_id"]}, open_id=OPEN_ID
            ),
            public_event(publish, "7000000000000000001", 1_700_000_100),
        ],
    )
    outcomes = await drain(settings)
    assert all(o.ok for o in outcomes)
    status = await fetched.get_publish_fetch(redis_client, CLIENT_KEY, publish["publish_id"])
    assert status is not None
    assert status.state == "not_permitted"
    video = await fetched.get_video(redis_client, CLIENT_KEY, "7000000000000000001")
    assert video is not None
    assert video.state == "not_permitted"
    assert await tiktok.calls("publish_status") == []
    assert await tiktok.calls("video_query") == []


async def test_a_burst_for_one_user_queues_at_thirty_a_minute_without_any_429(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = settings_for(redis_url, tiktok.base_url)
    await connected(settings, redis_client, tiktok, POSTING)
    publish = await tiktok.call("POST", "/sandbox/publishes", json={"open_id": OPEN_ID})
    events = [
        delivery(
            "post.publish.inbox_delivered",
            {"publish_id": publish["publish_id"]},
            open_id=OPEN_ID,
            create_time=1_700_000_000 + n,
        )
        for n in range(36)
    ]
    await deliver(settings, events)

    async def queued_for_later() -> int:
        now_ms = time.time() * 1000
        return int(await redis_client.zcount(settings.queue_name, now_ms + 1000, "+inf"))

    async with worker_running(settings):
        await wait_until("30 fetches", lambda: _count(tiktok, "publish_status", 30))
        # Every job has run once: 30 fetched, the other 6 re-queued for later.
        await wait_until("6 deferred fetches", lambda: _equals(queued_for_later, 6))
    calls = await tiktok.calls("publish_status")
    assert len(calls) == 30
    assert all(c["status"] == 200 for c in calls)  # never a 429 from TikTok
    assert await queued_for_later() == 6


async def _equals(read: Any, wanted: int) -> bool:
    return bool(await read() == wanted)


async def _count(tiktok: Tiktok, endpoint: str, wanted: int) -> bool:
    return len(await tiktok.calls(endpoint)) >= wanted


async def started_request(
    settings: Settings, redis: aioredis.Redis, tiktok: Tiktok, *, categories: list[str]
) -> str:
    await connected(settings, redis, tiktok, "user.info.basic,portability.all.single")
    vault = tiktok.vault(settings, redis)
    async with TikTokClient(settings) as client:
        token = await vault.get_valid_access_token(OPEN_ID)
        request_id = await add_data_request(client, token, categories, "json")
    await fetched.save_data_request(
        redis,
        fetched.DataRequest(
            client_key=CLIENT_KEY,
            request_id=request_id,
            open_id=OPEN_ID,
            categories=categories,
            data_format="json",
            status="requested",
            requested_at=time.time(),
        ),
    )
    return request_id


def ready_event(request_id: str) -> Any:
    # TikTok's example of this event has no user_openid, and a bare int64 request_id.
    return delivery("portability.download.ready", {"request_id": int(request_id)}, open_id=None)


async def test_a_ready_data_request_is_downloaded_verified_and_kept(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok, tmp_path: Path
) -> None:
    settings = settings_for(redis_url, tiktok.base_url, PORTABILITY_DIR=str(tmp_path))
    request_id = await started_request(settings, redis_client, tiktok, categories=["profile"])
    assert len(request_id) == 15
    await deliver(settings, [ready_event(request_id)])
    await tiktok.call("POST", "/sandbox/clock/advance", json={"seconds": 5})
    await drain(settings)
    record = await fetched.get_data_request(redis_client, CLIENT_KEY, request_id)
    assert record is not None
    assert record.status == "downloaded", record
    assert record.path == str(tmp_path / f"{CLIENT_KEY}-{request_id}.zip")
    data = await asyncio.to_thread(Path(record.path).read_bytes)
    assert record.size == len(data)
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(record.path) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["user_data.json"]
        assert OPEN_ID.encode() in archive.read("user_data.json")
    assert sorted(os.listdir(tmp_path)) == [f"{CLIENT_KEY}-{request_id}.zip"]  # no temp file


async def test_an_archive_over_the_cap_is_refused_and_nothing_is_left(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok, tmp_path: Path
) -> None:
    settings = settings_for(
        redis_url, tiktok.base_url, PORTABILITY_DIR=str(tmp_path), PORTABILITY_MAX_BYTES="100000"
    )
    await tiktok.call("PUT", "/sandbox/settings", json={"data_archive_padding_bytes": 300_000})
    request_id = await started_request(settings, redis_client, tiktok, categories=["all_data"])
    await tiktok.call("POST", "/sandbox/clock/advance", json={"seconds": 5})
    await deliver(settings, [ready_event(request_id)])
    outcomes = await drain(settings)
    assert all(o.ok for o in outcomes)
    record = await fetched.get_data_request(redis_client, CLIENT_KEY, request_id)
    assert record is not None
    assert record.status == "too_large"
    assert record.path is None
    assert os.listdir(tmp_path) == []


async def test_an_expired_request_is_a_state_not_an_error(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok, tmp_path: Path
) -> None:
    settings = settings_for(redis_url, tiktok.base_url, PORTABILITY_DIR=str(tmp_path))
    request_id = await started_request(settings, redis_client, tiktok, categories=["video"])
    await tiktok.call("POST", f"/sandbox/data-requests/{request_id}/expire")
    await deliver(settings, [ready_event(request_id)])
    await drain(settings)
    record = await fetched.get_data_request(redis_client, CLIENT_KEY, request_id)
    assert record is not None
    assert record.status == "expired"
    assert await tiktok.calls("data_download") == []


async def test_an_unknown_request_id_is_skipped(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = settings_for(redis_url, tiktok.base_url)
    await deliver(settings, [ready_event("123123123123123")])
    outcomes = await drain(settings)
    download = [o for o in outcomes if o.handler == "builtin.download_data"]
    assert [o.result for o in download] == [{"skipped": "unknown request_id"}]


async def test_built_in_handlers_can_be_turned_off(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = settings_for(
        redis_url,
        tiktok.base_url,
        WORKER_DISABLED_HANDLERS="builtin.fetch_publish_status,builtin.fetch_video",
    )
    await connected(settings, redis_client, tiktok, POSTING)
    publish = await tiktok.call("POST", "/sandbox/publishes", json={"open_id": OPEN_ID})
    await deliver(settings, [public_event(publish, "7000000000000000002", 1_700_000_100)])
    outcomes = await drain(settings)
    assert {o.handler for o in outcomes} >= {"builtin.record_status"}
    assert not {o.handler for o in outcomes} & {
        "builtin.fetch_publish_status",
        "builtin.fetch_video",
    }
    assert await fetched.get_video(redis_client, CLIENT_KEY, "7000000000000000002") is None
    bad = settings_for(redis_url, tiktok.base_url, WORKER_DISABLED_HANDLERS="builtin.nope")
    with pytest.raises(ConfigError, match=r"builtin\.nope"):
        create_worker(bad, burst=True, handle_signals=False, with_crons=False)
