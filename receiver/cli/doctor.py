"""`tiktok-webhooks doctor`: the troubleshooting list, run against the real configuration.

Each check reads the raw values (environment over the --config file), so one bad value
does not hide the others, then the network is tried: Redis, and TikTok's token endpoint
(unauthenticated, then with the client key and secret and a dummy code), and each
forwarding destination (receiver/cli/doctor_forwarding.py). One line per check, ``OK`` or
``FAIL`` with what to fix; exit status 1 if anything failed. ``WARN`` marks a setting that
works but weakens security or safety (a TLS check turned off, a Redis without
`maxmemory`), or a state to look at (dead letters); it does not fail the run.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import redis

from receiver.cli.verdict import serve_problems, worker_problems
from receiver.redis_conn import check_hostname
from receiver.secrets import Secret
from receiver.security_checks import security_warnings
from receiver.settings import (
    DEFAULT_API_BASE_URL,
    ConfigError,
    Settings,
    is_loopback_host,
    load_settings,
    redirect_uri_problem,
)
from receiver.tiktok.errors import InvalidClient
from receiver.vault.crypto import TokenCipher
from receiver.vault.services import MIN_ADMIN_TOKEN_LENGTH

# The scopes the contract names (tiktok-contract.md §2.1, §4) and the sandbox knows.
KNOWN_SCOPES: Final = frozenset(
    {
        "user.info.basic",
        "user.info.profile",
        "user.info.stats",
        "video.list",
        "video.upload",
        "video.publish",
    }
)
CALLBACK_PATH: Final = "/oauth/tiktok/callback"
DUMMY_CODE: Final = "tiktok-webhooks-doctor"
# TOML key -> environment name, for the values the doctor reads itself.
_TOML_NAMES: Final = {
    "redis_url": "REDIS_URL",
    "redis_timeout_seconds": "REDIS_TIMEOUT_SECONDS",
    "environment": "TIKTOK_WEBHOOKS_ENV",
    "tiktok_api_base_url": "TIKTOK_API_BASE_URL",
    "tiktok_redirect_uri": "TIKTOK_REDIRECT_URI",
    "tiktok_scopes": "TIKTOK_SCOPES",
    "token_encryption_keys": "TOKEN_ENCRYPTION_KEYS",
    "admin_token": "ADMIN_TOKEN",
}
# Names whose problems have a check of their own (not repeated by the `settings` check).
_COVERED: Final = (
    "TIKTOK_CLIENT_KEY",
    "TIKTOK_CLIENT_SECRET",
    "TIKTOK_REDIRECT_URI",
    "TIKTOK_SCOPES",
    "TOKEN_ENCRYPTION_KEYS",
    "ADMIN_TOKEN",
    "config file",
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False
    skipped: bool = False

    def line(self) -> str:
        label = (
            "SKIP" if self.skipped else "FAIL" if not self.ok else "WARN" if self.warning else "OK"
        )
        return f"{label:<4} {self.name}: {self.detail}"


def _warn(name: str, detail: str) -> Check:
    return Check(name, True, detail, warning=True)


def _ok(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def _fail(name: str, detail: str) -> Check:
    return Check(name, False, detail)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def raw_values(environ: Mapping[str, str], config_path: Path | None) -> tuple[dict[str, str], str]:
    """(environment name -> raw text, config file problem or "")."""
    raw: dict[str, str] = {}
    problem = ""
    if config_path is not None:
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            problem = f"{config_path} cannot be read: {type(exc).__name__}: {exc}"
            data = {}
        apps = data.get("apps")
        if isinstance(apps, list) and apps and isinstance(apps[0], dict):
            raw["TIKTOK_CLIENT_KEY"] = _text(apps[0].get("client_key", ""))
            raw["TIKTOK_CLIENT_SECRET"] = _text(apps[0].get("client_secret", ""))
        for key, name in _TOML_NAMES.items():
            if key in data:
                raw[name] = _text(data[key])
    for name in ("TIKTOK_CLIENT_KEY", "TIKTOK_CLIENT_SECRET", *_TOML_NAMES.values()):
        if name in environ:
            raw[name] = environ[name]
    return raw, problem


def _stray(value: str) -> str | None:
    if value != value.strip():
        return "has spaces or a line break at the start or end: remove them"
    if any(ch.isspace() for ch in value):
        return "contains white space: copy it again from the portal"
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return "is wrapped in quotes: remove them (env files take values literally)"
    return None


def _credentials(raw: dict[str, str]) -> Iterator[Check]:
    key = raw.get("TIKTOK_CLIENT_KEY", "")
    if not key.strip():
        yield _fail(
            "client key",
            "TIKTOK_CLIENT_KEY is not set: copy the Client key "
            "from the app's page in the TikTok developer portal",
        )
    else:
        problem = _stray(key)
        yield Check("client key", problem is None, f"TIKTOK_CLIENT_KEY {problem or 'is set'}")
    secrets = [s for s in raw.get("TIKTOK_CLIENT_SECRET", "").split(",") if s.strip()]
    if not secrets:
        yield _fail(
            "client secret",
            "TIKTOK_CLIENT_SECRET is not set: copy the "
            "Client secret from the TikTok developer portal",
        )
        return
    problems = [f"secret #{i} {p}" for i, s in enumerate(secrets, 1) if (p := _stray(s))]
    if key.strip() and any(s.strip() == key.strip() for s in secrets):
        problems.append("equals the client key: the secret is the other value in the portal")
    detail = "; ".join(problems) if problems else f"{len(secrets)} secret(s) set"
    yield Check("client secret", not problems, f"TIKTOK_CLIENT_SECRET {detail}")


def _redirect_uri(raw: dict[str, str]) -> Check:
    uri = raw.get("TIKTOK_REDIRECT_URI", "")
    if not uri.strip():
        return _ok("redirect uri", "not set: the OAuth routes are off")
    development = raw.get("TIKTOK_WEBHOOKS_ENV", "production").strip() == "development"
    problem = _stray(uri) or redirect_uri_problem(uri, development=development)
    if problem is None and not urlsplit(uri).path.endswith(CALLBACK_PATH):
        problem = (
            f"its path must end with {CALLBACK_PATH} (no trailing slash): the receiver's route"
        )
    if problem is None and len(uri) >= 512:
        problem = "TikTok allows at most 511 characters"
    if problem:
        return _fail("redirect uri", f"{problem} (TIKTOK_REDIRECT_URI)")
    return _ok("redirect uri", f"{uri} (register exactly this in the portal)")


def _scopes(raw: dict[str, str]) -> Check:
    scopes = [s.strip() for s in raw.get("TIKTOK_SCOPES", "user.info.basic").split(",")]
    scopes = [s for s in scopes if s]
    if not scopes:
        return _fail("scopes", "TIKTOK_SCOPES is empty: use e.g. user.info.basic")
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if unknown:
        return _fail(
            "scopes",
            f"unknown scope(s) {', '.join(map(repr, unknown))}: TIKTOK_SCOPES is comma-separated; "
            f"known: {', '.join(sorted(KNOWN_SCOPES))}",
        )
    return _ok("scopes", ",".join(scopes) + " (each must be enabled for the app)")


def _encryption_keys(raw: dict[str, str]) -> Check:
    keys = [k.strip() for k in raw.get("TOKEN_ENCRYPTION_KEYS", "").split(",") if k.strip()]
    if not keys:
        return _fail(
            "encryption keys",
            "TOKEN_ENCRYPTION_KEYS is not set: the worker and "
            "the OAuth routes need it; create one with `tiktok-webhooks keygen`",
        )
    try:
        cipher = TokenCipher([Secret(k) for k in keys])
    except ConfigError as exc:
        return _fail("encryption keys", "; ".join(exc.problems))
    return Check(
        "encryption keys", True, f"{len(keys)} key(s), current key id {cipher.current_key_id}"
    )


def _admin_token(raw: dict[str, str]) -> Check:
    token = raw.get("ADMIN_TOKEN", "")
    if not token.strip():
        return _ok("admin token", "not set: the internal API is off")
    if len(token.strip()) < MIN_ADMIN_TOKEN_LENGTH:
        return _fail(
            "admin token",
            f"ADMIN_TOKEN is shorter than "
            f"{MIN_ADMIN_TOKEN_LENGTH} characters: use `tiktok-webhooks keygen` output",
        )
    return _ok("admin token", "set: the internal API is on")


def _load(
    environ: Mapping[str, str], config_path: Path | None
) -> tuple[Settings | None, list[str]]:
    """The Settings `serve` and `worker` would load (None if they do not load), and what
    they would refuse."""
    try:
        settings = load_settings(environ, config_path)
    except ConfigError as exc:
        return None, exc.problems
    return settings, list(dict.fromkeys(serve_problems(settings) + worker_problems(settings)))


def _settings(settings: Settings | None, problems: list[str]) -> Iterator[Check]:
    """The verdict of `serve` and `worker` themselves on this configuration, then the
    settings that work but weaken security."""
    if problems:
        rest = [p for p in problems if not any(name in p for name in _COVERED)]
        for problem in rest:
            yield _fail("settings", problem)
        if not rest:
            yield _fail("settings", "`serve` and `worker` would refuse to start (see above)")
    else:
        yield _ok("settings", "`serve` and `worker` accept this configuration")
    if settings is None:
        return
    warnings = security_warnings(settings)
    url = urlsplit(settings.redis_url.reveal())
    if (
        url.scheme == "redis"
        and not settings.redis_sentinels
        and not is_loopback_host(url.hostname)
    ):
        warnings.append(
            f"REDIS_URL reaches {url.hostname} without TLS: the password and the tokens "
            "cross the network in clear; use rediss:// unless that network is private"
        )
    for warning in warnings:
        yield _warn("security", warning)
    if not warnings:
        yield _ok("security", "no weakened settings (TLS checks on, TikTok's https URLs)")


def _redis(raw: dict[str, str]) -> Iterator[Check]:
    told = "REDIS_URL" in raw
    url = raw.get("REDIS_URL", "redis://127.0.0.1:6379/0").strip()
    parts = urlsplit(url)
    where = parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"
    try:
        timeout = float(raw.get("REDIS_TIMEOUT_SECONDS", "2"))
        # Host name checked on rediss:// as the services do (options in the URL win).
        tls = {"ssl_check_hostname": check_hostname(url)} if parts.scheme == "rediss" else {}
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, **tls
        )
        try:
            client.ping()
            info: Any = client.info("server")
            memory: Any = client.info("memory")
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        # Messages name host and port, never the password; strip it anyway if one slipped in.
        text = str(exc).replace(parts.password, "***") if parts.password else str(exc)
        note = "" if told else " (REDIS_URL is not set: tried the default)"
        yield _fail(
            "redis",
            f"{where}{note}: {type(exc).__name__}: {text} (check REDIS_URL and that Redis is "
            "running)",
        )
        return
    note = "" if told else " (REDIS_URL is not set: the default)"
    yield _ok("redis", f"{where} answers (Redis {info.get('redis_version', '?')}){note}")
    yield redis_memory(memory)


def redis_memory(memory: Mapping[str, Any]) -> Check:
    """`maxmemory` and its policy, from INFO memory (CONFIG may be disabled on managed Redis)."""
    limit = int(memory.get("maxmemory", 0) or 0)
    policy = str(memory.get("maxmemory_policy", "?"))
    if policy != "noeviction":
        return _fail(
            "redis memory",
            f"maxmemory-policy is {policy}: a full Redis would evict queued jobs, dedupe keys "
            "or tokens; set maxmemory-policy noeviction (docs/operations.md)",
        )
    if limit == 0:
        return _warn(
            "redis memory",
            "no maxmemory: Redis grows until the machine runs out of memory; set maxmemory "
            "with maxmemory-policy noeviction (docs/operations.md)",
        )
    used = int(memory.get("used_memory", 0) or 0)
    return _ok(
        "redis memory",
        f"maxmemory {limit} bytes ({used * 100 // limit}% used), policy noeviction",
    )


def _tiktok(raw: dict[str, str]) -> Iterator[Check]:
    told = bool(raw.get("TIKTOK_API_BASE_URL", "").strip())
    base = raw.get("TIKTOK_API_BASE_URL", DEFAULT_API_BASE_URL).strip().rstrip("/")
    url = f"{base}/v2/oauth/token/"
    if not told and not raw.get("TIKTOK_CLIENT_KEY", "").strip():
        yield Check(
            "tiktok api",
            True,
            f"not contacted: no client key to check, and TIKTOK_API_BASE_URL is not set "
            f"(it would be TikTok's public API, {base})",
            skipped=True,
        )
        return
    headers = {"Cache-Control": "no-cache"}
    try:
        with httpx.Client(timeout=10, headers={"User-Agent": "tiktok-webhooks-doctor"}) as http:
            bare = http.post(url, data={}, headers=headers)
            body = _json(bare)
            if body is None or "error" not in body:
                yield _fail(
                    "tiktok api",
                    f"{url} answered HTTP {bare.status_code} without "
                    "TikTok's error JSON: check TIKTOK_API_BASE_URL",
                )
                return
            public = "" if told else " (TIKTOK_API_BASE_URL is not set: TikTok's public API)"
            yield _ok(
                "tiktok api",
                f"{url} answers (unauthenticated request: "
                f"{body['error']}, log_id {body.get('log_id', '-')}){public}",
            )
            key = raw.get("TIKTOK_CLIENT_KEY", "").strip()
            secret = raw.get("TIKTOK_CLIENT_SECRET", "").split(",")[0].strip()
            if not key or not secret:
                return
            form = {
                "client_key": key,
                "client_secret": secret,
                "grant_type": "authorization_code",
                "code": DUMMY_CODE,
                "redirect_uri": raw.get("TIKTOK_REDIRECT_URI", "").strip() or "https://invalid/",
            }
            answer = _json(http.post(url, data=form, headers=headers)) or {}
    except httpx.HTTPError as exc:
        yield _fail(
            "tiktok api",
            f"cannot reach {url}: {type(exc).__name__} (check "
            "network access, proxies and TIKTOK_API_BASE_URL)",
        )
        return
    error = answer.get("error")
    if error in ("invalid_client", "unauthorized_client"):
        yield _fail(
            "tiktok credentials",
            f"TikTok answered {error} (log_id "
            f"{answer.get('log_id', '-')}): {InvalidClient.default_hint}",
        )
    elif error:
        yield _ok(
            "tiktok credentials",
            f"client key and secret accepted (TikTok rejected only the dummy code: {error})",
        )
    else:
        yield _fail("tiktok credentials", "unexpected answer to a dummy code exchange")


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def run_checks(environ: Mapping[str, str], config_path: Path | None) -> list[Check]:
    raw, file_problem = raw_values(environ, config_path)
    checks: list[Check] = []
    if config_path is not None:
        checks.append(Check("config file", not file_problem, file_problem or str(config_path)))
    checks.extend(_credentials(raw))
    checks += [_redirect_uri(raw), _scopes(raw), _encryption_keys(raw), _admin_token(raw)]
    settings, problems = _load(environ, config_path)
    checks.extend(_settings(settings, problems))
    checks.extend(_redis(raw))
    checks.extend(_tiktok(raw))
    from receiver.cli.doctor_forwarding import forwarding_checks

    checks.extend(forwarding_checks(settings))
    return checks
