"""`doctor`'s forwarding section: each destination's state, and whether its host answers.

Per configured destination, from the loaded Settings: its state in Redis (the store's
`counts()` and `destination_state()`: disabled, failing, dead letters, a backlog; or OK
with its pending count), then whether its host accepts a TCP connection (and a TLS
handshake for https) within a few seconds. Nothing is sent to the destination. A
destination is shown by its name and `scheme://host:port/path`: never a secret, nor the
user name, password, query or fragment of its URL; errors are shown by their class only.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

import httpx
from redis.exceptions import RedisError

from handlers.forwarding.sender import environment_proxy
from receiver.cli.doctor import Check, _fail, _ok, _warn
from receiver.forward_config import ForwardDestination
from receiver.settings import Settings

# A backlog older than this is worth a look (the TikTokForwardBacklog alert fires at 30 min).
PENDING_WARN_SECONDS: Final = 15 * 60
CONNECT_TIMEOUT_SECONDS: Final = 3.0
CLI: Final = "tiktok-webhooks forward"

# name -> (counts(), destination_state()), or the class name of the Redis error.
States = dict[str, tuple[dict[str, Any], dict[str, str]]] | str


def span(seconds: float) -> str:
    """A duration for people: 45 s, 12 min, 5.5 h, 3.2 d."""
    whole = max(0, int(seconds))
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{whole // 60} min"
    if whole < 2 * 86400:
        return f"{whole / 3600:.1f} h"
    return f"{whole / 86400:.1f} d"


def _since(now: float, stamp: str | None) -> str | None:
    """How long ago a stored unix time was; None when there is none (or it is not a number)."""
    try:
        return span(now - float(stamp)) if stamp else None
    except ValueError:
        return None


def _parts(url: str) -> tuple[SplitResult, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    return parts, port


def shown_url(url: str) -> str:
    """`scheme://host:port/path` of a destination's URL: no credentials, query or fragment."""
    parts, port = _parts(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port if port is not None else '?'}{parts.path}"


def state_checks(
    name: str, counts: dict[str, Any], state: dict[str, str], *, now: float
) -> list[Check]:
    """What the stored state of destination `name` calls for: a FAIL when it is disabled,
    a WARN for each of failing, dead letters, held deliveries and an old backlog, or OK."""
    check = f"forward {name}"
    pending, dead, held = int(counts["pending"]), int(counts["dead"]), int(counts["held"])
    replay = f"`{CLI} replay --destination {name} --since T`"
    found: list[Check] = []
    disabled = bool(counts["disabled"] or "disabled_at" in state)
    if disabled:
        since = _since(now, state.get("disabled_at"))
        when = f" {since} ago" if since else ""
        reason = state.get("disabled_reason") or "no reason recorded"
        found.append(
            _fail(
                check,
                f"disabled{when} ({reason}); {held} event(s) held, not sent; once it works: "
                f"`{CLI} enable {name}` (it sends the held ones)",
            )
        )
    elif failing := _since(now, state.get("failing_since")):
        found.append(
            _warn(
                check,
                f"every attempt has failed for {failing} (it is disabled once that "
                f"reaches FORWARD_DISABLE_AFTER_SECONDS); the answers: "
                f"`{CLI} list --destination {name}`",
            )
        )
    if dead:
        found.append(
            _warn(
                check,
                f"{dead} dead letter(s) failed their last try: `{CLI} list --destination "
                f"{name} --state dead`; once it works, send them again with {replay}",
            )
        )
    if held and not disabled:
        found.append(
            _warn(
                check,
                f"{held} delivery(ies) held from while it was disabled: send them with "
                f"`{CLI} enable {name}`",
            )
        )
    oldest = counts.get("oldest_pending_at")
    if oldest is not None and now - float(oldest) > PENDING_WARN_SECONDS:
        found.append(
            _warn(
                check,
                f"the oldest of {pending} pending delivery(ies) has waited {span(now - oldest)}: "
                f"it fails or is slower than the events arrive; `{CLI} list --destination "
                f"{name} --state pending`",
            )
        )
    if not found:
        waiting = f", the oldest {span(now - oldest)} old" if oldest is not None else ""
        found.append(_ok(check, f"enabled, {pending} pending{waiting}"))
    return found


def reach_check(dest: ForwardDestination, *, timeout: float = CONNECT_TIMEOUT_SECONDS) -> Check:
    """Whether the destination's host accepts a connection (TLS handshake for https, with
    the trust store the worker's HTTP client uses). Nothing is sent. WARN, never FAIL:
    deliveries wait and retry."""
    check = f"forward {dest.name} reach"
    shown = shown_url(dest.url)
    parts, port = _parts(dest.url)
    host = parts.hostname
    if port is None or not host:
        return _warn(check, f"{shown}: the URL has no usable host and port")
    tls = parts.scheme == "https"
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if tls:
                # The same trust store (and SSL_CERT_FILE) as the worker's httpx client.
                with httpx.create_ssl_context().wrap_socket(sock, server_hostname=host):
                    pass
    except OSError as exc:  # refused, timed out, no such host, certificate: all OSError
        proxy = (
            f"; the worker goes through the proxy in {parts.scheme.upper()}_PROXY/ALL_PROXY "
            "and may reach it, this check connects directly"
            if environment_proxy(dest.url) is not None
            else ""
        )
        what = "connect and complete a TLS handshake" if tls else "connect"
        return _warn(
            check,
            f"{shown}: cannot {what} within {timeout:g} s: {type(exc).__name__} (deliveries "
            f"wait and retry; check the URL, DNS and firewalls{proxy})",
        )
    took = (time.monotonic() - started) * 1000
    what = "a TCP connection and a TLS handshake" if tls else "a TCP connection"
    return _ok(check, f"{shown} accepts {what} ({took:.0f} ms; nothing sent)")


async def _read_states(settings: Settings) -> States:
    from handlers.forwarding.store import DeliveryStore
    from receiver.redis_conn import create_redis

    redis = create_redis(settings)
    try:
        store = DeliveryStore(redis)
        return {
            dest.name: (await store.counts(dest.name), await store.destination_state(dest.name))
            for dest in settings.forward_destinations
        }
    except (RedisError, OSError, ValueError) as exc:
        return type(exc).__name__
    finally:
        await redis.aclose()


def _destination(dest: ForwardDestination, states: States, now: float) -> Iterator[Check]:
    if isinstance(states, str):
        yield Check(
            f"forward {dest.name}",
            True,
            f"state not read: Redis is unreachable ({states}; see `redis` above)",
            skipped=True,
        )
    else:
        counts, state = states[dest.name]
        yield from state_checks(dest.name, counts, state, now=now)
    yield reach_check(dest)


def forwarding_checks(settings: Settings | None) -> list[Check]:
    if settings is None:
        return [
            Check(
                "forwarding",
                True,
                "not checked: the settings do not load (see `settings` above)",
                skipped=True,
            )
        ]
    if not settings.forward_destinations:
        return [
            _ok(
                "forwarding",
                "off: no destination (to turn it on, set FORWARD_URL and FORWARD_SECRET, or "
                "add [[forward]] tables to the --config file; docs/forwarding.md)",
            )
        ]
    states = asyncio.run(_read_states(settings))
    now = time.time()
    return [c for dest in settings.forward_destinations for c in _destination(dest, states, now)]
