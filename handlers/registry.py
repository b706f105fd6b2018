"""Which handlers run for which event: a table filled with a decorator.

    from handlers import registry

    @registry.on("video.publish.completed")
    async def tell_the_team(event, ctx):
        ...

A company's own handlers live in its modules, named in WORKER_HANDLER_MODULES so the
worker imports them at start-up; the dispatcher never has to change. Several handlers
may listen to one event; each runs once per delivery, also across retries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import msgspec

from receiver.ingest.events import KNOWN_EVENTS

if TYPE_CHECKING:
    from handlers.context import HandlerContext
    from receiver.ingest.events import WebhookEvent

HandlerFunc = Callable[["WebhookEvent", "HandlerContext"], Awaitable[Any]]
UNKNOWN: Final = "*unknown*"
ANY: Final = "*any*"


class Handler(msgspec.Struct, frozen=True):
    name: str
    func: HandlerFunc


class HandlerRegistry:
    def __init__(self) -> None:
        self._by_event: dict[str, list[Handler]] = {}

    def on(self, *events: str, name: str | None = None) -> Callable[[HandlerFunc], HandlerFunc]:
        """Register the decorated coroutine for `events` (event names, or ANY / UNKNOWN)."""
        if not events:
            raise ValueError("name at least one event")

        def decorate(func: HandlerFunc) -> HandlerFunc:
            handler = Handler(name or f"{func.__module__}.{func.__qualname__}", func)
            for event in events:
                listeners = self._by_event.setdefault(event, [])
                if any(h.name == handler.name for h in listeners):
                    raise ValueError(f"handler {handler.name!r} is already registered for {event}")
                listeners.append(handler)
            return func

        return decorate

    def on_unknown(self, name: str | None = None) -> Callable[[HandlerFunc], HandlerFunc]:
        """Register for event names this version does not know (TikTok adds events)."""
        return self.on(UNKNOWN, name=name)

    def on_any(self, name: str | None = None) -> Callable[[HandlerFunc], HandlerFunc]:
        return self.on(ANY, name=name)

    def handlers_for(self, event: str) -> list[Handler]:
        key = event if event in KNOWN_EVENTS or event in self._by_event else UNKNOWN
        return [*self._by_event.get(key, ()), *self._by_event.get(ANY, ())]

    def entries(self) -> list[tuple[Handler, list[str]]]:
        """Every handler once, in registration order, with the events it listens to."""
        found: dict[str, tuple[Handler, list[str]]] = {}
        for event, listeners in self._by_event.items():
            for handler in listeners:
                found.setdefault(handler.name, (handler, []))[1].append(event)
        return list(found.values())

    def remove(self, name: str) -> None:
        """Unregister a handler everywhere (tests, or replacing a built-in)."""
        for listeners in self._by_event.values():
            listeners[:] = [h for h in listeners if h.name != name]

    def names(self) -> set[str]:
        """The names of every registered handler."""
        return {h.name for listeners in self._by_event.values() for h in listeners}

    def copy(self) -> HandlerRegistry:
        clone = HandlerRegistry()
        clone._by_event = {event: list(hs) for event, hs in self._by_event.items()}
        return clone


registry: Final = HandlerRegistry()
