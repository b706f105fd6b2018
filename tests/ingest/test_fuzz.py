"""Property: nothing a sender puts in the body or the signature header gives a 500."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.app import create_app
from receiver.ingest.delivery import build_body, signed_headers
from receiver.testing.servers import serve_in_thread
from tests.factories import CLIENT_KEY, CLIENT_SECRET, make_settings

ALLOWED = {200, 400, 401, 413}

header_values = st.one_of(
    # HTTP clients refuse leading/trailing white space in header values.
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300).map(
        str.strip
    ),
    st.builds(
        lambda t, s: f"t={t},s={s}",
        st.one_of(st.integers(), st.text(max_size=20).map(lambda v: v.encode().hex())),
        st.text(alphabet="0123456789abcdefABCDEFxyz", max_size=80),
    ),
    st.lists(
        st.sampled_from(["t=1", "s=", "t=", "=", ",", "s=" + "a" * 64, "t=1700000000", "x=y"]),
        max_size=10,
    ).map(",".join),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "client_key": st.one_of(st.just(CLIENT_KEY), st.text(max_size=10), st.integers()),
        "event": st.one_of(
            st.sampled_from(
                ["authorization.removed", "video.upload.failed", "post.publish.failed"]
            ),
            st.text(max_size=30),
            st.integers(),
        ),
        "create_time": st.one_of(st.integers(), st.text(max_size=5), st.floats(allow_nan=False)),
        "user_openid": st.one_of(st.none(), st.text(max_size=10), st.integers()),
        "content": st.one_of(st.text(max_size=50), json_values.map(repr), json_values),
    },
)


@pytest.fixture(scope="module")
def base_url(redis_server: object) -> Iterator[str]:
    from receiver.testing.redis_server import RedisServer

    assert isinstance(redis_server, RedisServer)
    app = create_app(make_settings(redis_server.url, WEBHOOK_MAX_BODY_BYTES="4096"))
    with serve_in_thread(app) as url:
        yield url


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=6000), header=st.one_of(st.none(), header_values))
def test_random_bodies_and_headers_never_500(
    base_url: str, body: bytes, header: str | None
) -> None:
    headers = {} if header is None else {"TikTok-Signature": header}
    response = httpx.post(f"{base_url}/webhooks/tiktok", content=body, headers=headers)
    assert response.status_code in ALLOWED
    assert response.headers["content-type"] == "application/json"
    assert CLIENT_SECRET not in response.text


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(envelope=envelopes)
def test_correctly_signed_arbitrary_envelopes_never_500(
    base_url: str, envelope: dict[str, object]
) -> None:
    import msgspec

    body = msgspec.json.encode(envelope)
    response = httpx.post(
        f"{base_url}/webhooks/tiktok", content=body, headers=signed_headers(CLIENT_SECRET, body)
    )
    assert response.status_code in ALLOWED
    if response.status_code == 401:
        assert response.json()["error"] == "unknown_app"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=json_values, event=st.text(min_size=1, max_size=40), open_id=st.text(max_size=20))
def test_valid_envelopes_with_any_content_are_200_or_400(
    base_url: str, content: object, event: str, open_id: str
) -> None:
    import msgspec

    body = build_body(
        client_key=CLIENT_KEY,
        event=event,
        content=msgspec.json.encode(content).decode(),
        user_openid=open_id,
    )
    response = httpx.post(
        f"{base_url}/webhooks/tiktok", content=body, headers=signed_headers(CLIENT_SECRET, body)
    )
    assert response.status_code in {200, 400}
