"""`WebhookTester`: post deliveries to the receiver app, drain the worker, see what ran."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from handlers.context import HandlerOutcome
from handlers.registry import HandlerRegistry
from handlers.worker import create_worker
from receiver.settings import Settings
from receiver.testing.deliveries import Delivery, load_jsonl, make_delivery

WEBHOOK_PATH = "/webhooks/tiktok"


class HandlerNeverRan(AssertionError):
    """An `Outcomes` question about a handler that did not run at all."""


@dataclass(frozen=True)
class Outcomes:
    """What the handlers did with the delivered events (results or errors)."""

    items: tuple[HandlerOutcome, ...]

    def of(self, handler: str) -> list[HandlerOutcome]:
        return [o for o in self.items if o.handler == handler]

    def succeeded(self, handler: str) -> bool:
        """True if every run of `handler` succeeded; HandlerNeverRan if it did not run."""
        return all(o.ok for o in self._runs(handler))

    def results(self, handler: str) -> list[Any]:
        """What the successful runs of `handler` returned; HandlerNeverRan if it did not run."""
        return [o.result for o in self._runs(handler) if o.ok]

    def _runs(self, handler: str) -> list[HandlerOutcome]:
        runs = self.of(handler)
        if not runs:
            ran = sorted({o.handler for o in self.items})
            raise HandlerNeverRan(
                f"handler {handler!r} never ran; the handlers that ran: "
                f"{', '.join(ran) or 'none'} (is its module imported, is it registered for "
                "this event, and is the name the one given to @registry.on(..., name=)?)"
            )
        return runs

    def errors(self) -> list[HandlerOutcome]:
        return [o for o in self.items if not o.ok]


class WebhookTester:
    """The receiver app in-process (with its Redis) and a burst-mode worker."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        app = settings.primary_app
        self.client_key = app.client_key
        self.secret = app.client_secrets[0].reveal()

    def make_delivery(
        self, event: str, content: dict[str, Any] | str | None = None, **options: Any
    ) -> Delivery:
        """A delivery for this app, signed with its secret (see `make_delivery`)."""
        options.setdefault("client_key", self.client_key)
        options.setdefault("secret", self.secret)
        return make_delivery(event, content, **options)

    def corpus(self, path: Path | None = None) -> list[Delivery]:
        """A JSONL file's deliveries (default: the shipped example corpus), addressed to
        this app and signed afresh."""
        if path is None:
            from receiver.corpus import corpus_path

            path = corpus_path()
        return list(load_jsonl(path, secret=self.secret, client_key=self.client_key))

    async def post(self, delivery: Delivery) -> httpx.Response:
        return await self.client.post(WEBHOOK_PATH, content=delivery.body, headers=delivery.headers)

    async def drain(self, registry: HandlerRegistry | None = None) -> Outcomes:
        """Run a real arq worker in burst mode until the queue is empty."""
        return Outcomes(tuple(await drain_worker(self.settings, registry)))

    async def deliver(
        self,
        *deliveries: Delivery | Iterable[Delivery],
        registry: HandlerRegistry | None = None,
    ) -> Outcomes:
        """POST every delivery (each must get 200), then drain the worker."""
        for delivery in _flatten(deliveries):
            response = await self.post(delivery)
            if response.status_code != 200:
                raise AssertionError(
                    f"the receiver answered {response.status_code}: {response.text}"
                )
        return await self.drain(registry)


async def drain_worker(
    settings: Settings, registry: HandlerRegistry | None = None
) -> list[HandlerOutcome]:
    """Run a real arq worker in burst mode until the queue is empty; what each handler did."""
    recorder: list[HandlerOutcome] = []
    worker = create_worker(
        settings,
        handler_registry=registry,
        burst=True,
        handle_signals=False,
        recorder=recorder,
        with_crons=False,
    )
    try:
        await worker.main()
    finally:
        # arq's close() calls redis-py's deprecated close(): the warning is arq's to fix,
        # and must not fail a suite that turns warnings into errors.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await worker.close()
    return recorder


def _flatten(items: Sequence[Delivery | Iterable[Delivery]]) -> list[Delivery]:
    flat: list[Delivery] = []
    for item in items:
        if isinstance(item, Delivery):
            flat.append(item)
        else:
            flat.extend(item)
    return flat
