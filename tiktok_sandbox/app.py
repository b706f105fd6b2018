"""`create_app`: the sandbox as one Starlette app, TikTok's v2 paths plus `/sandbox/` admin."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tiktok_sandbox.admin import ROUTES as ADMIN_ROUTES
from tiktok_sandbox.authorize import DECISION_PATH, authorize, decide
from tiktok_sandbox.config import SandboxConfig
from tiktok_sandbox.faults import ConnectionDropped, install_log_filter
from tiktok_sandbox.ids import new_log_id
from tiktok_sandbox.oauth import revoke, token
from tiktok_sandbox.pages import error_page
from tiktok_sandbox.portability import ROUTES as PORTABILITY_ROUTES
from tiktok_sandbox.posting import ROUTES as POSTING_ROUTES
from tiktok_sandbox.service_routes import service_routes
from tiktok_sandbox.simulated import admin_error, json_response
from tiktok_sandbox.state import SandboxState, get_state
from tiktok_sandbox.userinfo import user_info
from tiktok_sandbox.videos import ROUTES as VIDEO_ROUTES
from tiktok_sandbox.webhook_admin import ROUTES as WEBHOOK_ROUTES
from tiktok_sandbox.webhooks import WebhookSender

logger = logging.getLogger("sandbox")

AUTHORIZE_PATH = "/v2/auth/authorize/"
TOKEN_PATH = "/v2/oauth/token/"
REVOKE_PATH = "/v2/oauth/revoke/"
USER_INFO_PATH = "/v2/user/info/"


def _error_in_path_shape(request: Request, status: int, message: str) -> Response:
    """Unknown paths and wrong methods still answer in the shape their path prefix implies."""
    path = request.url.path
    log_id = new_log_id(time.time())
    if path.startswith("/v2/auth/"):
        return error_page(status, "invalid_request", message)
    if path.startswith("/v2/oauth/"):
        body: dict[str, object] = {
            "error": "invalid_request",
            "error_description": message,
            "log_id": log_id,
        }
        return json_response(body, status)
    if path.startswith("/v2/"):
        error = {"code": "invalid_params", "message": message, "log_id": log_id}
        return json_response({"data": {}, "error": error}, status)
    return admin_error(status, "not_found" if status == 404 else "invalid_request", message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = _error_in_path_shape(request, exc.status_code, exc.detail)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _crash(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ConnectionDropped):
        logger.error("sandbox bug", exc_info=exc)
    return _error_in_path_shape(request, 500, "Sandbox internal error.")


async def _index(request: Request) -> Response:
    """Where to point the service: its TIKTOK_AUTH_URL and TIKTOK_API_BASE_URL."""
    base = str(request.base_url).rstrip("/")
    state = get_state(request)
    return json_response(
        {
            "service": "tiktok-sandbox",
            "tiktok_auth_url": base + AUTHORIZE_PATH,
            "tiktok_api_base_url": base,
            "apps": [app.client_key for app in state.apps()],
            "admin": base + "/sandbox/",
            "webhooks": base + "/sandbox/webhooks",
        }
    )


TICK_SECONDS = 0.05


async def _advance_timelines(state: SandboxState) -> None:
    """Publishes and data requests move on the sandbox clock, with or without calls."""
    while True:
        try:
            state.advance_timelines()
        except Exception:
            logger.exception("sandbox bug while advancing publishes and data requests")
        await asyncio.sleep(TICK_SECONDS)


def create_app(
    config: SandboxConfig,
    *,
    clock: Callable[[], float] | None = None,
    webhook_clock: Callable[[], float] | None = None,
) -> Starlette:
    """A fresh sandbox with `config`; `clock` (default `time.time`) lets tests fix time.

    `webhook_clock` (default `time.time`) is the wall clock webhook signatures (`t`) and
    the delivery log use: real time, so a receiver's timestamp tolerance accepts them
    even when the sandbox clock was moved. The state is at `app.state.sandbox` (a
    SandboxState). Webhooks are sent while the app's lifespan runs (uvicorn runs it).
    """
    state = SandboxState(config, clock, webhook_clock)
    install_log_filter()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        sender = WebhookSender(state)
        await sender.start()
        ticker = asyncio.create_task(_advance_timelines(state))
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await sender.stop()

    routes = [
        Route("/", _index, methods=["GET"]),
        Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
        Route(DECISION_PATH, decide, methods=["POST"]),
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(REVOKE_PATH, revoke, methods=["POST"]),
        Route(USER_INFO_PATH, user_info, methods=["GET"]),
        *POSTING_ROUTES,
        *VIDEO_ROUTES,
        *PORTABILITY_ROUTES,
        *ADMIN_ROUTES,
        *WEBHOOK_ROUTES,
    ]
    routes += service_routes(routes)
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _crash},
        lifespan=lifespan,
    )
    app.state.sandbox = state
    return app
