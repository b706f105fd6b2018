"""The sandbox's Content Posting, Display and Data Portability endpoints."""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

import httpx

from tests.tiktok_sandbox.harness import ALICE, CLIENT_KEY, SandboxClient

POSTING = "user.info.basic,video.upload,video.list"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_for_events(sandbox: SandboxClient, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while len(events := sandbox.events()) < count:
        assert time.monotonic() < deadline, events
        time.sleep(0.05)
    return events


def status_fetch(sandbox: SandboxClient, token: str, publish_id: str) -> httpx.Response:
    return sandbox.http.post(
        "/v2/post/publish/status/fetch/", json={"publish_id": publish_id}, headers=bearer(token)
    )


def test_a_new_user_gets_an_open_id_of_tiktoks_real_shape(sandbox: SandboxClient) -> None:
    user = sandbox.admin("POST", "users", {"display_name": "New"}).json()
    assert len(user["open_id"]) == 36
    assert user["open_id"].startswith("-000")


def test_an_inbox_publish_moves_through_its_states_with_its_webhooks(
    sandbox: SandboxClient,
) -> None:
    token = sandbox.login(scope=POSTING)["access_token"]
    publish = sandbox.admin(
        "POST", "publishes", {"open_id": ALICE, "client_key": CLIENT_KEY}
    ).json()
    publish_id = publish["publish_id"]
    assert publish_id.startswith("v_inbox_file~v2.")
    first = status_fetch(sandbox, token, publish_id).json()
    assert first["data"]["status"] == "PROCESSING_UPLOAD"
    assert first["error"]["code"] == "ok"
    sandbox.advance(3)
    events = wait_for_events(sandbox, 3)
    assert [e["event"] for e in events] == [
        "post.publish.inbox_delivered",
        "post.publish.complete",
        "post.publish.publicly_available",
    ]
    public = json.loads(events[-1]["content"])
    post_id = public["post_id"]
    assert isinstance(post_id, int)
    assert len(str(post_id)) == 19
    answer = status_fetch(sandbox, token, publish_id)
    assert f"[{post_id}]" in answer.text  # a bare 19-digit JSON number, as TikTok sends it
    assert answer.json()["data"]["status"] == "PUBLISH_COMPLETE"

    query = sandbox.http.post(
        "/v2/video/query/?fields=id,title,view_count",
        json={"filters": {"video_ids": [str(post_id), "7000000000000000000"]}},
        headers=bearer(token),
    )
    assert query.json()["data"]["videos"] == [
        {"id": str(post_id), "title": "Sandbox video", "view_count": 1234}
    ]
    listed = sandbox.http.post(
        "/v2/video/list/?fields=id", json={"max_count": 20}, headers=bearer(token)
    ).json()["data"]
    assert listed["videos"] == [{"id": str(post_id)}]
    assert listed["has_more"] is False

    assert sandbox.admin("POST", f"publishes/{publish_id}/make-private").status_code == 200
    hidden = sandbox.http.post(
        "/v2/video/query/?fields=id",
        json={"filters": {"video_ids": [str(post_id)]}},
        headers=bearer(token),
    )
    assert hidden.status_code == 200
    assert hidden.json()["data"]["videos"] == []
    assert wait_for_events(sandbox, 4)[-1]["event"] == "post.publish.no_longer_publicaly_available"


def test_status_fetch_errors_and_its_per_token_limit(sandbox: SandboxClient) -> None:
    plain = sandbox.login()["access_token"]
    token = sandbox.login(scope=POSTING)["access_token"]
    publish_id = sandbox.admin(
        "POST", "publishes", {"open_id": ALICE, "client_key": CLIENT_KEY}
    ).json()["publish_id"]
    assert status_fetch(sandbox, plain, publish_id).json()["error"]["code"] == (
        "scope_not_authorized"
    )
    unknown = status_fetch(sandbox, token, "v_pub_file~v2.1")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "invalid_publish_id"
    bad = sandbox.http.post("/v2/post/publish/status/fetch/", headers=bearer("act.nope"))
    assert bad.status_code == 401
    assert bad.json()["error"]["message"] == (
        "The access token is invalid or not found in the request."
    )
    statuses = [status_fetch(sandbox, token, publish_id).status_code for _ in range(30)]
    assert statuses == [200] * 29 + [429]  # 30 a minute per token: one was used above
    other = sandbox.login(scope=POSTING)["access_token"]  # another token of the same user
    assert status_fetch(sandbox, other, publish_id).status_code == 200
    sandbox.advance(61)
    assert status_fetch(sandbox, token, publish_id).status_code == 200


def test_a_data_request_from_add_to_a_real_zip(sandbox: SandboxClient) -> None:
    token = sandbox.login(scope="user.info.basic,portability.activity.single")["access_token"]
    refused = sandbox.http.post(
        "/v2/user/data/add/?fields=request_id",
        json={"data_format": "json", "category_selection_list": ["video"]},
        headers=bearer(token),
    )
    assert refused.json()["error"]["code"] == "scope_not_authorized"
    added = sandbox.http.post(
        "/v2/user/data/add/?fields=request_id",
        json={"data_format": "json", "category_selection_list": ["activity"]},
        headers=bearer(token),
    ).json()
    request_id = added["data"]["request_id"]
    assert isinstance(request_id, int)
    body = {"request_id": request_id}
    early = sandbox.http.post("/v2/user/data/download/", json=body, headers=bearer(token))
    assert early.status_code == 400
    assert early.json()["error"]["http_status_code"] == 400
    check = "/v2/user/data/check/?fields=request_id,status"
    pending = sandbox.http.post(check, json=body, headers=bearer(token)).json()["data"]
    assert pending == {"request_id": request_id, "status": "pending"}
    sandbox.advance(2)
    [ready] = wait_for_events(sandbox, 1)
    assert ready["event"] == "portability.download.ready"
    assert ready["user_openid"] is None  # as in TikTok's example
    assert json.loads(ready["content"]) == {"request_id": request_id}
    assert (
        sandbox.http.post(check, json=body, headers=bearer(token)).json()["data"]["status"]
        == "downloading"
    )
    archive = sandbox.http.post("/v2/user/data/download/", json=body, headers=bearer(token))
    assert archive.status_code == 200
    assert archive.content[:4] == b"PK\x03\x04"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert json.loads(opened.read("user_data.json"))["categories"] == ["activity"]
    cancelled = sandbox.http.post("/v2/user/data/cancel/", json=body, headers=bearer(token))
    assert "data" not in cancelled.json()
    assert cancelled.json()["error"]["code"] == "ok"
    gone = sandbox.http.post("/v2/user/data/download/", json=body, headers=bearer(token))
    assert gone.json()["error"]["message"] == "The data request is cancelled."
    wrong = sandbox.http.post(
        "/v2/user/data/check/?fields=status", json={"request_id": 1}, headers=bearer(token)
    )
    assert (
        wrong.json()["error"]["message"] == "Incorrect `request_id`. Please validate the request."
    )


def test_faults_reach_the_new_endpoints(sandbox: SandboxClient) -> None:
    token = sandbox.login(scope=POSTING)["access_token"]
    sandbox.fault(endpoint="video_query", status=503)
    failed = sandbox.http.post(
        "/v2/video/query/?fields=id",
        json={"filters": {"video_ids": ["1"]}},
        headers=bearer(token),
    )
    assert failed.status_code == 503
    assert failed.json()["error"]["code"] == "internal_error"
    assert [c["fault"] for c in sandbox.calls(endpoint="video_query")] == ["error"]
