"""The follow-up calls against a scripted TikTok: exact ids, tolerant parsing, streamed
archives told from JSON errors by their first bytes, and the redirect-URI mismatch."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from receiver.secrets import Secret
from receiver.tiktok.client import TikTokClient
from receiver.tiktok.errors import (
    AccessTokenInvalid,
    InvalidGrant,
    RedirectUriMismatch,
    RequestRejected,
    TransientError,
)
from receiver.tiktok.portability import ArchiveTooLarge, cancel_data_request, download_archive
from receiver.tiktok.posting import fetch_publish_status, post_ids_of
from receiver.tiktok.videos import query_videos
from tests.tiktok.conftest import ACCESS, CODE
from tests.tiktok.scripted_tiktok import Reply, ScriptedTikTok

TOKEN = "/v2/oauth/token/"
STATUS = "/v2/post/publish/status/fetch/"
QUERY = "/v2/video/query/"
DOWNLOAD = "/v2/user/data/download/"
CANCEL = "/v2/user/data/cancel/"
POST_ID = 7678907398077074696  # JavaScript would make it ...4000
OK = {"code": "ok", "message": "", "log_id": "LOG-1"}


def a_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("user_data.json", "{}")
    return buffer.getvalue()


async def test_redirect_mismatch_as_tiktok_really_sends_it(
    client: TikTokClient, fake: ScriptedTikTok
) -> None:
    description = "Redirect_uri is not matched with the uri when requesting code."
    body = {"error": "invalid_request", "error_description": description, "log_id": "L"}
    fake.queue(TOKEN, Reply(200, body))
    with pytest.raises(RedirectUriMismatch) as excinfo:
        await client.exchange_code(CODE, redirect_uri="https://e.com/cb")
    assert isinstance(excinfo.value, InvalidGrant)
    assert "TIKTOK_REDIRECT_URI" in excinfo.value.hint
    fake.queue(TOKEN, Reply(400, {**body, "error_description": "Client secret is missed."}))
    with pytest.raises(RequestRejected):
        await client.exchange_code(CODE, redirect_uri="https://e.com/cb")


async def test_publish_status_keeps_the_19_digit_post_id_exact(
    client: TikTokClient, fake: ScriptedTikTok
) -> None:
    data = {
        "status": "PUBLISH_COMPLETE",
        "publicaly_available_post_id": [POST_ID],
        "uploaded_bytes": 10000,
    }
    fake.queue(STATUS, Reply(200, {"data": data, "error": OK}))
    status = await fetch_publish_status(client, Secret(ACCESS), "v_pub_file~v2.1")
    assert status.post_ids == (str(POST_ID),)
    assert status.uploaded_bytes == 10000
    [seen] = fake.seen[-1:]
    assert seen.headers["authorization"] == f"Bearer {ACCESS}"
    assert seen.headers["content-type"].startswith("application/json")


def test_post_ids_in_every_spelling_never_from_a_float() -> None:
    assert post_ids_of({"publicly_available_post_id": ["7000000000000000001"]}) == (
        "7000000000000000001",
    )
    assert post_ids_of({"publically_available_post_id": 7000000000000000002}) == (
        "7000000000000000002",
    )
    assert post_ids_of({"publicaly_available_post_id": [7.678907398077074e18, True, "x"]}) == ()


async def test_an_error_without_data_is_still_an_error(
    client: TikTokClient, fake: ScriptedTikTok
) -> None:
    # Captured TikTok errors sometimes have no `data` key at all.
    error = {
        "code": "access_token_invalid",
        "message": "The access token is invalid or not found in the request.",
        "log_id": "L2",
    }
    fake.queue(STATUS, Reply(401, {"error": error}))
    with pytest.raises(AccessTokenInvalid) as excinfo:
        await fetch_publish_status(client, Secret(ACCESS), "p")
    assert excinfo.value.log_id == "L2"
    fake.queue(STATUS, Reply(400, {"error": {"code": "invalid_publish_id", "message": "no"}}))
    with pytest.raises(RequestRejected):
        await fetch_publish_status(client, Secret(ACCESS), "p")
    fake.queue(CANCEL, Reply(200, {"error": OK}))  # cancel's success has no data
    await cancel_data_request(client, Secret(ACCESS), "123451234512345")
    assert fake.seen[-1].query == {"request_id": "123451234512345"}


async def test_an_empty_video_answer_is_an_empty_list(
    client: TikTokClient, fake: ScriptedTikTok
) -> None:
    fake.queue(QUERY, Reply(200, {"data": {"videos": []}, "error": OK}))
    assert await query_videos(client, Secret(ACCESS), [str(POST_ID)]) == []
    fake.queue(
        QUERY, Reply(200, {"data": {"videos": [{"id": POST_ID, "view_count": 5}]}, "error": OK})
    )
    [video] = await query_videos(client, Secret(ACCESS), [str(POST_ID)])
    assert video == {"id": str(POST_ID), "view_count": 5}


async def test_download_streams_to_disk_and_tells_zip_from_json(
    client: TikTokClient, fake: ScriptedTikTok, tmp_path: Path
) -> None:
    archive = a_zip()
    fake.queue(DOWNLOAD, Reply(200, body=archive))
    kept = await download_archive(
        client, Secret(ACCESS), "123", directory=str(tmp_path), name="a", max_bytes=10**6
    )
    with open(kept.path, "rb") as kept_file:  # noqa: ASYNC230 - a test's one small read
        assert kept_file.read() == archive
    assert kept.size == len(archive)

    error = {
        "code": "invalid_params",
        "http_status_code": 400,
        "log_id": "L3",
        "message": "Incorrect `request_id`. Please validate the request.",
    }
    # A JSON error, even with HTTP 200, is told apart by its first byte.
    fake.queue(DOWNLOAD, Reply(200, {"data": {}, "error": error}))
    with pytest.raises(RequestRejected) as excinfo:
        await download_archive(
            client, Secret(ACCESS), "123", directory=str(tmp_path), name="b", max_bytes=10**6
        )
    assert excinfo.value.code == "invalid_params"
    fake.queue(DOWNLOAD, Reply(200, body=b"<html>proxy error</html>"))
    with pytest.raises(TransientError):
        await download_archive(
            client, Secret(ACCESS), "123", directory=str(tmp_path), name="c", max_bytes=10**6
        )
    fake.queue(DOWNLOAD, Reply(200, body=archive[:-30]))  # cut short
    with pytest.raises(TransientError):
        await download_archive(
            client, Secret(ACCESS), "123", directory=str(tmp_path), name="d", max_bytes=10**6
        )
    fake.queue(DOWNLOAD, Reply(200, body=archive))
    with pytest.raises(ArchiveTooLarge):
        await download_archive(
            client, Secret(ACCESS), "123", directory=str(tmp_path), name="e", max_bytes=50
        )
    assert sorted(os.listdir(tmp_path)) == ["a.zip"]  # no partial files left behind
