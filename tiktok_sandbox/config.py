"""Configuration of the sandbox: registered apps, seeded users and the TikTok-like knobs."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from tiktok_sandbox.models import SandboxUser

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
HttpStatus = Annotated[int, msgspec.Meta(ge=200, le=599)]

DEFAULT_CLIENT_KEY = "sandbox_client_key"
DEFAULT_CLIENT_SECRET = "sandbox_client_secret"  # a public test credential, not a secret
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/oauth/tiktok/callback"
DEFAULT_APP_NAME = "Sandbox app"


def callback_url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook callback URL, or None.

    TikTok requires HTTPS; the sandbox also takes plain http, since it is meant to call a
    receiver on loopback.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"callback URL {url!r} is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"callback URL {url!r} must be an absolute http(s) URL"
    if parts.fragment:
        return f"callback URL {url!r} must not have a #fragment"
    return None


class AppConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One app registered in the (simulated) TikTok developer portal."""

    client_key: str
    client_secret: str
    redirect_uris: list[str]
    # Where webhooks go (one per app, as in the portal); None: the app gets no webhooks.
    callback_url: str | None = None
    # What the consent page calls the app (the portal's app name).
    name: str = DEFAULT_APP_NAME

    def problems(self) -> list[str]:
        found: list[str] = []
        if not self.client_key or not self.client_secret:
            found.append("an app needs a non-empty client_key and client_secret")
        if not self.redirect_uris:
            found.append(f"app {self.client_key!r} needs at least one redirect URI")
        if any(not uri.strip() for uri in self.redirect_uris):
            found.append(f"app {self.client_key!r} has an empty redirect URI")
        if self.callback_url is not None:
            problem = callback_url_problem(self.callback_url)
            if problem is not None:
                found.append(f"app {self.client_key!r}: {problem}")
        return found


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the sandbox sends webhooks: TikTok's retry model on an adjustable timescale.

    A failed attempt (any answer but 200, a connection error, a timeout) is retried after
    `retry_base_seconds * retry_factor ** (n - 1)` for the n-th retry, until the next retry
    would fall past `horizon_seconds` after the event (TikTok: 72 h), or `max_attempts`
    attempts were made; then the delivery is discarded. Delays and the horizon are
    multiplied by `time_scale` (1.0 = real time; 0.001 turns 72 h into about 4 minutes).
    TikTok's real schedule is UNCONFIRMED (contract §1.1), these are the sandbox's choice.
    """

    retry_base_seconds: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    retry_factor: Annotated[float, msgspec.Meta(ge=1, le=100)] = 2.0
    horizon_seconds: Annotated[float, msgspec.Meta(ge=0)] = 72 * 3600.0
    time_scale: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 1.0
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] | None = None
    # Per attempt, in real seconds (not scaled); TikTok's own timeout is UNCONFIRMED.
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8
    # Added to the signature's `t`: a TikTok whose clock is off, for stale-timestamp tests.
    clock_skew_seconds: Annotated[float, msgspec.Meta(ge=-1e9, le=1e9)] = 0.0
    # Whether `POST /v2/oauth/revoke/` sends authorization.removed (reason 5): UNCONFIRMED.
    revoke_sends_event: bool = True

    def problems(self) -> list[str]:
        """The bounds above, for a config built in Python (decoding checks them itself)."""
        try:
            msgspec.convert(msgspec.to_builtins(self), WebhookSettings)
        except msgspec.ValidationError as exc:
            return [f"webhooks: {exc}"]
        return []

    def retry_delay(self, retry: int) -> float:
        """Real seconds to wait before the `retry`-th retry (1 = the first)."""
        try:
            delay = self.retry_base_seconds * self.retry_factor ** (retry - 1)
        except OverflowError:
            return float("inf")
        return delay * self.time_scale

    @property
    def horizon(self) -> float:
        """Real seconds after the event past which nothing is retried."""
        return self.horizon_seconds * self.time_scale


class WebhookSettingsPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    retry_base_seconds: Annotated[float, msgspec.Meta(gt=0)] | msgspec.UnsetType = msgspec.UNSET
    retry_factor: Annotated[float, msgspec.Meta(ge=1, le=100)] | msgspec.UnsetType = msgspec.UNSET
    horizon_seconds: Annotated[float, msgspec.Meta(ge=0)] | msgspec.UnsetType = msgspec.UNSET
    time_scale: Annotated[float, msgspec.Meta(gt=0, le=1000)] | msgspec.UnsetType = msgspec.UNSET
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] | msgspec.UnsetType | None = msgspec.UNSET
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=256)] | msgspec.UnsetType = msgspec.UNSET
    clock_skew_seconds: Annotated[float, msgspec.Meta(ge=-1e9, le=1e9)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    revoke_sends_event: bool | msgspec.UnsetType = msgspec.UNSET

    def apply(self, settings: WebhookSettings) -> WebhookSettings:
        return msgspec.structs.replace(settings, **_set_fields(self))


def _set_fields(patch: msgspec.Struct) -> dict[str, Any]:
    return {
        name: getattr(patch, name)
        for name in patch.__struct_fields__
        if getattr(patch, name) is not msgspec.UNSET
    }


# What captured token answers say (expires_in 86400, refresh_expires_in 31536000); TikTok's
# newer docs say 2 h and 180 days: set access_token_ttl / refresh_token_ttl to try those.
ACCESS_TOKEN_TTL = 86400
REFRESH_TOKEN_TTL = 365 * 24 * 3600


class LiveSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The knobs the admin API may change at run time (`PUT /sandbox/settings`)."""

    access_token_ttl: int = ACCESS_TOKEN_TTL
    refresh_token_ttl: int = REFRESH_TOKEN_TTL
    code_ttl: int = 300
    # None means no limit.
    rate_limit_per_minute: int | None = 600
    auto_approve: bool = True
    # TikTok has been seen answering invalid_client with HTTP 200 and an error body.
    invalid_client_http_status: int = 200
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    # Sandbox seconds between the states of a publish, and until a data request is ready.
    publish_step_seconds: float = 1.0
    data_ready_seconds: float = 1.0
    # Bytes of filler in each data archive (to try size caps); 0: a small archive.
    data_archive_padding_bytes: int = 0


class SettingsPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A partial update of LiveSettings; the bounds are checked when it is decoded."""

    access_token_ttl: PositiveInt | msgspec.UnsetType = msgspec.UNSET
    refresh_token_ttl: PositiveInt | msgspec.UnsetType = msgspec.UNSET
    code_ttl: PositiveInt | msgspec.UnsetType = msgspec.UNSET
    rate_limit_per_minute: PositiveInt | msgspec.UnsetType | None = msgspec.UNSET
    auto_approve: bool | msgspec.UnsetType = msgspec.UNSET
    invalid_client_http_status: HttpStatus | msgspec.UnsetType = msgspec.UNSET
    webhooks: WebhookSettingsPatch | msgspec.UnsetType = msgspec.UNSET
    publish_step_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    data_ready_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    data_archive_padding_bytes: (
        Annotated[int, msgspec.Meta(ge=0, le=512 * 1024 * 1024)] | msgspec.UnsetType
    ) = msgspec.UNSET

    def apply(self, settings: LiveSettings) -> LiveSettings:
        changes = _set_fields(self)
        if isinstance(self.webhooks, WebhookSettingsPatch):
            changes["webhooks"] = self.webhooks.apply(settings.webhooks)
        return msgspec.structs.replace(settings, **changes)


class SandboxConfig(msgspec.Struct, kw_only=True):
    """Everything `create_app` needs; `POST /sandbox/reset` returns to exactly this."""

    apps: list[AppConfig] = msgspec.field(default_factory=list)
    users: list[SandboxUser] = msgspec.field(default_factory=list)
    access_token_ttl: int = ACCESS_TOKEN_TTL
    refresh_token_ttl: int = REFRESH_TOKEN_TTL
    code_ttl: int = 300
    rate_limit_per_minute: int | None = 600
    auto_approve: bool = True
    invalid_client_http_status: int = 200
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)

    def live_settings(self) -> LiveSettings:
        return LiveSettings(
            access_token_ttl=self.access_token_ttl,
            refresh_token_ttl=self.refresh_token_ttl,
            code_ttl=self.code_ttl,
            rate_limit_per_minute=self.rate_limit_per_minute,
            auto_approve=self.auto_approve,
            invalid_client_http_status=self.invalid_client_http_status,
            webhooks=self.webhooks,
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
        problems.extend(self.webhooks.problems())
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
    """The app `python -m tiktok_sandbox` registers when none is given on the command line."""
    return AppConfig(
        client_key=DEFAULT_CLIENT_KEY,
        client_secret=DEFAULT_CLIENT_SECRET,
        redirect_uris=[DEFAULT_REDIRECT_URI],
    )
