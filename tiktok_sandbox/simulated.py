"""Request parsing and TikTok-shaped responses shared by the simulated endpoints."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from tiktok_sandbox.calls import CallContext
from tiktok_sandbox.faults import DropConnection, apply_fault
from tiktok_sandbox.state import SandboxState, get_state

logger = logging.getLogger("sandbox")

MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 50

Render = Callable[[CallContext, int, str, str], Response]
Handler = Callable[[Request, CallContext], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


def oauth_error(ctx: CallContext, status: int, error: str, description: str) -> Response:
    """The OAuth v2 error body (contract §2.4)."""
    ctx.error = error
    return json_response(
        {"error": error, "error_description": description, "log_id": ctx.log_id}, status
    )


def api_error(ctx: CallContext, status: int, code: str, message: str) -> Response:
    """The v2 API error envelope (contract §4); `data` is empty on errors."""
    ctx.error = code
    return json_response(
        {"data": {}, "error": {"code": code, "message": message, "log_id": ctx.log_id}}, status
    )


def admin_error(status: int, code: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status)


async def read_form(request: Request) -> tuple[dict[str, str], str | None]:
    """Parse an x-www-form-urlencoded body: (fields, problem or None), never raising."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}, "The request body is too large."
    if media_type != "application/x-www-form-urlencoded":
        return {}, "Content-Type must be application/x-www-form-urlencoded."
    try:
        text = bytes(body).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return {}, "The request body is not a valid form."
    form: dict[str, str] = {}
    problem = None
    for name, value in pairs:
        if name in form:
            problem = f"Parameter {name} appears more than once."
        form[name] = value
    return form, problem


async def run_fault(
    state: SandboxState, ctx: CallContext, render: Render, grant_type: str | None = None
) -> Response | None:
    """Consume a matching injected fault, if any; the response to send instead, or None."""
    spec = state.faults.take(ctx.endpoint, grant_type)
    if spec is None:
        return None
    ctx.fault = spec.kind

    def render_fault(status: int, code: str, message: str) -> Response:
        return render(ctx, status, code, message)

    return await apply_fault(spec, render_fault)


def simulated(endpoint: str, render: Render) -> Callable[[Handler], Endpoint]:
    """Wrap a handler of a simulated TikTok endpoint: log the call, tag it with a log id,
    and answer even a sandbox bug in the endpoint's own error shape rather than a bare 500.
    """

    def decorate(handler: Handler) -> Endpoint:
        async def run(request: Request) -> Response:
            state = get_state(request)
            ctx = state.begin_call(endpoint, request.method)
            try:
                response = await handler(request, ctx)
            except Exception:
                logger.exception("sandbox bug while handling %s", endpoint)
                response = render(ctx, 500, "internal_error", "Sandbox internal error.")
            if isinstance(response, DropConnection):
                state.calls.record(ctx, 0)
                return response
            response.headers["x-tt-logid"] = ctx.log_id
            state.calls.record(ctx, response.status_code)
            return response

        run.__name__ = handler.__name__
        run.__doc__ = handler.__doc__
        return run

    return decorate
