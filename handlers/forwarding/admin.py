"""What the CLI and the internal API do with forwarding: views, retry, replay, enable.

Views never include a secret or the destination's URL credentials: a destination is
shown by its name; a delivery by its id, event, state and attempts (the body is the
payload the destination receives, which holds no token).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

import msgspec

from handlers.forwarding.store import STATES, DeliveryStore
from receiver.settings import Settings


def parse_time(text: str) -> float:
    """Unix seconds, or ISO-8601 (a time without a zone is UTC); ValueError otherwise."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither unix seconds nor ISO-8601 (e.g. 2026-12-01T09:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


async def delivery_view(store: DeliveryStore, delivery: str) -> dict[str, Any] | None:
    record = await store.get(delivery)
    if record is None:
        return None
    view: dict[str, Any] = msgspec.to_builtins(record)
    view["attempts"] = [msgspec.to_builtins(a) for a in await store.attempts(delivery)]
    body = await store.body(delivery)
    view["payload"] = msgspec.json.decode(body) if body else None
    return view


async def list_view(
    store: DeliveryStore, *, limit: int, destination: str | None, state: str | None
) -> list[dict[str, Any]]:
    if state is not None and state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}")
    found = await store.recent(limit=limit, destination=destination, state=state)
    return [msgspec.to_builtins(d) for d in found]


async def destinations_view(settings: Settings, store: DeliveryStore) -> list[dict[str, Any]]:
    views = []
    now = time.time()
    for dest in settings.forward_destinations:
        counts = await store.counts(dest.name)
        state = await store.destination_state(dest.name)
        oldest = counts.pop("oldest_pending_at")
        views.append(
            {
                "name": dest.name,
                "events": list(dest.events),
                "client_keys": list(dest.client_keys) or None,
                "secrets": len(dest.secrets),
                **counts,
                "oldest_pending_age_seconds": round(now - oldest, 1) if oldest else None,
                "disabled_reason": state.get("disabled_reason"),
                "failing_since": float(state["failing_since"])
                if "failing_since" in state
                else None,
            }
        )
    return views


async def enable(
    store: DeliveryStore, destination: str, progress: Callable[[int, int], None] | None = None
) -> tuple[bool, int]:
    """Enable `destination` and send its held deliveries now (with a fresh retry
    schedule each): (whether it was disabled, how many held deliveries were released)."""
    was_disabled = await store.enable(destination)
    return was_disabled, await store.release_held(destination, progress)


async def replay(
    store: DeliveryStore, *, since: float, until: float, destination: str | None
) -> list[str]:
    """Send now every delivery created in [since, until] that has not succeeded yet."""
    requeued = []
    for delivery in await store.ids_between(since, until, destination=destination, unfinished=True):
        if await store.requeue(delivery, only_unfinished=True):
            requeued.append(delivery)
    return requeued
