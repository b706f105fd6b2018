"""The internal API's view of what the worker fetched, and starting data requests."""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis

from receiver import fetched
from receiver.secrets import Secret
from receiver.settings import AppCredentials, Settings
from receiver.status_store import StatusRecord, save_status
from tests.factories import CLIENT_KEY
from tests.oauth.conftest import Tiktok
from tests.oauth.harness import ADMIN_TOKEN, RECEIVER, oauth_settings, running

POST_ID = "7678907398077074696"  # beyond 2**53: a float would turn it into ...4000


def with_second_app(settings: Settings) -> Settings:
    other = AppCredentials("other_client_key", (Secret("other-secret"),))
    return msgspec.structs.replace(settings, apps=(*settings.apps, other))


async def test_publish_and_videos_with_ids_as_strings(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    await save_status(
        redis_client,
        StatusRecord(
            kind="publish",
            id="v_inbox_file~v2.7560045831697483798",
            status="publicly_available",
            event="post.publish.publicly_available",
            create_time=1700,
            client_key=CLIENT_KEY,
            post_id=POST_ID,
        ),
    )
    await fetched.save_publish_fetch(
        redis_client,
        fetched.PublishFetch(
            client_key=CLIENT_KEY,
            publish_id="v_inbox_file~v2.7560045831697483798",
            open_id="alice",
            state="fetched",
            status="PUBLISH_COMPLETE",
            post_ids=[POST_ID],
        ),
    )
    await fetched.note_video(
        redis_client, CLIENT_KEY, POST_ID, open_id="alice", publish_id="p", public=True
    )
    await fetched.save_video_details(
        redis_client, CLIENT_KEY, POST_ID, state="fetched", details={"id": POST_ID, "view_count": 7}
    )
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        publish = await browser.admin(
            "GET", "/internal/publishes/v_inbox_file~v2.7560045831697483798"
        )
        videos = await browser.admin("GET", "/internal/users/alice/videos")
        missing = await browser.admin("GET", "/internal/publishes/nope")
    assert publish.status_code == 200
    body = publish.json()
    assert body["event"]["status"] == "publicly_available"
    assert body["fetched"]["post_ids"] == [POST_ID]
    assert f'"{POST_ID}"' in publish.text  # a JSON string, never a number
    assert videos.status_code == 200
    [video] = videos.json()["videos"]
    assert video["post_id"] == POST_ID
    assert video["details"] == {"id": POST_ID, "view_count": 7}
    assert video["public"] is True
    assert missing.status_code == 404


async def test_client_key_is_required_only_with_several_apps(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    record = StatusRecord(
        kind="share", id="s1", status="upload_failed", event="video.upload.failed",
        create_time=1, client_key=CLIENT_KEY,
    )  # fmt: skip
    await save_status(redis_client, record)
    several = with_second_app(oauth_settings(redis_url, tiktok.url))
    async with running(several) as browser:
        ambiguous = await browser.admin("GET", "/internal/status/share/s1")
        named = await browser.admin("GET", f"/internal/status/share/s1?client_key={CLIENT_KEY}")
        other = await browser.admin("GET", "/internal/status/share/s1?client_key=other_client_key")
        unknown = await browser.admin("GET", "/internal/status/share/s1?client_key=nope")
        listing = await browser.admin("GET", "/internal/users/alice/data-requests")
    assert ambiguous.status_code == 400
    assert ambiguous.json()["error"] == "client_key_required"
    assert named.status_code == 200
    assert named.json()["client_key"] == CLIENT_KEY
    assert other.status_code == 404  # the same id in another app is another record
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "unknown_app"
    assert listing.status_code == 400


async def test_start_a_data_request_and_list_it(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = oauth_settings(
        redis_url, tiktok.url, TIKTOK_SCOPES="user.info.basic,portability.all.single"
    )
    async with running(settings) as browser:
        assert (await browser.connect()).status_code == 200
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        url = f"{RECEIVER}/internal/users/alice/data-requests"
        started = await browser.http.post(
            url, json={"categories": ["video", "profile"], "format": "text"}, headers=headers
        )
        bad = await browser.http.post(url, json={"categories": ["photos"]}, headers=headers)
        empty = await browser.http.post(url, json={"categories": []}, headers=headers)
        garbage = await browser.http.post(url, content=b"{", headers=headers)
        nobody = await browser.http.post(
            f"{RECEIVER}/internal/users/nobody/data-requests",
            json={"categories": ["all_data"]},
            headers=headers,
        )
        listed = await browser.admin("GET", "/internal/users/alice/data-requests")
    assert started.status_code == 201, started.text
    record = started.json()
    assert isinstance(record["request_id"], str)
    assert record["request_id"].isdigit()
    assert (record["status"], record["data_format"]) == ("requested", "text")
    assert record["categories"] == ["video", "profile"]
    assert [c["status"] for c in await tiktok.calls("data_add")] == [200]
    for refused in (bad, empty, garbage):
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_body"
    assert nobody.status_code == 404
    assert [r["request_id"] for r in listed.json()["data_requests"]] == [record["request_id"]]
    stored = await fetched.get_data_request(redis_client, CLIENT_KEY, record["request_id"])
    assert stored is not None
    assert stored.open_id == "alice"


async def test_a_data_request_without_a_portability_scope_is_409(
    redis_url: str, tiktok: Tiktok
) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        assert (await browser.connect()).status_code == 200
        refused = await browser.http.post(
            f"{RECEIVER}/internal/users/alice/data-requests",
            json={"categories": ["all_data"]},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    assert refused.status_code == 409
    assert refused.json()["error"] == "not_permitted"
