"""The admin API under `/sandbox/`: seed users and apps, change settings, move the clock,
inject faults and read the call log. JSON in and out, no auth: it is a local simulator.
Calls that change state must be same-origin and JSON, so no web page can make them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tiktok_sandbox.config import AppConfig, SettingsPatch, callback_url_problem
from tiktok_sandbox.errors import AdminError
from tiktok_sandbox.events import REASON_USER_DISCONNECTED
from tiktok_sandbox.faults import FaultSpec
from tiktok_sandbox.models import SandboxUser
from tiktok_sandbox.simulated import admin_error, json_response
from tiktok_sandbox.state import SandboxState, get_state

T = TypeVar("T")
MAX_BODY = 256 * 1024
AdminHandler = Callable[[Request, SandboxState], Awaitable[Response]]


class UserTarget(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    client_key: str | None = None  # None: every app the user authorized


class Deauthorize(UserTarget, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[int, msgspec.Meta(ge=0, le=5)] = REASON_USER_DISCONNECTED


class CallbackUrl(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    callback_url: str | None  # None: the app gets no webhooks


class Advance(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    seconds: Annotated[float, msgspec.Meta(ge=0)]


_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def cross_site_problem(request: Request) -> AdminError | None:
    """Why a changing admin call may come from a web page of another site, or None.

    Browsers let any page send "simple" cross-site POSTs (a form, or `text/plain` from
    a script), which could purge users of a running dev stack. A call that changes state
    must not come from another origin, and a body must be JSON (which a page of another
    site cannot send without a CORS preflight, which this API never allows).
    """
    if request.method not in _UNSAFE_METHODS:
        return None
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return AdminError(403, "cross_site", "Cross-site calls to the admin API are refused.")
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin != own:
            return AdminError(403, "cross_site", "Cross-site calls to the admin API are refused.")
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if has_body and media_type != "application/json":
        return AdminError(415, "invalid_params", "The admin API takes application/json bodies.")
    return None


def admin(handler: AdminHandler) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        refused = cross_site_problem(request)
        if refused is not None:
            return admin_error(refused.status, refused.code, refused.message)
        try:
            return await handler(request, get_state(request))
        except AdminError as exc:
            return admin_error(exc.status, exc.code, exc.message)

    run.__name__ = handler.__name__
    return run


async def read_json(request: Request, type_: type[T], *, optional: bool = False) -> T:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise AdminError(413, "invalid_params", "The body is too large.")
    if not raw.strip():
        if optional:
            return msgspec.convert({}, type_)
        raise AdminError(400, "invalid_params", "A JSON body is required.")
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise AdminError(400, "invalid_params", str(exc)) from None
    except msgspec.DecodeError:
        raise AdminError(400, "invalid_params", "The body is not valid JSON.") from None


def user_or_404(state: SandboxState, open_id: str) -> SandboxUser:
    user = state.users.get(open_id)
    if user is None:
        raise AdminError(404, "not_found", f"No sandbox user has open_id {open_id!r}.")
    return user


# -- users --------------------------------------------------------------------------


@admin
async def create_user(request: Request, state: SandboxState) -> Response:
    user = state.users.add(await read_json(request, SandboxUser, optional=True))
    if user is None:
        raise AdminError(409, "conflict", "A user with this open_id exists already.")
    return json_response(user, 201)


@admin
async def list_users(request: Request, state: SandboxState) -> Response:
    return json_response({"users": state.users.all()})


@admin
async def get_user(request: Request, state: SandboxState) -> Response:
    return json_response(user_or_404(state, request.path_params["open_id"]))


@admin
async def update_user(request: Request, state: SandboxState) -> Response:
    user = user_or_404(state, request.path_params["open_id"])
    patch = await read_json(request, dict[str, Any])
    if patch.get("open_id", user.open_id) != user.open_id:
        raise AdminError(400, "invalid_params", "open_id cannot be changed.")
    try:
        updated = msgspec.convert({**msgspec.structs.asdict(user), **patch}, SandboxUser)
    except msgspec.ValidationError as exc:
        raise AdminError(400, "invalid_params", str(exc)) from None
    state.users.replace(updated)
    return json_response(updated)


@admin
async def user_grants(request: Request, state: SandboxState) -> Response:
    user = user_or_404(state, request.path_params["open_id"])
    return json_response({"grants": state.tokens.grants_of(user.open_id, state.now())})


@admin
async def expire_access_token(request: Request, state: SandboxState) -> Response:
    """Make the user's access tokens expire now, to exercise the refresh path."""
    user = user_or_404(state, request.path_params["open_id"])
    target = await read_json(request, UserTarget, optional=True)
    expired = state.tokens.expire_access(user.open_id, target.client_key, state.now())
    return json_response({"expired": expired})


@admin
async def expire_refresh_token(request: Request, state: SandboxState) -> Response:
    """Make the user's refresh tokens expire now, to exercise re-authorization."""
    user = user_or_404(state, request.path_params["open_id"])
    target = await read_json(request, UserTarget, optional=True)
    expired = state.tokens.expire_refresh(user.open_id, target.client_key, state.now())
    return json_response({"expired": expired})


@admin
async def deauthorize(request: Request, state: SandboxState) -> Response:
    """The user disconnects the app in TikTok: tokens die and `authorization.removed` is
    sent to every app that had a grant (and has a callback URL)."""
    user = user_or_404(state, request.path_params["open_id"])
    body = await read_json(request, Deauthorize, optional=True)
    events = state.deauthorize(user.open_id, body.client_key, body.reason)
    deliveries = [state.deliveries.for_event(e.seq) for e in events]
    return json_response(
        {
            "revoked": [e.client_key for e in events],
            "events": events,
            "deliveries": [d.id for d in deliveries if d is not None],
        }
    )


# -- apps, settings, clock, reset ----------------------------------------------------------


@admin
async def list_apps(request: Request, state: SandboxState) -> Response:
    return json_response({"apps": state.apps()})


@admin
async def create_app_(request: Request, state: SandboxState) -> Response:
    app = await read_json(request, AppConfig)
    problems = app.problems()
    if problems:
        raise AdminError(400, "invalid_params", "; ".join(problems))
    if not state.add_app(app):
        raise AdminError(409, "conflict", "An app with this client_key exists already.")
    return json_response(app, 201)


@admin
async def put_callback_url(request: Request, state: SandboxState) -> Response:
    """Set (or with null, remove) the app's webhook callback URL, as in the portal."""
    body = await read_json(request, CallbackUrl)
    if body.callback_url is not None:
        problem = callback_url_problem(body.callback_url)
        if problem is not None:
            raise AdminError(400, "invalid_params", problem)
    app = state.set_callback_url(request.path_params["client_key"], body.callback_url)
    if app is None:
        raise AdminError(404, "not_found", "No app has this client_key.")
    return json_response(app)


@admin
async def get_settings(request: Request, state: SandboxState) -> Response:
    return json_response(state.settings)


@admin
async def put_settings(request: Request, state: SandboxState) -> Response:
    return json_response(state.update_settings(await read_json(request, SettingsPatch)))


@admin
async def get_clock(request: Request, state: SandboxState) -> Response:
    return json_response({"now": state.now(), "offset": state.clock.offset})


@admin
async def advance_clock(request: Request, state: SandboxState) -> Response:
    """Move sandbox time forward, so codes and tokens expire without waiting."""
    body = await read_json(request, Advance)
    state.clock.advance(body.seconds)
    return json_response({"now": state.now(), "offset": state.clock.offset})


@admin
async def reset(request: Request, state: SandboxState) -> Response:
    state.reset()
    return json_response({"reset": True})


# -- faults, calls, events --------------------------------------------------------------


@admin
async def list_faults(request: Request, state: SandboxState) -> Response:
    return json_response({"faults": state.faults.list()})


@admin
async def add_fault(request: Request, state: SandboxState) -> Response:
    spec = await read_json(request, FaultSpec)
    problem = spec.problem()
    if problem is not None:
        raise AdminError(400, "invalid_params", problem)
    return json_response(state.faults.add(spec), 201)


@admin
async def clear_faults(request: Request, state: SandboxState) -> Response:
    return json_response({"cleared": state.faults.clear(request.query_params.get("endpoint"))})


@admin
async def list_calls(request: Request, state: SandboxState) -> Response:
    """`?endpoint=token&grant_type=refresh_token&since=<seq>` narrow the log."""
    query = request.query_params
    try:
        since = int(query.get("since", "0"))
    except ValueError:
        raise AdminError(400, "invalid_params", "since must be an integer.") from None
    calls = state.calls.list(
        endpoint=query.get("endpoint"), grant_type=query.get("grant_type"), since=since
    )
    return json_response({"calls": calls})


@admin
async def clear_calls(request: Request, state: SandboxState) -> Response:
    state.calls.clear()
    return json_response({"cleared": True})


@admin
async def list_events(request: Request, state: SandboxState) -> Response:
    return json_response({"events": state.outbox.list()})


ROUTES = [
    Route("/sandbox/users", create_user, methods=["POST"]),
    Route("/sandbox/users", list_users, methods=["GET"]),
    Route("/sandbox/users/{open_id}", get_user, methods=["GET"]),
    Route("/sandbox/users/{open_id}", update_user, methods=["PATCH"]),
    Route("/sandbox/users/{open_id}/grants", user_grants, methods=["GET"]),
    Route("/sandbox/users/{open_id}/expire-access-token", expire_access_token, methods=["POST"]),
    Route("/sandbox/users/{open_id}/expire-refresh-token", expire_refresh_token, methods=["POST"]),
    Route("/sandbox/users/{open_id}/deauthorize", deauthorize, methods=["POST"]),
    Route("/sandbox/apps", list_apps, methods=["GET"]),
    Route("/sandbox/apps", create_app_, methods=["POST"]),
    Route("/sandbox/apps/{client_key}/callback", put_callback_url, methods=["PUT"]),
    Route("/sandbox/settings", get_settings, methods=["GET"]),
    Route("/sandbox/settings", put_settings, methods=["PUT"]),
    Route("/sandbox/clock", get_clock, methods=["GET"]),
    Route("/sandbox/clock/advance", advance_clock, methods=["POST"]),
    Route("/sandbox/reset", reset, methods=["POST"]),
    Route("/sandbox/faults", list_faults, methods=["GET"]),
    Route("/sandbox/faults", add_fault, methods=["POST"]),
    Route("/sandbox/faults", clear_faults, methods=["DELETE"]),
    Route("/sandbox/calls", list_calls, methods=["GET"]),
    Route("/sandbox/calls", clear_calls, methods=["DELETE"]),
    Route("/sandbox/events", list_events, methods=["GET"]),
]
