"""The admin API of webhooks: trigger an event, read the delivery log, redeliver.

Triggering records the event in the outbox (`GET /sandbox/events`); the state turns it
into a delivery, which the sender (`sandbox.webhooks`) POSTs in the background: the
handler answers 202 with the delivery at once and never waits for it.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tiktok_sandbox.admin import admin, read_json, user_or_404
from tiktok_sandbox.config import AppConfig
from tiktok_sandbox.delivery_log import STATUSES, DeliveryDetail
from tiktok_sandbox.errors import AdminError
from tiktok_sandbox.examples import DEFAULT_CONTENT
from tiktok_sandbox.simulated import json_response
from tiktok_sandbox.state import SandboxState

NO_CALLBACK = "no_callback_url"


class TriggerSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /sandbox/webhooks`: any event of the contract, or a custom one."""

    event: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    client_key: str | None = None  # None: the only app, or the only one with a callback URL
    open_id: str | None = None  # None: no `user_openid` in the envelope
    # An object is serialized; a string is sent as it is (even if it is not JSON).
    # None: the contract's example content of the event ({} for unknown events).
    content: dict[str, Any] | str | None = None
    create_time: int | None = None  # None: the sandbox clock, in seconds


def _app_for(state: SandboxState, client_key: str | None) -> AppConfig:
    if client_key is None:
        apps = state.apps()
        if len(apps) == 1:
            return apps[0]
        listening = [app for app in apps if app.callback_url is not None]
        if len(listening) != 1:
            raise AdminError(
                400,
                "invalid_params",
                "client_key is required when several apps are registered "
                "and not exactly one has a callback URL.",
            )
        return listening[0]
    app = state.app(client_key)
    if app is None:
        raise AdminError(404, "not_found", f"No app has client_key {client_key!r}.")
    return app


def _no_callback(app: AppConfig) -> AdminError:
    return AdminError(
        409,
        NO_CALLBACK,
        f"App {app.client_key!r} has no callback URL: set one with "
        f"PUT /sandbox/apps/{app.client_key}/callback.",
    )


def _trigger(state: SandboxState, spec: TriggerSpec, open_id: str | None) -> Response:
    app = _app_for(state, spec.client_key)
    if app.callback_url is None:
        raise _no_callback(app)
    content = spec.content if spec.content is not None else DEFAULT_CONTENT.get(spec.event, {})
    event = state.outbox.emit(
        client_key=app.client_key,
        event=spec.event,
        open_id=open_id,
        content=content,
        now=state.now(),
        create_time=spec.create_time,
    )
    delivery = state.deliveries.for_event(event.seq)
    if delivery is None:  # the callback URL was removed meanwhile
        raise _no_callback(app)
    return json_response(delivery, 202)


def _delivery_or_404(state: SandboxState, request: Request) -> DeliveryDetail:
    delivery_id: int = request.path_params["delivery_id"]
    delivery = state.deliveries.get(delivery_id)
    if delivery is None:
        raise AdminError(404, "not_found", f"No delivery has id {delivery_id}.")
    return delivery


@admin
async def trigger(request: Request, state: SandboxState) -> Response:
    """Raise an event and send it as a webhook; 202 + the delivery (its `id`)."""
    spec = await read_json(request, TriggerSpec)
    return _trigger(state, spec, spec.open_id)


@admin
async def trigger_for_user(request: Request, state: SandboxState) -> Response:
    """`POST /sandbox/webhooks` with `open_id` taken from the path (a sandbox user)."""
    user = user_or_404(state, request.path_params["open_id"])
    spec = await read_json(request, TriggerSpec)
    if spec.open_id is not None and spec.open_id != user.open_id:
        raise AdminError(400, "invalid_params", "open_id in the body differs from the path.")
    return _trigger(state, spec, user.open_id)


@admin
async def list_deliveries(request: Request, state: SandboxState) -> Response:
    """Oldest first; `?status=&event=&open_id=&client_key=&since=<id>` narrow it."""
    query = request.query_params
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise AdminError(400, "invalid_params", f"status must be one of {sorted(STATUSES)}.")
    try:
        since = int(query.get("since", "0"))
    except ValueError:
        raise AdminError(400, "invalid_params", "since must be an integer.") from None
    deliveries = state.deliveries.list(
        status=status,
        event=query.get("event"),
        open_id=query.get("open_id"),
        client_key=query.get("client_key"),
        since=since,
    )
    return json_response({"deliveries": deliveries})


@admin
async def clear_deliveries(request: Request, state: SandboxState) -> Response:
    """Forget every delivery; pending ones are not retried any more."""
    return json_response({"cleared": state.deliveries.clear()})


@admin
async def get_delivery(request: Request, state: SandboxState) -> Response:
    return json_response(_delivery_or_404(state, request))


@admin
async def redeliver(request: Request, state: SandboxState) -> Response:
    """Send the same body again as a new delivery (`redelivery_of`), with its own retries."""
    source = _delivery_or_404(state, request)
    app = _app_for(state, source.client_key)
    if app.callback_url is None:
        raise _no_callback(app)
    delivery = state.deliveries.redeliver(source.id)
    if delivery is None:  # cleared meanwhile
        raise AdminError(404, "not_found", f"No delivery has id {source.id}.")
    return json_response(delivery, 202)


ROUTES = [
    Route("/sandbox/webhooks", trigger, methods=["POST"]),
    Route("/sandbox/webhooks", list_deliveries, methods=["GET"]),
    Route("/sandbox/webhooks", clear_deliveries, methods=["DELETE"]),
    Route("/sandbox/webhooks/{delivery_id:int}", get_delivery, methods=["GET"]),
    Route("/sandbox/webhooks/{delivery_id:int}/redeliver", redeliver, methods=["POST"]),
    Route("/sandbox/users/{open_id}/events", trigger_for_user, methods=["POST"]),
]
