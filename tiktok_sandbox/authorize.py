"""`GET /v2/auth/authorize/` (Login Kit for Web, contract §2.1) and its consent decision.

Query hints only the sandbox understands: `sandbox_user=<open_id>` picks who logs in,
`sandbox_decision=approve|deny` answers without showing a page, and
`sandbox_grant_scopes=a,b` grants only some of the requested scopes.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tiktok_sandbox.calls import CallContext
from tiktok_sandbox.errors import OAuthError
from tiktok_sandbox.ids import is_s256_challenge, new_request_id
from tiktok_sandbox.models import PendingAuthorization, SandboxUser
from tiktok_sandbox.pages import consent_page, error_page
from tiktok_sandbox.scopes import KNOWN_SCOPES, split_scopes
from tiktok_sandbox.simulated import read_form, run_fault, simulated
from tiktok_sandbox.state import SandboxState, get_state

DECISION_PATH = "/v2/auth/authorize/decision/"
PENDING_TTL = 600.0
DENIED = "The user denied the authorization request."


def render_html(ctx: CallContext, status: int, error: str, description: str) -> Response:
    ctx.error = error
    return error_page(status, error, description)


@dataclass
class _Request:
    """An authorize request that passed validation."""

    client_key: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    user: SandboxUser
    decision: str | None


def _single(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise OAuthError("invalid_request", f"Parameter {name} appears more than once.")
    return values[0] if values else None


def _validate(state: SandboxState, params: QueryParams, ctx: CallContext) -> _Request:
    client_key = _single(params, "client_key")
    if not client_key:
        raise OAuthError("invalid_request", "Missing required parameter: client_key.")
    ctx.client_key = client_key
    app = state.app(client_key)
    if app is None:
        raise OAuthError("invalid_client", "client_key is not a registered app.")
    # Checked before anything could redirect: never send the user to an unregistered URI.
    redirect_uri = _single(params, "redirect_uri")
    if not redirect_uri:
        raise OAuthError("invalid_request", "Missing required parameter: redirect_uri.")
    if redirect_uri not in app.redirect_uris:
        raise OAuthError(
            "invalid_request",
            "redirect_uri does not match any redirect URI registered for this app "
            "(they are compared character for character).",
        )
    if _single(params, "response_type") != "code":
        raise OAuthError("unsupported_response_type", "response_type must be code.")
    scopes = split_scopes(_single(params, "scope") or "")
    if not scopes:
        raise OAuthError("invalid_scope", "Missing required parameter: scope.")
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if unknown:
        raise OAuthError("invalid_scope", f"Unknown scope: {', '.join(unknown)}.")
    return _Request(
        client_key=client_key,
        redirect_uri=redirect_uri,
        scopes=_granted(scopes, _single(params, "sandbox_grant_scopes")),
        state=_single(params, "state"),
        code_challenge=_challenge(params),
        user=_user(state, _single(params, "sandbox_user"), ctx),
        decision=_decision(_single(params, "sandbox_decision")),
    )


def _challenge(params: QueryParams) -> str | None:
    challenge = _single(params, "code_challenge")
    method = _single(params, "code_challenge_method")
    if challenge is None and method is None:
        return None
    if method != "S256":
        raise OAuthError("invalid_request", "code_challenge_method must be S256.")
    if challenge is None or not is_s256_challenge(challenge):
        raise OAuthError(
            "invalid_request", "code_challenge must be a base64url SHA256 digest (43 characters)."
        )
    return challenge


def _granted(requested: list[str], hint: str | None) -> tuple[str, ...]:
    if hint is None:
        return tuple(requested)
    granted = split_scopes(hint)
    if not granted or any(s not in requested for s in granted):
        raise OAuthError("invalid_scope", "sandbox_grant_scopes must be requested scopes.")
    return tuple(granted)


def _user(state: SandboxState, hint: str | None, ctx: CallContext) -> SandboxUser:
    user = state.users.login(hint)
    if user is None:
        raise OAuthError("invalid_request", "sandbox_user names no sandbox user.")
    ctx.open_id = user.open_id
    return user


def _decision(hint: str | None) -> str | None:
    if hint not in (None, "approve", "deny"):
        raise OAuthError("invalid_request", "sandbox_decision must be approve or deny.")
    return hint


def _redirect(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + separator + urlencode(params), status_code=302)


def _answer(
    state: SandboxState,
    ctx: CallContext,
    *,
    approve: bool,
    client_key: str,
    redirect_uri: str,
    open_id: str,
    scopes: tuple[str, ...],
    oauth_state: str | None,
    code_challenge: str | None,
) -> RedirectResponse:
    """Send the browser back to the app: with a code and the granted scopes, or an error."""
    params: dict[str, str]
    if approve:
        code = state.tokens.issue_code(
            client_key=client_key,
            redirect_uri=redirect_uri,
            open_id=open_id,
            scopes=scopes,
            code_challenge=code_challenge,
            now=state.now(),
            ttl=state.settings.code_ttl,
        )
        params = {"code": code, "scopes": ",".join(scopes)}
    else:
        ctx.error = "access_denied"
        params = {"error": "access_denied", "error_description": DENIED}
    if oauth_state is not None:
        params["state"] = oauth_state
    return _redirect(redirect_uri, params)


@simulated("authorize", render_html)
async def authorize(request: Request, ctx: CallContext) -> Response:
    """Validate, then redirect at once (auto-approve or a decision hint) or show consent."""
    state = get_state(request)
    faulted = await run_fault(state, ctx, render_html)
    if faulted is not None:
        return faulted
    try:
        req = _validate(state, request.query_params, ctx)
    except OAuthError as exc:
        return render_html(ctx, exc.status or 400, exc.error, exc.description)
    if req.decision is None and not state.settings.auto_approve:
        request_id = new_request_id()
        pending = PendingAuthorization(
            request_id=request_id,
            client_key=req.client_key,
            redirect_uri=req.redirect_uri,
            open_id=req.user.open_id,
            scopes=req.scopes,
            state=req.state,
            code_challenge=req.code_challenge,
            expires_at=state.now() + PENDING_TTL,
        )
        state.tokens.add_pending(pending, state.now())
        app = state.app(req.client_key)
        return consent_page(
            request_id=request_id,
            app_name=app.name if app is not None else req.client_key,
            client_key=req.client_key,
            user=req.user,
            users=state.users.all(),
            scopes=req.scopes,
            action=DECISION_PATH,
        )
    return _answer(
        state,
        ctx,
        approve=req.decision != "deny",
        client_key=req.client_key,
        redirect_uri=req.redirect_uri,
        open_id=req.user.open_id,
        scopes=req.scopes,
        oauth_state=req.state,
        code_challenge=req.code_challenge,
    )


@simulated("authorize_decision", render_html)
async def decide(request: Request, ctx: CallContext) -> Response:
    """The consent page's Approve / Deny buttons post here (with the chosen `open_id`)."""
    state = get_state(request)
    form, problem = await read_form(request)
    if problem is not None:
        return render_html(ctx, 400, "invalid_request", problem)
    decision = form.get("decision")
    if decision not in ("approve", "deny"):
        return render_html(ctx, 400, "invalid_request", "decision must be approve or deny.")
    pending = state.tokens.take_pending(form.get("request_id", ""), state.now())
    if pending is None:
        return render_html(
            ctx,
            400,
            "invalid_request",
            "This authorization request is unknown, expired or already answered.",
        )
    open_id = pending.open_id
    chosen = form.get("open_id")
    if chosen and chosen != open_id:
        # The consent page's select: approve as another sandbox user.
        if state.users.get(chosen) is None:
            state.tokens.add_pending(pending, state.now())  # not used up by a bad choice
            return render_html(ctx, 400, "invalid_request", "open_id names no sandbox user.")
        open_id = chosen
    ctx.client_key = pending.client_key
    ctx.open_id = open_id
    return _answer(
        state,
        ctx,
        approve=decision == "approve",
        client_key=pending.client_key,
        redirect_uri=pending.redirect_uri,
        open_id=open_id,
        scopes=pending.scopes,
        oauth_state=pending.state,
        code_challenge=pending.code_challenge,
    )
