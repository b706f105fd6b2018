"""Typed settings, read from environment variables and an optional TOML file.

Every value a user sets is validated when the process starts, and all problems are
reported together with what to change, instead of failing at the first request.

Precedence: environment variables override the TOML file, which overrides defaults.
In the TOML file keys are the lower-case names of the variables (``redis_url = ...``)
and several apps are given as ``[[apps]]`` tables with ``client_key`` and
``client_secret`` (a string or a list, newest first).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

import msgspec

from receiver.forward_config import (
    DEFAULT_RETRY_SCHEDULE,
    ForwardDestination,
    collect_destinations,
    parse_schedule,
    validate_destinations,
)
from receiver.secrets import Secret

DEFAULT_AUTH_URL: Final = "https://www.tiktok.com/v2/auth/authorize/"
DEFAULT_API_BASE_URL: Final = "https://open.tiktokapis.com"
TIKTOK_RETRY_HORIZON_SECONDS: Final = 72 * 3600


class ConfigError(Exception):
    """The configuration cannot work; `problems` says what to fix, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class AppCredentials(msgspec.Struct, frozen=True):
    """One TikTok app: its client key and its client secrets, newest first."""

    client_key: str
    client_secrets: tuple[Secret, ...]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    apps: tuple[AppCredentials, ...] = ()
    redis_url: Secret = Secret("redis://127.0.0.1:6379/0")
    redis_timeout_seconds: float = 2.0
    # Redis Sentinel: "host:port" of each sentinel; REDIS_URL then gives db and password.
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_master: str = "mymaster"
    # The sentinels themselves speak TLS (with REDIS_URL's TLS options).
    redis_sentinel_tls: bool = False
    webhook_tolerance_seconds: int = 300
    # TikTok's bodies are under 2 KB; 64 KiB leaves a wide margin.
    webhook_max_body_bytes: int = 64 * 1024
    webhook_dedupe_ttl_seconds: int = 4 * 24 * 3600
    webhook_retry_after_seconds: int = 5
    # How long the endpoint waits for a request's whole body before answering 408.
    webhook_body_timeout_seconds: float = 10.0
    # How long the latest share/publish/portability status is kept (receiver/status_store.py).
    status_ttl_seconds: int = 90 * 24 * 3600
    webhook_capture: bool = False
    webhook_capture_max_entries: int = 10_000
    webhook_capture_max_age_seconds: int = 7 * 24 * 3600
    queue_name: str = "arq:queue"
    job_expires_seconds: int = 7 * 24 * 3600
    environment: str = "production"
    # OAuth / TikTok API (used by the OAuth routes, the API client and the worker)
    tiktok_auth_url: str = DEFAULT_AUTH_URL
    tiktok_api_base_url: str = DEFAULT_API_BASE_URL
    tiktok_redirect_uri: str | None = None
    tiktok_scopes: tuple[str, ...] = ("user.info.basic",)
    tiktok_use_pkce: bool = True
    token_encryption_keys: tuple[Secret, ...] = ()
    admin_token: Secret | None = None
    oauth_success_url: str | None = None
    oauth_state_ttl_seconds: int = 600
    oauth_start_rate_per_minute: int = 60
    http_timeout_seconds: float = 10.0
    # Worker (handlers/)
    worker_max_tries: int = 5
    worker_retry_base_seconds: float = 2.0
    worker_retry_max_seconds: float = 600.0
    worker_max_jobs: int = 50
    worker_poll_delay_seconds: float = 0.02
    worker_job_timeout_seconds: int = 60
    worker_shutdown_wait_seconds: int = 20
    worker_handler_modules: tuple[str, ...] = ()
    token_refresh_margin_seconds: int = 1800
    token_refresh_every_minutes: int = 1
    refresh_token_warning_days: int = 14
    profile_fetch_debounce_seconds: int = 300
    profile_sweep_interval_minutes: int = 0
    tiktok_rate_limit_per_minute: int = 600
    dead_letter_max_entries: int = 10_000
    dead_letter_max_age_seconds: int = 30 * 24 * 3600
    # Operator console (receiver/console/)
    console_enabled: bool = False
    console_token: Secret | None = None
    console_session_seconds: int = 8 * 3600
    console_recent_max_entries: int = 5000
    console_recent_max_age_seconds: int = 24 * 3600
    # Follow-up fetches (handlers/builtin_posts.py, handlers/builtin_portability.py)
    worker_disabled_handlers: tuple[str, ...] = ()
    portability_dir: str | None = None
    portability_max_bytes: int = 2 * 1024**3
    webhook_accept_unsigned_ping: bool = False
    # Forwarding to the company's services (receiver/forward_config.py, handlers/forwarding/)
    forward_destinations: tuple[ForwardDestination, ...] = ()
    forward_retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    forward_disable_after_seconds: int = 5 * 24 * 3600

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [(s.rpartition(":")[0], int(s.rpartition(":")[2])) for s in self.redis_sentinels]

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def primary_app(self) -> AppCredentials:
        """The app whose credentials the OAuth flow and the API client use."""
        if not self.apps:
            raise ConfigError(["no TikTok app configured: set TIKTOK_CLIENT_KEY"])
        return self.apps[0]

    def secrets_for(self, client_key: str) -> tuple[Secret, ...] | None:
        for app in self.apps:
            if app.client_key == client_key:
                return app.client_secrets
        return None

    def require_worker(self) -> None:
        """Raise ConfigError unless the worker can run (it handles tokens, so it needs keys)."""
        problems: list[str] = []
        if not self.apps:
            problems.append("TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET are required")
        if not self.token_encryption_keys:
            problems.append(
                "TOKEN_ENCRYPTION_KEYS is not set: the worker reads and refreshes encrypted "
                "tokens; create a key with `tiktok-webhooks keygen`"
            )
        if problems:
            raise ConfigError(problems)

    def require_oauth(self) -> None:
        """Raise ConfigError unless everything the OAuth flow needs is set."""
        problems: list[str] = []
        if not self.apps:
            problems.append("TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET are required for OAuth")
        if self.tiktok_redirect_uri is None:
            problems.append(
                "TIKTOK_REDIRECT_URI is not set: use the callback URL registered in the TikTok "
                "portal, e.g. https://example.com/oauth/tiktok/callback"
            )
        if not self.token_encryption_keys:
            problems.append(
                "TOKEN_ENCRYPTION_KEYS is not set: tokens are encrypted at rest; "
                "create a key with `tiktok-webhooks keygen`"
            )
        if problems:
            raise ConfigError(problems)


# Environment variable -> settings field. Everything here may also be set in TOML
# under the lower-case variable name.
_ENV_FIELDS: Final[dict[str, str]] = {
    "REDIS_URL": "redis_url",
    "REDIS_TIMEOUT_SECONDS": "redis_timeout_seconds",
    "REDIS_SENTINELS": "redis_sentinels",
    "REDIS_SENTINEL_MASTER": "redis_sentinel_master",
    "REDIS_SENTINEL_TLS": "redis_sentinel_tls",
    "WEBHOOK_TOLERANCE_SECONDS": "webhook_tolerance_seconds",
    "WEBHOOK_MAX_BODY_BYTES": "webhook_max_body_bytes",
    "WEBHOOK_DEDUPE_TTL_SECONDS": "webhook_dedupe_ttl_seconds",
    "WEBHOOK_RETRY_AFTER_SECONDS": "webhook_retry_after_seconds",
    "WEBHOOK_BODY_TIMEOUT_SECONDS": "webhook_body_timeout_seconds",
    "STATUS_TTL_SECONDS": "status_ttl_seconds",
    "WEBHOOK_CAPTURE": "webhook_capture",
    "WEBHOOK_CAPTURE_MAX_ENTRIES": "webhook_capture_max_entries",
    "WEBHOOK_CAPTURE_MAX_AGE_SECONDS": "webhook_capture_max_age_seconds",
    "ARQ_QUEUE_NAME": "queue_name",
    "JOB_EXPIRES_SECONDS": "job_expires_seconds",
    "TIKTOK_WEBHOOKS_ENV": "environment",
    "TIKTOK_AUTH_URL": "tiktok_auth_url",
    "TIKTOK_API_BASE_URL": "tiktok_api_base_url",
    "TIKTOK_REDIRECT_URI": "tiktok_redirect_uri",
    "TIKTOK_SCOPES": "tiktok_scopes",
    "TIKTOK_USE_PKCE": "tiktok_use_pkce",
    "TOKEN_ENCRYPTION_KEYS": "token_encryption_keys",
    "ADMIN_TOKEN": "admin_token",
    "OAUTH_SUCCESS_URL": "oauth_success_url",
    "OAUTH_STATE_TTL_SECONDS": "oauth_state_ttl_seconds",
    "OAUTH_START_RATE_PER_MINUTE": "oauth_start_rate_per_minute",
    "HTTP_TIMEOUT_SECONDS": "http_timeout_seconds",
    "WORKER_MAX_TRIES": "worker_max_tries",
    "WORKER_RETRY_BASE_SECONDS": "worker_retry_base_seconds",
    "WORKER_RETRY_MAX_SECONDS": "worker_retry_max_seconds",
    "WORKER_MAX_JOBS": "worker_max_jobs",
    "WORKER_POLL_DELAY_SECONDS": "worker_poll_delay_seconds",
    "WORKER_JOB_TIMEOUT_SECONDS": "worker_job_timeout_seconds",
    "WORKER_SHUTDOWN_WAIT_SECONDS": "worker_shutdown_wait_seconds",
    "WORKER_HANDLER_MODULES": "worker_handler_modules",
    "TOKEN_REFRESH_MARGIN_SECONDS": "token_refresh_margin_seconds",
    "TOKEN_REFRESH_EVERY_MINUTES": "token_refresh_every_minutes",
    "REFRESH_TOKEN_WARNING_DAYS": "refresh_token_warning_days",
    "PROFILE_FETCH_DEBOUNCE_SECONDS": "profile_fetch_debounce_seconds",
    "PROFILE_SWEEP_INTERVAL_MINUTES": "profile_sweep_interval_minutes",
    "TIKTOK_RATE_LIMIT_PER_MINUTE": "tiktok_rate_limit_per_minute",
    "DEAD_LETTER_MAX_ENTRIES": "dead_letter_max_entries",
    "DEAD_LETTER_MAX_AGE_SECONDS": "dead_letter_max_age_seconds",
    "CONSOLE_ENABLED": "console_enabled",
    "CONSOLE_TOKEN": "console_token",
    "CONSOLE_SESSION_SECONDS": "console_session_seconds",
    "CONSOLE_RECENT_MAX_ENTRIES": "console_recent_max_entries",
    "CONSOLE_RECENT_MAX_AGE_SECONDS": "console_recent_max_age_seconds",
    "WORKER_DISABLED_HANDLERS": "worker_disabled_handlers",
    "PORTABILITY_DIR": "portability_dir",
    "PORTABILITY_MAX_BYTES": "portability_max_bytes",
    "WEBHOOK_ACCEPT_UNSIGNED_PING": "webhook_accept_unsigned_ping",
    "FORWARD_RETRY_SCHEDULE": "forward_retry_schedule",
    "FORWARD_DISABLE_AFTER_SECONDS": "forward_disable_after_seconds",
}
_LIST_FIELDS: Final = frozenset(
    {
        "tiktok_scopes",
        "token_encryption_keys",
        "worker_handler_modules",
        "redis_sentinels",
        "worker_disabled_handlers",
    }
)
_SECRET_FIELDS: Final = frozenset(
    {"redis_url", "admin_token", "token_encryption_keys", "console_token"}
)
ENV_NAMES: Final = (
    "TIKTOK_CLIENT_KEY",
    "TIKTOK_CLIENT_SECRET",
    "FORWARD_URL",
    "FORWARD_SECRET",
    "FORWARD_EVENTS",
    *_ENV_FIELDS,
)


def _split_list(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Secret and isinstance(obj, str):
        return Secret(obj)
    raise NotImplementedError


def _parse_secrets(name: str, raw: Any, problems: list[str]) -> tuple[Secret, ...]:
    if isinstance(raw, str):
        parts = raw.split(",")
    elif isinstance(raw, list) and all(isinstance(p, str) for p in raw):
        parts = raw
    else:
        problems.append(f"{name} must be a string (comma-separated, newest first) or a list")
        return ()
    secrets = tuple(Secret(p.strip()) for p in parts if p.strip())
    if not secrets:
        problems.append(f"{name} is empty: copy the Client secret from the TikTok portal")
    for secret in secrets:
        if any(ch.isspace() for ch in secret.reveal()):
            problems.append(f"{name} contains white space inside a secret: copy it again")
    return secrets


def _collect_apps(
    environ: Mapping[str, str], file_data: dict[str, Any], problems: list[str]
) -> list[AppCredentials]:
    apps: list[AppCredentials] = []
    env_key = environ.get("TIKTOK_CLIENT_KEY", "").strip()
    env_secret = environ.get("TIKTOK_CLIENT_SECRET")
    if env_key:
        if env_secret is None:
            problems.append(
                "TIKTOK_CLIENT_KEY is set but TIKTOK_CLIENT_SECRET is not: copy the app's "
                "Client secret from the TikTok portal"
            )
        else:
            apps.append(
                AppCredentials(
                    env_key, _parse_secrets("TIKTOK_CLIENT_SECRET", env_secret, problems)
                )
            )
    elif env_secret is not None:
        problems.append("TIKTOK_CLIENT_SECRET is set but TIKTOK_CLIENT_KEY is not")

    raw_apps = file_data.pop("apps", [])
    if not isinstance(raw_apps, list):
        problems.append("`apps` in the config file must be an array of tables ([[apps]])")
        raw_apps = []
    for index, entry in enumerate(raw_apps):
        where = f"config [[apps]] #{index + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("client_key"), str):
            problems.append(f"{where}: needs a string `client_key`")
            continue
        key = entry["client_key"].strip()
        if "client_secret" not in entry:
            problems.append(f"{where} ({key}): needs `client_secret`")
            continue
        apps.append(
            AppCredentials(
                key, _parse_secrets(f"{where} client_secret", entry["client_secret"], problems)
            )
        )

    seen: set[str] = set()
    for app in apps:
        if app.client_key in seen:
            problems.append(f"client key {app.client_key!r} is configured twice")
        seen.add(app.client_key)
    return apps


def is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_uri_problem(uri: str, *, development: bool) -> str | None:
    """Why `uri` cannot be a TikTok redirect URI, or None when it can."""
    parts = urlsplit(uri)
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        return "TIKTOK_REDIRECT_URI must not have a query or fragment (TikTok matches it exactly)"
    if parts.scheme == "https" and parts.netloc:
        return None
    if parts.scheme == "http" and is_loopback_host(parts.hostname) and development:
        return None
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return (
            "TIKTOK_REDIRECT_URI uses http on a loopback host, which is only allowed with "
            "TIKTOK_WEBHOOKS_ENV=development"
        )
    return "TIKTOK_REDIRECT_URI must be an absolute https URL, exactly as registered in the portal"


def _validate(settings: Settings, problems: list[str]) -> None:
    if settings.webhook_tolerance_seconds <= 0:
        problems.append("WEBHOOK_TOLERANCE_SECONDS must be a positive number of seconds")
    if settings.webhook_max_body_bytes < 1024:
        problems.append("WEBHOOK_MAX_BODY_BYTES must be at least 1024")
    if settings.webhook_dedupe_ttl_seconds < TIKTOK_RETRY_HORIZON_SECONDS:
        problems.append(
            "WEBHOOK_DEDUPE_TTL_SECONDS must be at least 259200 (TikTok retries for 72 hours)"
        )
    if settings.redis_timeout_seconds <= 0:
        problems.append("REDIS_TIMEOUT_SECONDS must be positive")
    if settings.webhook_body_timeout_seconds <= 0:
        problems.append("WEBHOOK_BODY_TIMEOUT_SECONDS must be positive")
    if settings.status_ttl_seconds < 3600:
        problems.append("STATUS_TTL_SECONDS must be at least 3600 (an hour)")
    if settings.environment not in ("production", "development"):
        problems.append("TIKTOK_WEBHOOKS_ENV must be `production` or `development`")
    for sentinel in settings.redis_sentinels:
        host, _, port = sentinel.rpartition(":")
        if not host or not port.isdigit():
            problems.append(f"REDIS_SENTINELS: {sentinel!r} is not host:port")
    url = urlsplit(settings.redis_url.reveal())
    if url.scheme not in ("redis", "rediss", "unix"):
        problems.append("REDIS_URL must start with redis://, rediss:// or unix://")
    else:
        problems.extend(_redis_url_problems(url.scheme, url))
    if settings.redis_sentinel_tls and url.scheme != "rediss":
        problems.append(
            "REDIS_SENTINEL_TLS uses the TLS options of REDIS_URL: start it with rediss://"
        )
    for name, value in (
        ("TIKTOK_AUTH_URL", settings.tiktok_auth_url),
        ("TIKTOK_API_BASE_URL", settings.tiktok_api_base_url),
    ):
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"{name} must be an absolute URL")
        elif parts.scheme == "http" and not settings.is_development:
            problems.append(
                f"{name} uses http://, which would send codes and tokens in clear: use "
                "https:// (http is only allowed with TIKTOK_WEBHOOKS_ENV=development)"
            )
    if settings.oauth_success_url is not None:
        success = urlsplit(settings.oauth_success_url)
        relative = not success.scheme and not success.netloc and success.path.startswith("/")
        if not relative and (success.scheme not in ("http", "https") or not success.netloc):
            problems.append(
                "OAUTH_SUCCESS_URL must be an http(s) URL or a path starting with /, "
                "e.g. https://app.example.com/connected"
            )
    if settings.webhook_tolerance_seconds > settings.webhook_dedupe_ttl_seconds:
        problems.append(
            "WEBHOOK_TOLERANCE_SECONDS must not exceed WEBHOOK_DEDUPE_TTL_SECONDS: a delivery "
            "replayed after its dedupe key expired would still verify"
        )
    if settings.tiktok_redirect_uri is not None:
        problem = redirect_uri_problem(
            settings.tiktok_redirect_uri, development=settings.is_development
        )
        if problem:
            problems.append(problem)
    minimums: tuple[tuple[str, int, int], ...] = (
        ("WORKER_MAX_TRIES", settings.worker_max_tries, 1),
        ("WORKER_MAX_JOBS", settings.worker_max_jobs, 1),
        ("WORKER_JOB_TIMEOUT_SECONDS", settings.worker_job_timeout_seconds, 1),
        ("TOKEN_REFRESH_EVERY_MINUTES", settings.token_refresh_every_minutes, 1),
        ("TIKTOK_RATE_LIMIT_PER_MINUTE", settings.tiktok_rate_limit_per_minute, 1),
        ("PROFILE_SWEEP_INTERVAL_MINUTES", settings.profile_sweep_interval_minutes, 0),
        ("TOKEN_REFRESH_MARGIN_SECONDS", settings.token_refresh_margin_seconds, 0),
        ("WEBHOOK_CAPTURE_MAX_ENTRIES", settings.webhook_capture_max_entries, 1),
        ("WEBHOOK_CAPTURE_MAX_AGE_SECONDS", settings.webhook_capture_max_age_seconds, 1),
        ("OAUTH_START_RATE_PER_MINUTE", settings.oauth_start_rate_per_minute, 0),
        ("DEAD_LETTER_MAX_ENTRIES", settings.dead_letter_max_entries, 1),
        ("DEAD_LETTER_MAX_AGE_SECONDS", settings.dead_letter_max_age_seconds, 3600),
        ("OAUTH_STATE_TTL_SECONDS", settings.oauth_state_ttl_seconds, 1),
        ("CONSOLE_SESSION_SECONDS", settings.console_session_seconds, 60),
        ("CONSOLE_RECENT_MAX_ENTRIES", settings.console_recent_max_entries, 1),
        ("CONSOLE_RECENT_MAX_AGE_SECONDS", settings.console_recent_max_age_seconds, 60),
        ("PORTABILITY_MAX_BYTES", settings.portability_max_bytes, 1024),
    )
    for env_name, number, low in minimums:
        if number < low:
            problems.append(f"{env_name} must be at least {low}")
    if settings.worker_poll_delay_seconds <= 0 or settings.worker_retry_base_seconds <= 0:
        problems.append("WORKER_POLL_DELAY_SECONDS and WORKER_RETRY_BASE_SECONDS must be positive")
    if not settings.tiktok_scopes:
        problems.append("TIKTOK_SCOPES must name at least one scope, e.g. user.info.basic")
    if settings.forward_disable_after_seconds < 60:
        problems.append("FORWARD_DISABLE_AFTER_SECONDS must be at least 60")
    validate_destinations(
        settings.forward_destinations, development=settings.is_development, problems=problems
    )


_REDIS_URL_FORM: Final = "redis://[:PASSWORD@]HOST:PORT/DB, e.g. redis://127.0.0.1:6379/0"


def _redis_url_problems(scheme: str, url: SplitResult) -> list[str]:
    if scheme == "unix":
        return (
            []
            if url.path
            else ["REDIS_URL: unix:// needs a socket path, e.g. unix:///run/redis.sock"]
        )
    try:
        url.port  # noqa: B018 - parsing it is the check
    except ValueError:
        return [
            f"REDIS_URL: the port is not a number between 0 and 65535; expected {_REDIS_URL_FORM}"
        ]
    if not url.hostname:
        return [f"REDIS_URL has no host; expected {_REDIS_URL_FORM}"]
    database = url.path.strip("/")
    if database and not database.isdigit():
        return [f"REDIS_URL: the database {database!r} is not a number; expected {_REDIS_URL_FORM}"]
    return []


def _expected_form(type_: Any) -> str:
    """How a value of the field's type is written in an environment variable."""
    if type_ is bool:
        return "true or false (also 1/0, yes/no, on/off)"
    if type_ is int:
        return "a whole number"
    if type_ is float:
        return "a number"
    if getattr(type_, "__origin__", None) is tuple:
        return "a comma-separated list"
    return "text"


def _check_types(raw: dict[str, Any], from_env: set[str], problems: list[str]) -> None:
    """Check each value against its field's type; report and drop those that do not fit,
    naming the variable, the expected form and the default."""
    names = {field: env for env, field in _ENV_FIELDS.items()}
    for info in msgspec.structs.fields(Settings):
        if info.name not in raw:
            continue
        try:
            msgspec.convert(raw[info.name], info.type, strict=False, dec_hook=_dec_hook)
        except msgspec.ValidationError:
            value = raw.pop(info.name)
            where = names[info.name] if info.name in from_env else f"config key {info.name!r}"
            form = _expected_form(info.type)
            if info.name in _SECRET_FIELDS:
                problems.append(f"{where}: expected {form}")
                continue
            default = info.default
            if isinstance(default, bool) or default is None:
                shown = str(default).lower()
            elif isinstance(default, tuple):
                shown = ",".join(default)
            else:
                shown = str(default)
            problems.append(f"{where}: expected {form} (default: {shown}), got {value!r}")


def load_settings(environ: Mapping[str, str], config_path: Path | None = None) -> Settings:
    """Build Settings from `environ` and an optional TOML file; raise ConfigError."""
    problems: list[str] = []
    file_data: dict[str, Any] = {}
    if config_path is not None:
        try:
            file_data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"config file {config_path} does not exist"]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"config file {config_path} cannot be read: {exc}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"config file {config_path} is not valid TOML: {exc}"]) from None

    apps = _collect_apps(environ, file_data, problems)
    destinations = collect_destinations(environ, file_data, problems)
    raw: dict[str, Any] = {}
    known = set(_ENV_FIELDS.values())
    for key, value in file_data.items():
        if key not in known:
            problems.append(f"config file: unknown key {key!r}")
            continue
        raw[key] = value
    from_env: set[str] = set()
    for env_name, field in _ENV_FIELDS.items():
        if env_name in environ:
            raw[field] = environ[env_name]
            from_env.add(field)
    for field in _LIST_FIELDS & raw.keys():
        raw[field] = _split_list(raw[field])
    if "forward_retry_schedule" in raw:
        raw["forward_retry_schedule"] = parse_schedule(raw["forward_retry_schedule"], problems)
    for field in (
        "tiktok_redirect_uri",
        "oauth_success_url",
        "admin_token",
        "console_token",
        "portability_dir",
    ):
        if isinstance(raw.get(field), str) and not raw[field].strip():
            del raw[field]
    for flag_field in (
        "tiktok_use_pkce",
        "webhook_capture",
        "redis_sentinel_tls",
        "console_enabled",
        "webhook_accept_unsigned_ping",
    ):
        if isinstance(raw.get(flag_field), str):
            flag = raw[flag_field].strip().lower()
            if flag in ("1", "true", "yes", "on"):
                raw[flag_field] = True
            elif flag in ("0", "false", "no", "off", ""):
                raw[flag_field] = False

    _check_types(raw, from_env, problems)
    try:
        settings = msgspec.convert(raw, Settings, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        problems.append(_describe_validation_error(exc))
        raise ConfigError(problems) from None
    settings = msgspec.structs.replace(
        settings, apps=tuple(apps), forward_destinations=tuple(destinations)
    )
    _validate(settings, problems)
    if problems:
        raise ConfigError(problems)
    return settings


def load_settings_from_env(config_path: Path | None = None) -> Settings:
    """Settings of this process: its environment, plus the TOML file given with --config."""
    return load_settings(os.environ, config_path)


def _describe_validation_error(exc: msgspec.ValidationError) -> str:
    # msgspec says e.g. "Expected `int`, got `str` - at `$.webhook_tolerance_seconds`"
    message = str(exc)
    for env_name, field in _ENV_FIELDS.items():
        marker = f"$.{field}"
        if marker in message:
            detail = message.split(" - at ")[0]
            if field in _SECRET_FIELDS:
                detail = "invalid value"
            return f"{env_name}: {detail}"
    return f"invalid setting: {message}"
