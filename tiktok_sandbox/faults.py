"""Fault injection: make the next N calls of an endpoint fail, stall, or drop the connection."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Annotated, Literal

import msgspec
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Endpoint = Literal[
    "authorize",
    "token",
    "revoke",
    "user_info",
    "publish_status",
    "video_query",
    "video_list",
    "data_add",
    "data_check",
    "data_download",
    "data_cancel",
]
OAUTH_ENDPOINTS = frozenset({"authorize", "token", "revoke"})

# Error text TikTok documents for these codes (contract §2.4, §4); others get a generic one.
_MESSAGES = {
    "internal_error": "Something went wrong. Please try again later.",
    "server_error": "The server encountered an unexpected error.",
    "temporarily_unavailable": "The service is temporarily unavailable.",
    "rate_limit_exceeded": "The API rate limit was exceeded. Please try again later.",
    "access_token_invalid": "The access token is invalid or not found in the request.",
    "invalid_params": "One or more fields in request is invalid.",
    "invalid_request": "The request parameters are malformed.",
}


class FaultSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What `POST /sandbox/faults` accepts. A delay may be combined with a status."""

    endpoint: Endpoint
    count: Annotated[int, msgspec.Meta(ge=1)] = 1
    status: Annotated[int, msgspec.Meta(ge=200, le=599)] | None = None
    error: str | None = None
    message: str | None = None
    delay_seconds: Annotated[float, msgspec.Meta(ge=0, le=300)] = 0.0
    drop_connection: bool = False
    grant_type: str | None = None  # token endpoint only: hit only this grant type

    def problem(self) -> str | None:
        if self.status is None and not self.drop_connection and self.delay_seconds == 0:
            return "a fault needs a status, a delay_seconds or drop_connection"
        if self.status is not None and self.drop_connection:
            return "status and drop_connection exclude each other"
        if (self.error is not None or self.message is not None) and self.status is None:
            return "error and message need a status"
        if self.grant_type is not None and self.endpoint != "token":
            return "grant_type only applies to the token endpoint"
        return None

    @property
    def kind(self) -> str:
        parts = ["delay"] if self.delay_seconds else []
        if self.drop_connection:
            parts.append("drop_connection")
        elif self.status is not None:
            parts.append("error")
        return "+".join(parts)

    def error_code(self) -> str:
        if self.error:
            return self.error
        status = self.status or 500
        oauth = self.endpoint in OAUTH_ENDPOINTS
        if status == 429:
            return "rate_limit_exceeded"
        if status == 503 and oauth:
            return "temporarily_unavailable"
        if status >= 500:
            return "server_error" if oauth else "internal_error"
        if status == 401 and not oauth:
            return "access_token_invalid"
        return "invalid_request" if oauth else "invalid_params"

    def error_message(self, code: str) -> str:
        return self.message or _MESSAGES.get(code, "Fault injected by the TikTok sandbox.")


class ActiveFault(msgspec.Struct, kw_only=True):
    id: int
    remaining: int
    spec: FaultSpec


class FaultBook:
    """Faults in the order they were added; a call consumes the first that matches it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[ActiveFault] = []
        self._next_id = 1

    def add(self, spec: FaultSpec) -> ActiveFault:
        with self._lock:
            fault = ActiveFault(id=self._next_id, remaining=spec.count, spec=spec)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def take(self, endpoint: str, grant_type: str | None = None) -> FaultSpec | None:
        with self._lock:
            for fault in self._faults:
                spec = fault.spec
                if spec.endpoint != endpoint:
                    continue
                if spec.grant_type is not None and spec.grant_type != grant_type:
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return spec
            return None

    def clear(self, endpoint: str | None = None) -> int:
        with self._lock:
            keep = [f for f in self._faults if endpoint is not None and f.spec.endpoint != endpoint]
            cleared = len(self._faults) - len(keep)
            self._faults = keep
            return cleared

    def list(self) -> list[ActiveFault]:
        with self._lock:
            return [msgspec.structs.replace(f) for f in self._faults]


class ConnectionDropped(Exception):
    """Raised after the status line is sent, so uvicorn closes the socket mid-response."""


class DropConnection(Response):
    """A response that starts (promising a body) and then kills the connection."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"1024"),
                ],
            }
        )
        raise ConnectionDropped


class _HideDroppedConnections(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


def install_log_filter() -> None:
    """Keep uvicorn from logging a traceback for every connection dropped on purpose."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDroppedConnections) for f in logger.filters):
        logger.addFilter(_HideDroppedConnections())


Render = Callable[[int, str, str], Response]


async def apply_fault(spec: FaultSpec | None, render: Render) -> Response | None:
    """Carry out `spec`; return the response to send instead, or None to answer normally."""
    if spec is None:
        return None
    if spec.delay_seconds:
        await asyncio.sleep(spec.delay_seconds)
    if spec.drop_connection:
        return DropConnection()
    if spec.status is not None:
        code = spec.error_code()
        return render(spec.status, code, spec.error_message(code))
    return None
