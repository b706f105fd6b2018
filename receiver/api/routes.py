"""The internal API for the company's own backend, on only when ADMIN_TOKEN is set.

Every route needs ``Authorization: Bearer <ADMIN_TOKEN>`` (compared in constant time).
`POST /internal/users/{open_id}/access-token` is the one place a token leaves the service;
everything else describes users without token values. Errors are JSON
``{"error": code, "message": text}``; a Redis outage or a TikTok hiccup is a 503.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver import users
from receiver.api import fetched_routes
from receiver.api.forwarding import ForwardRoutes
from receiver.api.user_view import describe_user
from receiver.apps import AppChoiceError, choose_app
from receiver.secrets import Secret
from receiver.settings import Settings
from receiver.status_store import KINDS, Kind, get_status
from receiver.tiktok.errors import InvalidGrant, RateLimited, TikTokError
from receiver.vault.services import TokenServices
from receiver.vault.vault import (
    CorruptRecord,
    ReauthorizationRequired,
    TokenNotFound,
    TokenStatus,
    TokenVault,
    VaultError,
)

logger = logging.getLogger("tiktok_webhooks.internal_api")

PREFIX: Final = "/internal"
_NO_STORE: Final = {"Cache-Control": "no-store"}
_RETRY_SECONDS: Final = 5
_KIND_BY_NAME: Final[dict[str, Kind]] = {kind: kind for kind in KINDS}

Handler = Callable[[Request, TokenServices], Awaitable[Response]]


def error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": code, "message": message}, status_code=status, headers={**_NO_STORE, **headers}
    )


class InternalApi:
    """Routes under /internal; `attach` gives them the lifespan's services."""

    def __init__(self, settings: Settings) -> None:
        assert settings.admin_token is not None
        self.settings = settings
        self._token: Secret = settings.admin_token
        self.services: TokenServices | None = None

    def attach(self, services: TokenServices | None) -> None:
        self.services = services

    def routes(self) -> list[Route]:
        return [
            Route(f"{PREFIX}/users/{{open_id}}", self._guard(self.user), methods=["GET"]),
            Route(
                f"{PREFIX}/users/{{open_id}}/access-token",
                self._guard(self.access_token),
                methods=["POST"],
            ),
            Route(
                f"{PREFIX}/users/{{open_id}}/refresh-profile",
                self._guard(self.refresh_profile),
                methods=["POST"],
            ),
            Route(f"{PREFIX}/status/{{kind}}/{{object_id}}", self._guard(self.status)),
            *fetched_routes.routes(PREFIX, self._guard),
            *self._forward_routes(),
        ]

    def _forward_routes(self) -> list[Route]:
        fwd = ForwardRoutes(self.settings)
        deliveries = f"{PREFIX}/forward/deliveries"
        return [
            Route(f"{PREFIX}/forward/destinations", self._guard(fwd.destinations)),
            Route(deliveries, self._guard(fwd.deliveries)),
            Route(f"{deliveries}/{{delivery_id}}", self._guard(fwd.delivery)),
            Route(f"{deliveries}/{{delivery_id}}/retry", self._guard(fwd.retry), methods=["POST"]),
            Route(f"{PREFIX}/forward/replay", self._guard(fwd.replay), methods=["POST"]),
        ]

    def _authorized(self, request: Request) -> bool:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        # Secret.__eq__ is constant time; compare even when the scheme is wrong.
        matches = self._token == presented.strip()
        return matches and scheme.lower() == "bearer"

    def _guard(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not self._authorized(request):
                return error(
                    401,
                    "unauthorized",
                    "send Authorization: Bearer <ADMIN_TOKEN>",
                    **{"WWW-Authenticate": 'Bearer realm="internal"'},
                )
            if self.services is None:
                return error(503, "unavailable", "the service is starting or stopping")
            try:
                return await handler(request, self.services)
            except (RedisError, OSError) as exc:
                logger.warning("internal API: Redis unavailable (%s)", type(exc).__name__)
                return error(503, "unavailable", "Redis is unreachable", **{"Retry-After": "5"})
            except CorruptRecord as exc:
                logger.error("internal API: %s", exc)
                return error(500, "corrupt_record", f"{exc}: check TOKEN_ENCRYPTION_KEYS")

        return endpoint

    def _vault(self, request: Request, services: TokenServices) -> TokenVault | Response:
        client_key = request.query_params.get("client_key")
        vault = services.vault(client_key)
        if vault is None:
            return error(404, "unknown_app", f"no app with client_key {client_key!r}")
        return vault

    async def user(self, request: Request, services: TokenServices) -> Response:
        vault = self._vault(request, services)
        if isinstance(vault, Response):
            return vault
        open_id = request.path_params["open_id"]
        view = await describe_user(services.redis, vault, open_id)
        if view is None:
            return error(404, "not_connected", "this user never connected (or was forgotten)")
        return JSONResponse(view, headers=_NO_STORE)

    async def access_token(self, request: Request, services: TokenServices) -> Response:
        vault = self._vault(request, services)
        if isinstance(vault, Response):
            return vault
        open_id = request.path_params["open_id"]
        try:
            token = await vault.get_valid_access_token(open_id)
        except TokenNotFound:
            return error(404, "not_connected", "this user has no stored tokens")
        except (ReauthorizationRequired, InvalidGrant):
            return error(409, "needs_reauth", "the user must connect the account again")
        except CorruptRecord:
            raise  # answered by the guard
        except (TikTokError, VaultError) as exc:
            return _upstream_error(exc)
        record = await vault.get(open_id)
        logger.info("handed out the access token of user %s", open_id)
        return JSONResponse(
            {
                "open_id": open_id,
                "access_token": token.reveal(),
                "token_type": "Bearer",
                "expires_at": record.expires_at if record is not None else None,
                "scopes": list(record.scopes) if record is not None else [],
            },
            headers=_NO_STORE,
        )

    async def refresh_profile(self, request: Request, services: TokenServices) -> Response:
        vault = self._vault(request, services)
        if isinstance(vault, Response):
            return vault
        open_id = request.path_params["open_id"]
        record = await vault.get(open_id)
        if record is None:
            return error(404, "not_connected", "this user has no stored tokens")
        if record.status is not TokenStatus.ACTIVE:
            return error(409, "needs_reauth", f"the user is {record.status.value}")
        await users.enqueue_profile_fetch(
            services.queue,
            vault.client_key,
            open_id,
            reason="api",
            queue_name=self.settings.queue_name,
        )
        return JSONResponse({"enqueued": True}, status_code=202, headers=_NO_STORE)

    async def status(self, request: Request, services: TokenServices) -> Response:
        kind = _KIND_BY_NAME.get(request.path_params["kind"])
        if kind is None:
            return error(404, "unknown_kind", f"kind must be one of {', '.join(KINDS)}")
        given = request.query_params.get("client_key")
        try:
            client_key = choose_app(list(services.vaults), given)
        except AppChoiceError as exc:
            return error(
                404 if given else 400, "unknown_app" if given else "client_key_required", str(exc)
            )
        record = await get_status(
            services.redis, kind, client_key, request.path_params["object_id"]
        )
        if record is None:
            return error(404, "not_found", f"no status recorded for this {kind}")
        return JSONResponse(msgspec.to_builtins(record), headers=_NO_STORE)


def _upstream_error(exc: TikTokError | VaultError) -> Response:
    retryable = exc.is_retryable
    if retryable:
        wait = int(exc.retry_after) if isinstance(exc, RateLimited) else _RETRY_SECONDS
        return error(503, "tiktok_unavailable", str(exc), **{"Retry-After": str(max(1, wait))})
    body: dict[str, Any] = {"error": "tiktok_error", "message": str(exc)}
    if isinstance(exc, TikTokError):
        body.update(tiktok_error=exc.code, log_id=exc.log_id, hint=exc.hint)
    return JSONResponse(body, status_code=502, headers=_NO_STORE)
