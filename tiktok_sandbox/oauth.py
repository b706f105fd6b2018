"""`POST /v2/oauth/token/` and `POST /v2/oauth/revoke/` (contract §2.2-§2.5)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tiktok_sandbox.calls import CallContext
from tiktok_sandbox.errors import INVALID_CLIENT, RATE_LIMITED, OAuthError
from tiktok_sandbox.events import REASON_DEVELOPER_REVOKED
from tiktok_sandbox.simulated import json_response, oauth_error, read_form, run_fault, simulated
from tiktok_sandbox.state import SandboxState, get_state


def _require(form: dict[str, str], *names: str) -> list[str]:
    values = []
    for name in names:
        value = form.get(name, "")
        if not value:
            raise OAuthError("invalid_request", f"Missing required parameter: {name}.")
        values.append(value)
    return values


def _authenticate(state: SandboxState, form: dict[str, str], endpoint: str) -> str:
    """Rate-limit, then check client_key and client_secret; return the client_key."""
    client_key = form.get("client_key", "")
    limit = state.settings.rate_limit_per_minute
    if not state.limiter.allow(endpoint, client_key, limit, state.now()):
        raise OAuthError("rate_limit_exceeded", RATE_LIMITED, status=429)
    client_key, client_secret = _require(form, "client_key", "client_secret")
    if not state.authenticate(client_key, client_secret):
        raise OAuthError(
            "invalid_client", INVALID_CLIENT, status=state.settings.invalid_client_http_status
        )
    return client_key


def _render_error(ctx: CallContext, exc: OAuthError) -> Response:
    return oauth_error(ctx, exc.status or 400, exc.error, exc.description)


@simulated("token", oauth_error)
async def token(request: Request, ctx: CallContext) -> Response:
    """Exchange a code, or refresh with rotation; a flat JSON token set on success."""
    state = get_state(request)
    form, problem = await read_form(request)
    ctx.client_key = form.get("client_key") or None
    ctx.grant_type = form.get("grant_type") or None
    faulted = await run_fault(state, ctx, oauth_error, ctx.grant_type)
    if faulted is not None:
        return faulted
    try:
        if problem is not None:
            raise OAuthError("invalid_request", problem)
        client_key = _authenticate(state, form, "token")
        (grant_type,) = _require(form, "grant_type")
        settings = state.settings
        if grant_type == "authorization_code":
            code, redirect_uri = _require(form, "code", "redirect_uri")
            tokens = state.tokens.redeem_code(
                client_key=client_key,
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=form.get("code_verifier") or None,
                now=state.now(),
                access_ttl=settings.access_token_ttl,
                refresh_ttl=settings.refresh_token_ttl,
            )
        elif grant_type == "refresh_token":
            (refresh_token,) = _require(form, "refresh_token")
            tokens = state.tokens.refresh(
                client_key=client_key,
                refresh_token=refresh_token,
                now=state.now(),
                access_ttl=settings.access_token_ttl,
            )
        else:
            raise OAuthError("unsupported_grant_type", "The grant_type is not supported.")
    except OAuthError as exc:
        return _render_error(ctx, exc)
    ctx.open_id = tokens.open_id
    response = json_response(tokens)
    response.headers["cache-control"] = "no-store"
    return response


@simulated("revoke", oauth_error)
async def revoke(request: Request, ctx: CallContext) -> Response:
    """Disconnect the app from the token's user: all of that user's tokens for the app die."""
    state = get_state(request)
    form, problem = await read_form(request)
    ctx.client_key = form.get("client_key") or None
    faulted = await run_fault(state, ctx, oauth_error)
    if faulted is not None:
        return faulted
    try:
        if problem is not None:
            raise OAuthError("invalid_request", problem)
        client_key = _authenticate(state, form, "revoke")
        (token_value,) = _require(form, "token")
        open_id, revoked = state.tokens.revoke(
            client_key=client_key, token=token_value, now=state.now()
        )
    except OAuthError as exc:
        return _render_error(ctx, exc)
    ctx.open_id = open_id
    if open_id is not None and revoked and state.settings.webhooks.revoke_sends_event:
        # Whether TikTok sends this webhook for a developer revoke is UNCONFIRMED (§2.5),
        # hence the setting; the outbox hands it to the webhook sender.
        state.outbox.emit(
            client_key=client_key,
            event="authorization.removed",
            open_id=open_id,
            content={"reason": REASON_DEVELOPER_REVOKED},
            now=state.now(),
        )
    return Response(b"", status_code=200)
