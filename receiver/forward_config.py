"""Forwarding destinations: the `[[forward]]` tables and FORWARD_URL / FORWARD_SECRET.

A destination is a URL of the company's own service that receives every matching
TikTok event as a Standard Webhooks request, signed with its `whsec_` secrets (several
during a rotation, newest first; every one signs). Parsed and checked here, at start-up,
with every problem reported like the other settings.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
import secrets
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from receiver.secrets import Secret

SECRET_PREFIX: Final = "whsec_"
DEFAULT_NAME: Final = "default"
# First attempt at once, then these waits (TikTok's own schedule has the same shape).
DEFAULT_RETRY_SCHEDULE: Final = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ForwardDestination(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    url: str
    secrets: tuple[Secret, ...]
    events: tuple[str, ...] = ("*",)
    client_keys: tuple[str, ...] = ()  # empty: every app
    timeout_seconds: float = 10.0
    rate_per_second: float = 0.0  # 0: no limit
    concurrency: int = 10  # requests in flight per worker process

    def matches(self, event: str, client_key: str) -> bool:
        if self.client_keys and client_key not in self.client_keys:
            return False
        return any(fnmatch.fnmatchcase(event, pattern) for pattern in self.events)

    def secret_keys(self) -> list[bytes]:
        """The HMAC keys: the base64-decoded part of each `whsec_` secret."""
        return [secret_bytes(s.reveal()) for s in self.secrets]


def generate_secret(size: int = 32) -> str:
    """A new Standard Webhooks secret: `whsec_` and base64 of `size` random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(size)).decode()


def secret_bytes(value: str) -> bytes:
    """The key bytes of a `whsec_` secret; ValueError when it is not one."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError("does not start with whsec_")
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64 after whsec_") from None
    if len(key) < 16:
        raise ValueError("is shorter than 16 bytes")
    return key


def parse_duration(text: str) -> float:
    """`5s`, `5m`, `2h`, `1d`, `250ms` or plain seconds; ValueError otherwise."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ValueError(f"{text.strip()!r} is not a duration like 5s, 30m or 2h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


def parse_schedule(raw: Any, problems: list[str]) -> tuple[float, ...]:
    """FORWARD_RETRY_SCHEDULE: the waits before each retry, comma-separated or a list."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        problems.append("FORWARD_RETRY_SCHEDULE must be a comma-separated list like 5s,5m,30m")
        return DEFAULT_RETRY_SCHEDULE
    waits: list[float] = []
    for item in items:
        try:
            waits.append(float(item) if isinstance(item, int | float) else parse_duration(item))
        except (ValueError, TypeError) as exc:
            problems.append(f"FORWARD_RETRY_SCHEDULE: {exc}")
            return DEFAULT_RETRY_SCHEDULE
    return tuple(waits)


def _secrets(where: str, raw: Any, problems: list[str]) -> tuple[Secret, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        problems.append(f"{where}: `secrets` must be a list of whsec_ strings")
        return ()
    found = tuple(Secret(i.strip()) for i in items if i.strip())
    if not found:
        problems.append(f"{where}: needs a secret; make one with `tiktok-webhooks forward keygen`")
    for index, secret in enumerate(found):
        try:
            secret_bytes(secret.reveal())
        except ValueError as exc:
            # Never echo the value: say which one and why.
            problems.append(
                f"{where}: secret #{index + 1} {exc}; make one with "
                "`tiktok-webhooks forward keygen`"
            )
    return found


def _strings(where: str, key: str, raw: Any, problems: list[str]) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        problems.append(f"{where}: `{key}` must be a list of strings")
        return ()
    return tuple(i.strip() for i in items if i.strip())


_TABLE_KEYS: Final = frozenset(
    {
        "name",
        "url",
        "secrets",
        "events",
        "client_keys",
        "timeout_seconds",
        "rate_per_second",
        "concurrency",
    }
)


def _destination(where: str, entry: dict[str, Any], problems: list[str]) -> ForwardDestination:
    for key in sorted(entry.keys() - _TABLE_KEYS):
        problems.append(f"{where}: unknown key {key!r}")
    values: dict[str, Any] = {
        "name": entry.get("name"),
        "url": entry.get("url"),
        "secrets": _secrets(where, entry.get("secrets", []), problems),
    }
    for key in ("events", "client_keys"):
        if key in entry:
            values[key] = _strings(where, key, entry[key], problems)
    for key in ("timeout_seconds", "rate_per_second", "concurrency"):
        if key in entry:
            values[key] = entry[key]
    if "events" in values and not values["events"]:
        values["events"] = ("*",)
    try:
        return msgspec.convert(values, ForwardDestination, strict=False)
    except msgspec.ValidationError as exc:
        detail = str(exc).replace("$.", "")
        problems.append(f"{where}: {detail}")
        return ForwardDestination(name=str(entry.get("name", "?")), url="", secrets=())


def collect_destinations(
    environ: Mapping[str, str], file_data: dict[str, Any], problems: list[str]
) -> list[ForwardDestination]:
    """Destinations from `[[forward]]` (removed from `file_data`) and FORWARD_URL/SECRET."""
    found: list[ForwardDestination] = []
    raw = file_data.pop("forward", [])
    if not isinstance(raw, list):
        problems.append("`forward` in the config file must be an array of tables ([[forward]])")
        raw = []
    for index, entry in enumerate(raw):
        where = f"config [[forward]] #{index + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        found.append(_destination(where, entry, problems))
    url = environ.get("FORWARD_URL", "").strip()
    if url:
        from_env: dict[str, Any] = {
            "name": DEFAULT_NAME,
            "url": url,
            "secrets": environ.get("FORWARD_SECRET", ""),
        }
        if environ.get("FORWARD_EVENTS", "").strip():
            from_env["events"] = environ["FORWARD_EVENTS"]
        found.append(_destination("FORWARD_URL", from_env, problems))
    elif environ.get("FORWARD_SECRET", "").strip():
        problems.append("FORWARD_SECRET is set but FORWARD_URL is not")
    return found


def validate_destinations(
    destinations: tuple[ForwardDestination, ...], *, development: bool, problems: list[str]
) -> None:
    seen: set[str] = set()
    for dest in destinations:
        where = f"forward destination {dest.name!r}"
        if not _NAME.match(dest.name):
            problems.append(
                f"{where}: `name` must be lower-case letters, digits, '.', '_' or '-' "
                "(it is a metric label)"
            )
        if dest.name in seen:
            problems.append(f"{where} is configured twice")
        seen.add(dest.name)
        parts = urlsplit(dest.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"{where}: `url` must be an absolute https URL")
        elif parts.scheme == "http" and not development:
            problems.append(
                f"{where}: `url` must use https (http only with TIKTOK_WEBHOOKS_ENV=development)"
            )
        if dest.timeout_seconds <= 0:
            problems.append(f"{where}: `timeout_seconds` must be positive")
        if dest.rate_per_second < 0:
            problems.append(f"{where}: `rate_per_second` must be 0 (no limit) or positive")
        if dest.concurrency < 1:
            problems.append(f"{where}: `concurrency` must be at least 1")
