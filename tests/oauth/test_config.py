"""The OAuth routes and the internal API exist only when fully configured."""

from __future__ import annotations

import pytest

from receiver.app import create_app
from receiver.settings import ConfigError
from tests.factories import delivery, make_settings
from tests.oauth.harness import ENCRYPTION_KEY, RECEIVER, oauth_settings, running


async def test_without_redirect_uri_the_routes_are_404_and_webhooks_work(redis_url: str) -> None:
    async with running(make_settings(redis_url)) as browser:
        for path in ("/oauth/tiktok/start", "/oauth/tiktok/callback?code=x&state=y"):
            assert (await browser.http.get(f"{RECEIVER}{path}")).status_code == 404
        assert (await browser.admin("GET", "/internal/users/alice")).status_code == 404
        body, headers = delivery()
        response = await browser.http.post(f"{RECEIVER}/webhooks/tiktok", content=body,
                                           headers=headers)  # fmt: skip
        assert response.json() == {"status": "accepted"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TOKEN_ENCRYPTION_KEYS": "", "ADMIN_TOKEN": ""}, "TOKEN_ENCRYPTION_KEYS is not set"),
        ({"TOKEN_ENCRYPTION_KEYS": "too-short"}, "TOKEN_ENCRYPTION_KEYS entry #1 is not 32"),
        ({"ADMIN_TOKEN": "short"}, "ADMIN_TOKEN is shorter than 32"),
        (
            {"TIKTOK_REDIRECT_URI": "", "TOKEN_ENCRYPTION_KEYS": ""},
            "ADMIN_TOKEN turns the internal API on, which reads the token vault",
        ),
    ],
)
def test_half_configured_features_refuse_to_start(
    redis_url: str, env: dict[str, str], expected: str
) -> None:
    settings = oauth_settings(redis_url, "http://127.0.0.1:9", **env)
    with pytest.raises(ConfigError) as caught:
        create_app(settings)
    assert expected in str(caught.value)
    assert ENCRYPTION_KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://receiver.example/oauth/tiktok/callback?x=1", "must not have a query"),
        ("https://receiver.example/oauth/tiktok/callback#top", "must not have a query"),
        ("http://receiver.example/oauth/tiktok/callback", "absolute https URL"),
        ("/oauth/tiktok/callback", "absolute https URL"),
        ("http://127.0.0.1:8000/oauth/tiktok/callback", "only allowed with"),
    ],
)
def test_bad_redirect_uris_are_refused(redis_url: str, uri: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        oauth_settings(
            redis_url,
            "http://127.0.0.1:9",
            TIKTOK_REDIRECT_URI=uri,
            TIKTOK_WEBHOOKS_ENV="production",
        )
    assert expected in str(caught.value)


PRODUCTION = {
    "TIKTOK_CLIENT_KEY": "ck",
    "TIKTOK_CLIENT_SECRET": "cs",
    "TIKTOK_REDIRECT_URI": "https://receiver.example/oauth/tiktok/callback",
    "TOKEN_ENCRYPTION_KEYS": ENCRYPTION_KEY,
}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TIKTOK_API_BASE_URL": "http://open.tiktokapis.com"}, "TIKTOK_API_BASE_URL uses http"),
        (
            {"TIKTOK_AUTH_URL": "http://www.tiktok.com/v2/auth/authorize/"},
            "TIKTOK_AUTH_URL uses http",
        ),
        ({"OAUTH_SUCCESS_URL": "javascript:alert(1)"}, "OAUTH_SUCCESS_URL must be an http(s)"),
        ({"OAUTH_SUCCESS_URL": "//evil.example/x"}, "OAUTH_SUCCESS_URL must be an http(s)"),
        ({"OAUTH_SUCCESS_URL": "ftp://app.example/x"}, "OAUTH_SUCCESS_URL must be an http(s)"),
        (
            {"WEBHOOK_TOLERANCE_SECONDS": "400000"},
            "WEBHOOK_TOLERANCE_SECONDS must not exceed WEBHOOK_DEDUPE_TTL_SECONDS",
        ),
    ],
)
def test_production_refuses_insecure_settings(env: dict[str, str], expected: str) -> None:
    from receiver.settings import load_settings

    with pytest.raises(ConfigError) as caught:
        load_settings({**PRODUCTION, **env})
    assert expected in str(caught.value)


@pytest.mark.parametrize("token", ["a" * 40, "ab" * 20, "0123" * 10])
def test_a_guessable_admin_token_is_refused(redis_url: str, token: str) -> None:
    settings = oauth_settings(redis_url, "http://127.0.0.1:9", ADMIN_TOKEN=token)
    with pytest.raises(ConfigError) as caught:
        create_app(settings)
    assert "ADMIN_TOKEN looks guessable" in str(caught.value)
    assert token not in str(caught.value)


def test_sound_production_settings_load() -> None:
    import secrets

    from receiver.settings import load_settings

    settings = load_settings(
        {**PRODUCTION, "OAUTH_SUCCESS_URL": "/connected", "ADMIN_TOKEN": secrets.token_hex(24)}
    )
    assert settings.oauth_success_url == "/connected"
    assert not settings.is_development


def test_a_host_that_is_not_tiktoks_is_warned_about() -> None:
    from receiver.security_checks import security_warnings
    from receiver.settings import load_settings

    assert security_warnings(load_settings(PRODUCTION)) == []
    proxied = load_settings({**PRODUCTION, "TIKTOK_API_BASE_URL": "https://egress.example"})
    [warning] = security_warnings(proxied)
    assert "TIKTOK_API_BASE_URL points at egress.example, which is not TikTok's" in warning


def test_http_loopback_is_fine_in_development(redis_url: str) -> None:
    settings = oauth_settings(
        redis_url,
        "http://127.0.0.1:9",
        TIKTOK_REDIRECT_URI="http://localhost:8000/oauth/tiktok/callback",
        TIKTOK_WEBHOOKS_ENV="development",
    )
    assert create_app(settings).oauth is not None
