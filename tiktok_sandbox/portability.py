"""Data Portability API: add, check, download (a real ZIP, streamed) and cancel.

A request is `pending` for `data_ready_seconds` of sandbox time, then `downloading`
(TikTok's word for "ready"), and `portability.download.ready` goes out. Errors use the
data endpoints' shape, with `http_status_code` inside `error` (followup-apis §3.4).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tiktok_sandbox.admin import admin
from tiktok_sandbox.calls import CallContext
from tiktok_sandbox.data_requests import CATEGORIES, DataRequest, build_archive, covered
from tiktok_sandbox.errors import AdminError, ApiError
from tiktok_sandbox.scopes import split_scopes
from tiktok_sandbox.simulated import json_response, run_fault, simulated
from tiktok_sandbox.state import SandboxState, get_state
from tiktok_sandbox.v2api import (
    SCOPE_NOT_AUTHORIZED,
    authenticate,
    json_body,
    ok,
)

DATA_ADD_PATH = "/v2/user/data/add/"
DATA_CHECK_PATH = "/v2/user/data/check/"
DATA_DOWNLOAD_PATH = "/v2/user/data/download/"
DATA_CANCEL_PATH = "/v2/user/data/cancel/"
CHECK_FIELDS = frozenset(
    {"request_id", "apply_time", "collect_time", "status", "data_format", "category_selection_list"}
)
INCORRECT_ID = "Incorrect `request_id`. Please validate the request."
_CHUNK = 64 * 1024


def data_error(ctx: CallContext, status: int, code: str, message: str) -> Response:
    ctx.error = code
    error = {"code": code, "http_status_code": status, "log_id": ctx.log_id, "message": message}
    return json_response({"data": {}, "error": error}, status)


def _portability_grant(
    state: SandboxState, request: Request, ctx: CallContext
) -> tuple[str, str, tuple[str, ...]]:
    client_key, grant = authenticate(state, request, ctx)
    if not any(s.startswith("portability.") for s in grant.scopes):
        raise ApiError("scope_not_authorized", SCOPE_NOT_AUTHORIZED, 401)
    return client_key, grant.open_id, grant.scopes


async def _own_request(state: SandboxState, request: Request, ctx: CallContext) -> DataRequest:
    client_key, open_id, _ = _portability_grant(state, request, ctx)
    body = await json_body(request)
    raw = body.get("request_id", request.query_params.get("request_id"))
    try:
        request_id = int(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else None
    except ValueError:
        request_id = None
    found = state.data_requests.get(request_id) if request_id is not None else None
    if found is None or found.client_key != client_key or found.open_id != open_id:
        raise ApiError("invalid_params", INCORRECT_ID, 400)
    return found


@simulated("data_add", data_error)
async def data_add(request: Request, ctx: CallContext) -> Response:
    state = get_state(request)
    faulted = await run_fault(state, ctx, data_error)
    if faulted is not None:
        return faulted
    try:
        client_key, open_id, scopes = _portability_grant(state, request, ctx)
        body = await json_body(request)
        data_format = body.get("data_format")
        categories = body.get("category_selection_list")
        if data_format not in ("text", "json"):
            raise ApiError("invalid_params", "data_format must be text or json.", 400)
        if (
            not isinstance(categories, list)
            or not categories
            or any(c not in CATEGORIES for c in categories)
        ):
            raise ApiError(
                "invalid_params", f"category_selection_list takes {', '.join(CATEGORIES)}.", 400
            )
        if not all(covered(c, scopes) for c in categories):
            raise ApiError("scope_not_authorized", SCOPE_NOT_AUTHORIZED, 401)
    except ApiError as exc:
        return data_error(ctx, exc.status, exc.code, exc.message)
    added = state.data_requests.add(
        client_key, open_id, str(data_format), list(categories), state.now()
    )
    return ok(ctx, {"request_id": added.request_id})


@simulated("data_check", data_error)
async def data_check(request: Request, ctx: CallContext) -> Response:
    state = get_state(request)
    faulted = await run_fault(state, ctx, data_error)
    if faulted is not None:
        return faulted
    try:
        fields = split_scopes(",".join(request.query_params.getlist("fields")))
        if not fields or any(f not in CHECK_FIELDS for f in fields):
            raise ApiError("invalid_params", "One or more fields in request is invalid.", 400)
        found = await _own_request(state, request, ctx)
    except ApiError as exc:
        return data_error(ctx, exc.status, exc.code, exc.message)
    full = {
        "request_id": found.request_id,
        "apply_time": found.apply_time,
        "collect_time": found.collect_time,
        "status": found.status,
        "data_format": found.data_format,
        "category_selection_list": found.categories,
    }
    return ok(ctx, {name: full[name] for name in fields})


@simulated("data_download", data_error)
async def data_download(request: Request, ctx: CallContext) -> Response:
    state = get_state(request)
    faulted = await run_fault(state, ctx, data_error)
    if faulted is not None:
        return faulted
    try:
        found = await _own_request(state, request, ctx)
        if found.status == "pending":
            raise ApiError("invalid_params", "The data is not ready for download yet.", 400)
        if found.status != "downloading":
            raise ApiError("invalid_params", f"The data request is {found.status}.", 400)
    except ApiError as exc:
        return data_error(ctx, exc.status, exc.code, exc.message)
    user = state.users.get(found.open_id)
    profile: dict[str, object] = {
        "open_id": found.open_id,
        "display_name": user.display_name if user else "",
    }
    archive = build_archive(found, profile, state.settings.data_archive_padding_bytes)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(archive), _CHUNK):
            yield archive[start : start + _CHUNK]

    # TikTok documents neither the content type nor the length of this answer.
    return StreamingResponse(chunks(), media_type="application/octet-stream")


@simulated("data_cancel", data_error)
async def data_cancel(request: Request, ctx: CallContext) -> Response:
    state = get_state(request)
    faulted = await run_fault(state, ctx, data_error)
    if faulted is not None:
        return faulted
    try:
        found = await _own_request(state, request, ctx)
        if not state.data_requests.set_status(
            found.request_id, "cancelled", only_from=("pending", "downloading")
        ):
            raise ApiError("invalid_params", f"The data request is {found.status}.", 400)
    except ApiError as exc:
        return data_error(ctx, exc.status, exc.code, exc.message)
    return ok(ctx, None)  # TikTok answers cancel with `error` only, no `data`


@admin
async def list_requests(request: Request, state: SandboxState) -> Response:
    shown = []
    for found in state.data_requests.all():
        item = msgspec.to_builtins(found)
        item["request_id"] = str(found.request_id)
        shown.append(item)
    return json_response({"data_requests": shown})


@admin
async def expire_request(request: Request, state: SandboxState) -> Response:
    raw = request.path_params["request_id"]
    if not raw.isdigit() or not state.data_requests.set_status(
        int(raw), "expired", only_from=("pending", "downloading")
    ):
        raise AdminError(404, "not_found", "No pending or ready data request with this id.")
    return json_response({"request_id": raw, "status": "expired"})


ROUTES = [
    Route(DATA_ADD_PATH, data_add, methods=["POST"]),
    Route(DATA_CHECK_PATH, data_check, methods=["POST"]),
    Route(DATA_DOWNLOAD_PATH, data_download, methods=["POST"]),
    Route(DATA_CANCEL_PATH, data_cancel, methods=["POST"]),
    Route("/sandbox/data-requests", list_requests, methods=["GET"]),
    Route("/sandbox/data-requests/{request_id}/expire", expire_request, methods=["POST"]),
]
