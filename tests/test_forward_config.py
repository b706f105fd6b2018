"""Forwarding destinations from TOML `[[forward]]` and FORWARD_* variables."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from receiver.forward_config import (
    DEFAULT_RETRY_SCHEDULE,
    generate_secret,
    parse_duration,
    secret_bytes,
)
from receiver.settings import ConfigError, load_settings

BASE = {"TIKTOK_CLIENT_KEY": "k", "TIKTOK_CLIENT_SECRET": "s"}


def test_keygen_secrets_are_whsec_and_base64() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert secret_bytes(secret) == base64.b64decode(secret[6:])
    assert generate_secret() != secret


def test_the_environment_defines_one_default_destination() -> None:
    one, two = generate_secret(), generate_secret()
    settings = load_settings(
        {
            **BASE,
            "FORWARD_URL": "https://hooks.example.com/tiktok",
            "FORWARD_SECRET": f"{one}, {two}",
            "FORWARD_EVENTS": "post.publish.*, authorization.removed",
        }
    )
    [dest] = settings.forward_destinations
    assert dest.name == "default"
    assert [s.reveal() for s in dest.secrets] == [one, two]
    assert dest.events == ("post.publish.*", "authorization.removed")
    assert dest.matches("post.publish.complete", "k")
    assert not dest.matches("video.publish.completed", "k")
    assert settings.forward_retry_schedule == DEFAULT_RETRY_SCHEDULE
    assert DEFAULT_RETRY_SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 36000)


def test_toml_tables_define_several_destinations(tmp_path: Path) -> None:
    secret = generate_secret()
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
forward_retry_schedule = "1s, 2m, 1h"
[[forward]]
name = "billing"
url = "https://billing.example.com/hooks"
secrets = ["{secret}"]
events = ["authorization.removed"]
client_keys = ["k"]
timeout_seconds = 3
rate_per_second = 20
concurrency = 4

[[forward]]
name = "analytics"
url = "https://analytics.example.com/in"
secrets = ["{secret}"]
"""
    )
    settings = load_settings(BASE, config)
    billing, analytics = settings.forward_destinations
    assert (billing.name, billing.timeout_seconds, billing.rate_per_second) == ("billing", 3, 20)
    assert billing.concurrency == 4
    assert billing.matches("authorization.removed", "k")
    assert not billing.matches("authorization.removed", "other-app")
    assert analytics.events == ("*",)
    assert analytics.matches("anything.new", "other-app")
    assert settings.forward_retry_schedule == (1, 120, 3600)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FORWARD_URL": "https://x.example/h", "FORWARD_SECRET": "whsec_!!"}, "not base64"),
        ({"FORWARD_URL": "https://x.example/h", "FORWARD_SECRET": "plain-secret"}, "whsec_"),
        ({"FORWARD_URL": "https://x.example/h"}, "forward keygen"),
        ({"FORWARD_SECRET": generate_secret()}, "FORWARD_URL is not"),
        ({"FORWARD_URL": "http://x.example/h", "FORWARD_SECRET": generate_secret()}, "https"),
        ({"FORWARD_URL": "x.example/h", "FORWARD_SECRET": generate_secret()}, "absolute"),
        ({"FORWARD_RETRY_SCHEDULE": "5s,soon"}, "not a duration"),
        ({"FORWARD_DISABLE_AFTER_SECONDS": "5"}, "at least 60"),
    ],
)
def test_bad_forwarding_settings_say_what_to_fix(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, **env})
    message = str(caught.value)
    assert expected in message
    for value in env.values():
        if value.startswith(("whsec_", "plain")):
            assert value not in message  # a secret is never echoed


def test_http_is_allowed_in_development() -> None:
    settings = load_settings(
        {
            **BASE,
            "TIKTOK_WEBHOOKS_ENV": "development",
            "FORWARD_URL": "http://127.0.0.1:9400/",
            "FORWARD_SECRET": generate_secret(),
        }
    )
    assert settings.forward_destinations[0].url == "http://127.0.0.1:9400/"


def test_toml_mistakes_are_reported_per_table(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[[forward]]
name = "Bad Name"
url = "https://a.example/"
secrets = ["{generate_secret()}"]
concurrency = 0
colour = "blue"

[[forward]]
name = "twice"
url = "https://a.example/"
secrets = ["{generate_secret()}"]

[[forward]]
name = "twice"
url = "https://a.example/"
secrets = ["{generate_secret()}"]
timeout_seconds = "soon"
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(BASE, config)
    problems = "\n".join(caught.value.problems)
    assert "unknown key 'colour'" in problems
    assert "metric label" in problems
    assert "`concurrency` must be at least 1" in problems
    assert "#3" in problems  # the timeout that is not a number
    assert "'twice' is configured twice" in problems


@pytest.mark.parametrize(
    ("text", "seconds"), [("5s", 5), ("5m", 300), ("2h", 7200), ("250ms", 0.25), ("7", 7)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
