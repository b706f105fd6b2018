"""The internal API's forwarding routes: destinations, deliveries, retry and replay.

    GET  /internal/forward/destinations
    GET  /internal/forward/deliveries?destination=&state=&limit=
    GET  /internal/forward/deliveries/{id}            every attempt and the payload
    POST /internal/forward/deliveries/{id}/retry      send it again now
    POST /internal/forward/replay  {"since": T, "until": T?, "destination": N?}

T is unix seconds or ISO-8601. Behind the same Bearer ADMIN_TOKEN guard as the rest.
"""

from __future__ import annotations

import time
from typing import Final

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from handlers.forwarding import admin
from handlers.forwarding.store import DeliveryStore
from receiver.settings import Settings
from receiver.vault.services import TokenServices

_NO_STORE: Final = {"Cache-Control": "no-store"}
MAX_LIMIT: Final = 1000


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=_NO_STORE)


class ReplayRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    since: str | float
    until: str | float | None = None
    destination: str | None = None


class ForwardRoutes:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def destinations(self, request: Request, services: TokenServices) -> Response:
        store = DeliveryStore(services.redis)
        views = await admin.destinations_view(self.settings, store)
        return JSONResponse({"destinations": views}, headers=_NO_STORE)

    async def deliveries(self, request: Request, services: TokenServices) -> Response:
        params = request.query_params
        raw_limit = params.get("limit", "50")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            return _error(400, "bad_request", f"limit must be 1 to {MAX_LIMIT}")
        store = DeliveryStore(services.redis)
        try:
            rows = await admin.list_view(
                store,
                limit=int(raw_limit),
                destination=params.get("destination"),
                state=params.get("state"),
            )
        except ValueError as exc:
            return _error(400, "bad_request", str(exc))
        return JSONResponse({"deliveries": rows}, headers=_NO_STORE)

    async def delivery(self, request: Request, services: TokenServices) -> Response:
        store = DeliveryStore(services.redis)
        view = await admin.delivery_view(store, request.path_params["delivery_id"])
        if view is None:
            return _error(404, "not_found", "no such delivery")
        return JSONResponse(view, headers=_NO_STORE)

    async def retry(self, request: Request, services: TokenServices) -> Response:
        store = DeliveryStore(services.redis)
        if not await store.requeue(request.path_params["delivery_id"], only_unfinished=False):
            return _error(404, "not_found", "no such delivery")
        return JSONResponse({"requeued": True}, status_code=202, headers=_NO_STORE)

    async def replay(self, request: Request, services: TokenServices) -> Response:
        try:
            body = msgspec.json.decode(await request.body(), type=ReplayRequest)
            since = admin.parse_time(str(body.since))
            until = time.time() if body.until is None else admin.parse_time(str(body.until))
        except (msgspec.DecodeError, ValueError) as exc:
            return _error(400, "bad_request", f'send {{"since": T, "until": T?}}: {exc}')
        if body.destination is not None and not any(
            d.name == body.destination for d in self.settings.forward_destinations
        ):
            return _error(404, "unknown_destination", "no forward destination by that name")
        store = DeliveryStore(services.redis)
        sent = await admin.replay(store, since=since, until=until, destination=body.destination)
        return JSONResponse({"requeued": sent}, status_code=202, headers=_NO_STORE)
