"""`GET /v2/user/info/?fields=...` with a Bearer token (contract §4)."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from tiktok_sandbox.calls import CallContext
from tiktok_sandbox.errors import ACCESS_TOKEN_INVALID, RATE_LIMITED, ApiError
from tiktok_sandbox.scopes import USER_FIELD_SCOPES, split_scopes
from tiktok_sandbox.simulated import api_error, json_response, run_fault, simulated
from tiktok_sandbox.state import SandboxState, get_state

SCOPE_NOT_AUTHORIZED = "The user did not authorize the scope required for completing this request."


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _fields(request: Request) -> list[str]:
    raw = ",".join(request.query_params.getlist("fields"))
    fields = split_scopes(raw)  # the same comma-separated list syntax
    if not fields:
        raise ApiError("invalid_params", "The fields parameter is required.", 400)
    unknown = [f for f in fields if f not in USER_FIELD_SCOPES]
    if unknown:
        raise ApiError(
            "invalid_params",
            f"One or more fields in request is invalid: {', '.join(unknown)}.",
            400,
        )
    return fields


def _user_info(state: SandboxState, request: Request, ctx: CallContext) -> dict[str, object]:
    token = _bearer(request)
    now = state.now()
    client_key, grant = state.tokens.inspect_access(token, now) if token else (None, None)
    ctx.client_key = client_key
    limit = state.settings.rate_limit_per_minute
    if not state.limiter.allow("user_info", client_key or "", limit, now):
        raise ApiError("rate_limit_exceeded", RATE_LIMITED, 429)
    if grant is None:
        raise ApiError("access_token_invalid", ACCESS_TOKEN_INVALID, 401)
    ctx.open_id = grant.open_id
    fields = _fields(request)
    if any(USER_FIELD_SCOPES[f] not in grant.scopes for f in fields):
        raise ApiError("scope_not_authorized", SCOPE_NOT_AUTHORIZED, 401)
    user = state.users.get(grant.open_id)
    if user is None:  # a grant always names a user; defensive against a reset mid-call
        raise ApiError("access_token_invalid", ACCESS_TOKEN_INVALID, 401)
    profile = msgspec.structs.asdict(user)
    return {name: profile[name] for name in fields}


@simulated("user_info", api_error)
async def user_info(request: Request, ctx: CallContext) -> Response:
    """Only the requested fields, each allowed only when its scope was granted."""
    state = get_state(request)
    faulted = await run_fault(state, ctx, api_error)
    if faulted is not None:
        return faulted
    try:
        user = _user_info(state, request, ctx)
    except ApiError as exc:
        return api_error(ctx, exc.status, exc.code, exc.message)
    return json_response(
        {"data": {"user": user}, "error": {"code": "ok", "message": "", "log_id": ctx.log_id}}
    )
