from __future__ import annotations

import msgspec
import pytest

from receiver.ingest.delivery import build_body
from receiver.ingest.events import (
    KNOWN_EVENTS,
    AuthorizationRemoved,
    MalformedEvent,
    PortabilityDownloadReady,
    PostPublishFailed,
    PostPublishNoLongerPubliclyAvailable,
    PostPublishPubliclyAvailable,
    TikTokPing,
    UnknownContent,
    VideoUploadFailed,
    decode_body,
    event_label,
)
from receiver.ingest.examples import EXAMPLE_CONTENT


def test_every_contract_event_has_an_example_and_decodes() -> None:
    assert set(EXAMPLE_CONTENT) == KNOWN_EVENTS
    for name, content in EXAMPLE_CONTENT.items():
        event = decode_body(
            build_body(client_key="k", event=name, content=content, user_openid="u")
        )
        assert event.name == name
        assert not isinstance(event.content, UnknownContent)


def test_documented_authorization_removed_payload() -> None:
    body = (
        b'{"client_key": "bwo2m45353a6k85", "event": "authorization.removed", '
        b'"create_time": 1615338610, "user_openid": "act.example12345Example12345Example", '
        b'"content": "{\\"reason\\": 1 }"}'
    )
    event = decode_body(body)
    assert event.envelope.client_key == "bwo2m45353a6k85"
    assert event.envelope.create_time == 1615338610
    assert event.content == AuthorizationRemoved(reason=1)


def test_portability_without_user_openid() -> None:
    body = (
        b'{"client_key": "developer_client_key", "event": "portability.download.ready",'
        b'"create_time": 1615338610, "content":"{\\"request_id\\":123123123123123}"}'
    )
    event = decode_body(body)
    assert event.envelope.user_openid is None
    assert event.content == PortabilityDownloadReady(request_id=123123123123123)


@pytest.mark.parametrize("post_id", ["7281234567890123456", 7281234567890123456])
def test_post_id_string_or_number(post_id: str | int) -> None:
    for name, cls in (
        ("post.publish.publicly_available", PostPublishPubliclyAvailable),
        ("post.publish.no_longer_publicaly_available", PostPublishNoLongerPubliclyAvailable),
    ):
        body = build_body(
            client_key="k", event=name, content={"publish_id": "p1", "post_id": post_id}
        )
        content = decode_body(body).content
        assert isinstance(content, cls)
        assert content.post_id == post_id


@pytest.mark.parametrize("key", ["reason", "fail_reason"])
def test_publish_failed_reason_or_fail_reason(key: str) -> None:
    body = build_body(
        client_key="k",
        event="post.publish.failed",
        content={"publish_id": "p1", key: "spam_risk", "publish_type": "DIRECT_POST"},
    )
    content = decode_body(body).content
    assert isinstance(content, PostPublishFailed)
    assert content.failure_reason == "spam_risk"


def test_ping_with_millisecond_time_and_numeric_openid() -> None:
    body = (
        b'{ "client_key": "awjzux1u41cywjgt", "event": "tiktok.ping", '
        b'"create_time": 1752894700622, "user_openid": "7528370655977505848", '
        b'"content": "{\\"reason\\":\\"testing Webhook\\"}" }'
    )
    event = decode_body(body)
    assert event.content == TikTokPing(reason="testing Webhook")


def test_unknown_event_keeps_decoded_content() -> None:
    event = decode_body(build_body(client_key="k", event="live.started", content={"x": [1, 2]}))
    assert event.content == UnknownContent({"x": [1, 2]})
    assert not event.is_known
    assert event_label(event.name) == "unknown"
    assert event_label("video.upload.failed") == "video.upload.failed"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"event": "authorization.removed"}',
        b'{"client_key": 1, "event": "x", "create_time": 1, "content": "{}"}',
        b'{"client_key": "k", "event": "x", "create_time": "soon", "content": "{}"}',
        b'{"client_key": "k", "event": "x", "create_time": 1, "content": {"reason": 1}}',
        b'{"client_key": "k", "event": "x", "create_time": 1, "content": "{not json"}',
        b'{"client_key": "k", "event": "video.upload.failed", "create_time": 1, "content": "{}"}',
        b"\xff\xfe\x00",
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        decode_body(body)


def test_dedupe_key_survives_reserialization() -> None:
    original = build_body(
        client_key="k",
        event="video.upload.failed",
        content={"share_id": "video.1.a"},
        user_openid="u",
        create_time=1,
    )
    reserialized = (
        b'{ "user_openid" : "u", "content": "{ \\"share_id\\" : \\"video.1.a\\" }",'
        b' "create_time": 1, "event": "video.upload.failed", "client_key": "k" }'
    )
    first, second = decode_body(original), decode_body(reserialized)
    assert first.content == second.content == VideoUploadFailed("video.1.a")
    assert first.dedupe_key == second.dedupe_key


def test_dedupe_key_differs_for_different_events() -> None:
    base = {"client_key": "k", "event": "post.publish.complete", "user_openid": "u"}
    keys = set()
    for create_time, publish_id, open_id in [
        (1, "p", "u"),
        (2, "p", "u"),
        (1, "q", "u"),
        (1, "p", "v"),
    ]:
        body = msgspec.json.encode(
            {
                **base,
                "user_openid": open_id,
                "create_time": create_time,
                "content": msgspec.json.encode({"publish_id": publish_id}).decode(),
            }
        )
        keys.add(decode_body(body).dedupe_key)
    assert len(keys) == 4
