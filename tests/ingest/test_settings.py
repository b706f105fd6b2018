from __future__ import annotations

from pathlib import Path

import pytest

from receiver.settings import ConfigError, load_settings

BASE = {"TIKTOK_CLIENT_KEY": "ck", "TIKTOK_CLIENT_SECRET": "s1"}


def test_defaults() -> None:
    settings = load_settings(BASE)
    assert settings.webhook_tolerance_seconds == 300
    assert settings.webhook_max_body_bytes == 64 * 1024
    assert settings.webhook_dedupe_ttl_seconds >= 72 * 3600
    assert [app.client_key for app in settings.apps] == ["ck"]


def test_env_values_are_converted() -> None:
    settings = load_settings(
        {**BASE, "WEBHOOK_TOLERANCE_SECONDS": "60", "WEBHOOK_MAX_BODY_BYTES": "2048"}
    )
    assert settings.webhook_tolerance_seconds == 60
    assert settings.webhook_max_body_bytes == 2048


def test_secret_rotation_list_newest_first() -> None:
    settings = load_settings({"TIKTOK_CLIENT_KEY": "ck", "TIKTOK_CLIENT_SECRET": " new , old "})
    secrets = settings.secrets_for("ck")
    assert secrets is not None
    assert [s.reveal() for s in secrets] == ["new", "old"]
    assert "new" not in repr(settings)
    assert "old" not in repr(settings)


def test_toml_apps_and_env_override(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'redis_url = "redis://127.0.0.1:1/0"\n'
        "webhook_tolerance_seconds = 120\n"
        '[[apps]]\nclient_key = "a1"\nclient_secret = ["a1-new", "a1-old"]\n'
        '[[apps]]\nclient_key = "a2"\nclient_secret = "a2-secret"\n'
    )
    settings = load_settings({"WEBHOOK_TOLERANCE_SECONDS": "30"}, config)
    assert settings.webhook_tolerance_seconds == 30
    assert settings.redis_url.reveal() == "redis://127.0.0.1:1/0"
    a1, a2 = settings.secrets_for("a1"), settings.secrets_for("a2")
    assert a1 is not None
    assert a2 is not None
    assert [s.reveal() for s in a1] == ["a1-new", "a1-old"]
    assert [s.reveal() for s in a2] == ["a2-secret"]
    assert settings.secrets_for("a3") is None


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"TIKTOK_CLIENT_KEY": "ck"}, "TIKTOK_CLIENT_SECRET is not"),
        ({"TIKTOK_CLIENT_SECRET": "x"}, "TIKTOK_CLIENT_KEY is not"),
        ({**BASE, "TIKTOK_CLIENT_SECRET": " , "}, "TIKTOK_CLIENT_SECRET is empty"),
        ({**BASE, "TIKTOK_CLIENT_SECRET": "a b"}, "white space"),
        ({**BASE, "WEBHOOK_TOLERANCE_SECONDS": "soon"}, "WEBHOOK_TOLERANCE_SECONDS"),
        ({**BASE, "WEBHOOK_TOLERANCE_SECONDS": "0"}, "WEBHOOK_TOLERANCE_SECONDS"),
        ({**BASE, "WEBHOOK_DEDUPE_TTL_SECONDS": "3600"}, "72 hours"),
        ({**BASE, "REDIS_URL": "http://x"}, "REDIS_URL"),
        ({**BASE, "TIKTOK_REDIRECT_URI": "http://example.com/cb"}, "absolute https"),
        ({**BASE, "TIKTOK_REDIRECT_URI": "https://example.com/cb?x=1"}, "query"),
        ({**BASE, "TIKTOK_REDIRECT_URI": "http://127.0.0.1:8000/cb"}, "development"),
    ],
)
def test_errors_say_what_to_fix(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert fragment in str(info.value)


def test_all_problems_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "WEBHOOK_TOLERANCE_SECONDS": "-1", "REDIS_URL": "nope://"})
    assert len(info.value.problems) == 2


def test_loopback_redirect_allowed_in_development() -> None:
    settings = load_settings(
        {
            **BASE,
            "TIKTOK_REDIRECT_URI": "http://127.0.0.1:8000/oauth/tiktok/callback",
            "TIKTOK_WEBHOOKS_ENV": "development",
        }
    )
    assert settings.is_development


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("tolerance = 3\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings({}, unknown)
    dup = tmp_path / "dup.toml"
    dup.write_text('[[apps]]\nclient_key = "ck"\nclient_secret = "z"\n')
    with pytest.raises(ConfigError, match="configured twice"):
        load_settings(BASE, dup)


def test_redis_url_password_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "REDIS_URL": "http://user:hunter2@host"})
    assert "hunter2" not in str(info.value)
