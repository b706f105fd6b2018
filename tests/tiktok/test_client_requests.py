"""TikTokClient sends exactly what the contract documents and parses TikTok's answers."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client import REGISTRY

from receiver.secrets import Secret
from receiver.tiktok.client import TikTokClient
from receiver.tiktok.user_fields import fields_for_scopes
from tests.tiktok.conftest import ACCESS, CLIENT_KEY, CLIENT_SECRET, CODE, REFRESH, client_settings
from tests.tiktok.scripted_tiktok import Reply, ScriptedTikTok

TOKEN_BODY = {
    "access_token": ACCESS,
    "expires_in": 86400,
    "open_id": "afd97af1-b87b-48b9-ac98-410aghda5344",
    "refresh_expires_in": 31536000,
    "refresh_token": REFRESH,
    "scope": "user.info.basic,video.list",
    "token_type": "Bearer",
}


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_exchange_code_posts_the_documented_form(
    client: TikTokClient, fake: ScriptedTikTok
) -> None:
    fake.queue("/v2/oauth/token/", Reply(json=TOKEN_BODY))
    grant = await client.exchange_code(CODE, redirect_uri="https://example.com/cb")

    seen = fake.seen[0]
    assert (seen.method, seen.path) == ("POST", "/v2/oauth/token/")
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.headers["cache-control"] == "no-cache"
    assert "authorization" not in seen.headers
    assert seen.form == {
        "client_key": CLIENT_KEY,
        "client_secret": CLIENT_SECRET,  # the newest of the configured secrets
        "code": CODE,
        "grant_type": "authorization_code",
        "redirect_uri": "https://example.com/cb",
    }
    assert grant.open_id == "afd97af1-b87b-48b9-ac98-410aghda5344"
    assert grant.scope == ("user.info.basic", "video.list")
    assert grant.access_token == Secret(ACCESS)
    assert grant.refresh_token == Secret(REFRESH)
    assert (grant.expires_in, grant.refresh_expires_in) == (86400, 31536000)
    assert grant.token_type == "Bearer"


async def test_exchange_code_sends_the_pkce_verifier_when_given(
    client: TikTokClient, fake: ScriptedTikTok
) -> None:
    fake.queue("/v2/oauth/token/", Reply(json=TOKEN_BODY))
    await client.exchange_code(CODE, redirect_uri="https://e.com/cb", code_verifier="v" * 50)
    assert fake.seen[0].form["code_verifier"] == "v" * 50


async def test_refresh_posts_the_documented_form(
    client: TikTokClient, fake: ScriptedTikTok
) -> None:
    fake.queue("/v2/oauth/token/", Reply(json={**TOKEN_BODY, "refresh_token": "rft.NEW"}))
    grant = await client.refresh(Secret(REFRESH))
    seen = fake.seen[0]
    assert seen.headers["cache-control"] == "no-cache"
    assert seen.form == {
        "client_key": CLIENT_KEY,
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
    }
    assert grant.refresh_token == Secret("rft.NEW")


async def test_revoke_posts_the_token_and_accepts_an_empty_body(
    client: TikTokClient, fake: ScriptedTikTok
) -> None:
    fake.queue("/v2/oauth/revoke/", Reply(body=b""))
    await client.revoke(Secret(ACCESS))
    seen = fake.seen[0]
    assert (seen.method, seen.path) == ("POST", "/v2/oauth/revoke/")
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.form == {"client_key": CLIENT_KEY, "client_secret": CLIENT_SECRET, "token": ACCESS}


async def test_revoke_accepts_a_json_body_without_error(
    client: TikTokClient, fake: ScriptedTikTok
) -> None:
    fake.queue("/v2/oauth/revoke/", Reply(json={"error": "", "log_id": "x"}))
    await client.revoke(Secret(ACCESS))


@pytest.mark.parametrize("ok_code", ["ok", 0])
async def test_user_info_gets_fields_with_a_bearer_token(
    client: TikTokClient, fake: ScriptedTikTok, ok_code: object
) -> None:
    user = {"open_id": "u1", "display_name": "Ann", "follower_count": 3}
    fake.queue(
        "/v2/user/info/",
        Reply(
            json={"data": {"user": user}, "error": {"code": ok_code, "message": "", "log_id": "L"}}
        ),
    )
    assert await client.user_info(Secret(ACCESS), ["open_id", "display_name"]) == user
    seen = fake.seen[0]
    assert (seen.method, seen.path) == ("GET", "/v2/user/info/")
    assert seen.query == {"fields": "open_id,display_name"}
    assert seen.headers["authorization"] == f"Bearer {ACCESS}"
    assert seen.form == {}


async def test_user_info_needs_fields(client: TikTokClient) -> None:
    with pytest.raises(ValueError, match="at least one field"):
        await client.user_info(Secret(ACCESS), [])


async def test_successful_calls_are_counted(client: TikTokClient, fake: ScriptedTikTok) -> None:
    before = _sample("tiktok_api_requests_total", endpoint="token", status_class="2xx")
    count_before = _sample("tiktok_api_request_duration_seconds_count", endpoint="token")
    fake.queue("/v2/oauth/token/", Reply(json=TOKEN_BODY))
    await client.refresh(Secret(REFRESH))
    assert _sample("tiktok_api_requests_total", endpoint="token", status_class="2xx") == before + 1
    assert (
        _sample("tiktok_api_request_duration_seconds_count", endpoint="token") == count_before + 1
    )


def test_authorize_url_carries_the_documented_parameters(client: TikTokClient) -> None:
    url = client.authorize_url(state="st-1", redirect_uri="https://example.com/oauth/cb")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://www.tiktok.com/v2/auth/authorize/"
    )
    assert "scope=user.info.basic,user.info.profile" in parts.query  # commas left readable
    assert parse_qs(parts.query) == {
        "client_key": [CLIENT_KEY],
        "scope": ["user.info.basic,user.info.profile"],
        "response_type": ["code"],
        "redirect_uri": ["https://example.com/oauth/cb"],
        "state": ["st-1"],
    }
    assert CLIENT_SECRET not in url


def test_authorize_url_with_pkce_and_explicit_scopes(client: TikTokClient) -> None:
    url = client.authorize_url(
        state="s", redirect_uri="https://e.com/cb", scopes=["user.info.stats"], code_challenge="ch"
    )
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["user.info.stats"]
    assert query["code_challenge"] == ["ch"]
    assert query["code_challenge_method"] == ["S256"]


def test_fields_for_scopes_follows_the_contract_table() -> None:
    assert fields_for_scopes(["user.info.basic"]) == [
        "open_id",
        "union_id",
        "avatar_url",
        "avatar_url_100",
        "avatar_large_url",
        "display_name",
    ]
    both = fields_for_scopes(["user.info.stats", "user.info.profile", "video.list"])
    assert both == [
        "bio_description",
        "profile_deep_link",
        "is_verified",
        "username",
        "follower_count",
        "following_count",
        "likes_count",
        "video_count",
    ]
    assert "profile_web_link" not in fields_for_scopes(["user.info.profile"])
    assert fields_for_scopes([]) == []


def test_fields_for_scopes_accepts_opt_in_fields() -> None:
    fields = fields_for_scopes(
        ["user.info.profile"], extra={"user.info.profile": ["profile_web_link"]}
    )
    assert fields[-1] == "profile_web_link"
    assert fields_for_scopes(["user.info.basic"], extra={"user.info.profile": ["x"]})[-1] == (
        "display_name"
    )


async def test_before_request_hook_runs_before_every_call(
    scripted_server: tuple[ScriptedTikTok, str], fake: ScriptedTikTok
) -> None:
    called: list[str] = []

    async def hook(endpoint: str) -> None:
        called.append(endpoint)
        if endpoint == "revoke":
            raise RuntimeError("over budget")

    fake.queue("/v2/oauth/token/", Reply(json=TOKEN_BODY))
    fake.queue(
        "/v2/user/info/", Reply(json={"data": {"user": {"open_id": "u"}}, "error": {"code": "ok"}})
    )
    settings = client_settings(scripted_server[1])
    async with TikTokClient(settings, before_request=hook) as hooked:
        await hooked.refresh(Secret(REFRESH))
        with pytest.raises(RuntimeError, match="over budget"):
            await hooked.revoke(Secret(ACCESS))
        await hooked.user_info(Secret(ACCESS), ["open_id"])
    assert called == ["token", "revoke", "user_info"]
    assert [seen.path for seen in fake.seen] == ["/v2/oauth/token/", "/v2/user/info/"]
