"""What the simulated v2 API endpoints share: the Bearer token, the JSON body, the scope
check, the rate limits (per app, or per token where TikTok says so), the envelope."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from tiktok_sandbox.calls import CallContext
from tiktok_sandbox.errors import ACCESS_TOKEN_INVALID, RATE_LIMITED, ApiError
from tiktok_sandbox.models import Grant
from tiktok_sandbox.simulated import json_response
from tiktok_sandbox.state import SandboxState

MAX_JSON_BODY = 64 * 1024
SCOPE_NOT_AUTHORIZED = "The user did not authorize the scope required for completing this request."


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def authenticate(
    state: SandboxState,
    request: Request,
    ctx: CallContext,
    *,
    per_token_limit: int | None = None,
) -> tuple[str, Grant]:
    """The token's app and grant; rate limits first, as TikTok counts rejected calls too."""
    token = bearer(request)
    now = state.now()
    client_key, grant = state.tokens.inspect_access(token, now) if token else (None, None)
    ctx.client_key = client_key
    if not state.limiter.allow(
        ctx.endpoint, client_key or "", state.settings.rate_limit_per_minute, now
    ):
        raise ApiError("rate_limit_exceeded", RATE_LIMITED, 429)
    if per_token_limit is not None and not state.limiter.allow(
        ctx.endpoint + ":token", token or "", per_token_limit, now
    ):
        raise ApiError("rate_limit_exceeded", RATE_LIMITED, 429)
    if grant is None or client_key is None:
        raise ApiError("access_token_invalid", ACCESS_TOKEN_INVALID, 401)
    ctx.open_id = grant.open_id
    return client_key, grant


def require_any_scope(grant: Grant, *scopes: str) -> None:
    if not any(scope in grant.scopes for scope in scopes):
        raise ApiError("scope_not_authorized", SCOPE_NOT_AUTHORIZED, 401)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_JSON_BODY:
        raise ApiError("invalid_params", "The request body is too large.", 400)
    try:
        body = msgspec.json.decode(raw) if raw.strip() else {}
    except msgspec.DecodeError:
        raise ApiError("invalid_params", "The request body is not valid JSON.", 400) from None
    if not isinstance(body, dict):
        raise ApiError("invalid_params", "The request body must be a JSON object.", 400)
    return body


def ok(ctx: CallContext, data: dict[str, Any] | None) -> Response:
    """The v2 success envelope; `data` None leaves it out (cancel answers `error` only)."""
    body: dict[str, Any] = {"error": {"code": "ok", "message": "", "log_id": ctx.log_id}}
    if data is not None:
        body = {"data": data, **body}
    return json_response(body)
