"""Configuration of the sandbox: registered apps, seeded users and the TikTok-like knobs."""

from __future__ import annotations

from typing import Annotated

import msgspec

from sandbox.models import SandboxUser

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
HttpStatus = Annotated[int, msgspec.Meta(ge=200, le=599)]

DEFAULT_CLIENT_KEY = "sandbox_client_key"
DEFAULT_CLIENT_SECRET = "sandbox_client_secret"  # a public test credential, not a secret
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/oauth/tiktok/callback"


class AppConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One app registered in the (simulated) TikTok developer portal."""

    client_key: str
    client_secret: str
    redirect_uris: list[str]

    def problems(self) -> list[str]:
        found: list[str] = []
        if not self.client_key or not self.client_secret:
            found.append("an app needs a non-empty client_key and client_secret")
        if not self.redirect_uris:
            found.append(f"app {self.client_key!r} needs at least one redirect URI")
        if any(not uri.strip() for uri in self.redirect_uris):
            found.append(f"app {self.client_key!r} has an empty redirect URI")
        return found


class LiveSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The knobs the admin API may change at run time (`PUT /sandbox/settings`)."""

    access_token_ttl: int = 7200
    refresh_token_ttl: int = 180 * 24 * 3600
    code_ttl: int = 300
    # None means no limit.
    rate_limit_per_minute: int | None = 600
    auto_approve: bool = True
    # TikTok has been seen answering invalid_client with HTTP 200 and an error body.
    invalid_client_http_status: int = 200


class SettingsPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A partial update of LiveSettings; the bounds are checked when it is decoded."""

    access_token_ttl: PositiveInt | msgspec.UnsetType = msgspec.UNSET
    refresh_token_ttl: PositiveInt | msgspec.UnsetType = msgspec.UNSET
    code_ttl: PositiveInt | msgspec.UnsetType = msgspec.UNSET
    rate_limit_per_minute: PositiveInt | msgspec.UnsetType | None = msgspec.UNSET
    auto_approve: bool | msgspec.UnsetType = msgspec.UNSET
    invalid_client_http_status: HttpStatus | msgspec.UnsetType = msgspec.UNSET

    def apply(self, settings: LiveSettings) -> LiveSettings:
        changes = {
            name: getattr(self, name)
            for name in self.__struct_fields__
            if getattr(self, name) is not msgspec.UNSET
        }
        return msgspec.structs.replace(settings, **changes)


class SandboxConfig(msgspec.Struct, kw_only=True):
    """Everything `create_app` needs; `POST /sandbox/reset` returns to exactly this."""

    apps: list[AppConfig] = msgspec.field(default_factory=list)
    users: list[SandboxUser] = msgspec.field(default_factory=list)
    access_token_ttl: int = 7200
    refresh_token_ttl: int = 180 * 24 * 3600
    code_ttl: int = 300
    rate_limit_per_minute: int | None = 600
    auto_approve: bool = True
    invalid_client_http_status: int = 200

    def live_settings(self) -> LiveSettings:
        return LiveSettings(
            access_token_ttl=self.access_token_ttl,
            refresh_token_ttl=self.refresh_token_ttl,
            code_ttl=self.code_ttl,
            rate_limit_per_minute=self.rate_limit_per_minute,
            auto_approve=self.auto_approve,
            invalid_client_http_status=self.invalid_client_http_status,
        )

    def validate(self) -> None:
        """Raise ValueError listing every problem, so a bad config fails at start-up."""
        problems: list[str] = []
        for name in ("access_token_ttl", "refresh_token_ttl", "code_ttl"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1 second")
        if self.rate_limit_per_minute is not None and self.rate_limit_per_minute < 1:
            problems.append("rate_limit_per_minute must be at least 1 (or None for no limit)")
        if not 200 <= self.invalid_client_http_status <= 599:
            problems.append("invalid_client_http_status must be an HTTP status (200-599)")
        keys = [app.client_key for app in self.apps]
        if len(keys) != len(set(keys)):
            problems.append("two apps share a client_key")
        for app in self.apps:
            problems.extend(app.problems())
        open_ids = [user.open_id for user in self.users if user.open_id]
        if len(open_ids) != len(set(open_ids)):
            problems.append("two seeded users share an open_id")
        if problems:
            raise ValueError("invalid sandbox config: " + "; ".join(problems))


def default_app() -> AppConfig:
    """The app `python -m sandbox` registers when none is given on the command line."""
    return AppConfig(
        client_key=DEFAULT_CLIENT_KEY,
        client_secret=DEFAULT_CLIENT_SECRET,
        redirect_uris=[DEFAULT_REDIRECT_URI],
    )
