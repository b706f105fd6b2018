"""Internal API routes for what the worker fetched after events, and data requests.

    GET  /internal/publishes/{publish_id}
    GET  /internal/users/{open_id}/videos
    GET  /internal/users/{open_id}/data-requests
    POST /internal/users/{open_id}/data-requests   {"categories": [...], "format": "json"}

Records are keyed by app as well as id: `?client_key=` may be left out when one app is
configured and is required with several. Ids are JSON strings in every answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver import fetched
from receiver.apps import AppChoiceError, choose_app
from receiver.tiktok.errors import InvalidGrant, RateLimited, ScopeNotAuthorized, TikTokError
from receiver.tiktok.portability import CATEGORIES, add_data_request
from receiver.vault.services import TokenServices
from receiver.vault.vault import ReauthorizationRequired, TokenNotFound, VaultError

logger = logging.getLogger("tiktok_webhooks.internal_api")

_NO_STORE: Final = {"Cache-Control": "no-store"}
_MAX_BODY: Final = 16 * 1024
Handler = Callable[[Request, TokenServices], Awaitable[Response]]
Guard = Callable[[Handler], Callable[[Request], Awaitable[Response]]]

Category = Literal["all_data", "video", "profile", "activity", "direct_message"]


class NewDataRequest(msgspec.Struct, forbid_unknown_fields=True):
    categories: Annotated[list[Category], msgspec.Meta(min_length=1, max_length=len(CATEGORIES))]
    format: Literal["json", "text"] = "json"


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": code, "message": message}, status_code=status, headers={**_NO_STORE, **headers}
    )


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        msgspec.json.encode(data),
        status_code=status,
        media_type="application/json",
        headers=_NO_STORE,
    )


def _app(request: Request, services: TokenServices) -> str | Response:
    try:
        return choose_app(list(services.vaults), request.query_params.get("client_key"))
    except AppChoiceError as exc:
        given = request.query_params.get("client_key")
        return _error(
            404 if given else 400, "unknown_app" if given else "client_key_required", str(exc)
        )


async def publish(request: Request, services: TokenServices) -> Response:
    client_key = _app(request, services)
    if isinstance(client_key, Response):
        return client_key
    found = await fetched.publish_view(
        services.redis, client_key, request.path_params["publish_id"]
    )
    if found is None:
        return _error(404, "not_found", "nothing recorded for this publish_id")
    return _json(found)


async def videos(request: Request, services: TokenServices) -> Response:
    client_key = _app(request, services)
    if isinstance(client_key, Response):
        return client_key
    open_id = request.path_params["open_id"]
    found = await fetched.list_videos(services.redis, client_key, open_id)
    return _json({"client_key": client_key, "open_id": open_id, "videos": found})


async def data_requests(request: Request, services: TokenServices) -> Response:
    client_key = _app(request, services)
    if isinstance(client_key, Response):
        return client_key
    open_id = request.path_params["open_id"]
    found = await fetched.list_data_requests(services.redis, client_key, open_id)
    return _json({"client_key": client_key, "open_id": open_id, "data_requests": found})


async def start_data_request(request: Request, services: TokenServices) -> Response:
    client_key = _app(request, services)
    if isinstance(client_key, Response):
        return client_key
    open_id = request.path_params["open_id"]
    body = await request.body()
    if len(body) > _MAX_BODY:
        return _error(413, "too_large", "the body is too large")
    try:
        wanted = msgspec.json.decode(body, type=NewDataRequest)
    except msgspec.ValidationError as exc:
        return _error(400, "invalid_body", f"{exc}; categories: {', '.join(CATEGORIES)}")
    except msgspec.DecodeError:
        return _error(
            400, "invalid_body", 'send JSON: {"categories": ["all_data"], "format": "json"}'
        )
    vault = services.vault(client_key)
    client = services.client(client_key)
    assert vault is not None
    assert client is not None
    categories: list[str] = list(dict.fromkeys(wanted.categories))
    try:
        token = await vault.get_valid_access_token(open_id)
        request_id = await add_data_request(client, token, categories, wanted.format)
    except TokenNotFound:
        return _error(404, "not_connected", "this user has no stored tokens")
    except (ReauthorizationRequired, InvalidGrant):
        return _error(409, "needs_reauth", "the user must connect the account again")
    except ScopeNotAuthorized as exc:
        return _error(409, "not_permitted", f"the user did not grant a portability scope: {exc}")
    except (TikTokError, VaultError) as exc:
        return _upstream(exc)
    record = await fetched.save_data_request(
        services.redis,
        fetched.DataRequest(
            client_key=client_key,
            request_id=request_id,
            open_id=open_id,
            categories=categories,
            data_format=wanted.format,
            status="requested",
            requested_at=time.time(),
        ),
    )
    logger.info("started data request %s for user %s", request_id, open_id)
    return _json(record, status=201)


def _upstream(exc: TikTokError | VaultError) -> Response:
    if exc.is_retryable:
        wait = int(exc.retry_after) if isinstance(exc, RateLimited) else 5
        return _error(503, "tiktok_unavailable", str(exc), **{"Retry-After": str(max(1, wait))})
    body: dict[str, Any] = {"error": "tiktok_error", "message": str(exc)}
    if isinstance(exc, TikTokError):
        body.update(tiktok_error=exc.code, log_id=exc.log_id, hint=exc.hint)
    return JSONResponse(body, status_code=502, headers=_NO_STORE)


def routes(prefix: str, guard: Guard) -> list[Route]:
    return [
        Route(f"{prefix}/publishes/{{publish_id}}", guard(publish), methods=["GET"]),
        Route(f"{prefix}/users/{{open_id}}/videos", guard(videos), methods=["GET"]),
        Route(f"{prefix}/users/{{open_id}}/data-requests", guard(data_requests), methods=["GET"]),
        Route(
            f"{prefix}/users/{{open_id}}/data-requests",
            guard(start_data_request),
            methods=["POST"],
        ),
    ]
