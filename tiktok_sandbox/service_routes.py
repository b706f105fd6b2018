"""`GET /sandbox/`: an index of the admin API; `GET /healthz`: the process is up.

The index is built from the app's own routes, so every admin endpoint is listed.
`/healthz` repeats the value of `TIKTOK_WEBHOOKS_RUN_TOKEN` (when the process was started
with it) in the `X-Run-Token` header: `tiktok-webhooks dev` sets a new one for each child
it starts, and so knows it reached its own sandbox, not another program on the port.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tiktok_sandbox.simulated import json_response

ADMIN_PREFIX: Final = "/sandbox/"
RUN_TOKEN_ENV: Final = "TIKTOK_WEBHOOKS_RUN_TOKEN"
RUN_TOKEN_HEADER: Final = "X-Run-Token"


def service_routes(routes: Sequence[BaseRoute]) -> list[Route]:
    """The index of the admin routes among `routes`, and /healthz."""
    endpoints: list[dict[str, object]] = []
    for route in routes:
        if isinstance(route, Route) and route.path.startswith(ADMIN_PREFIX):
            methods = sorted((route.methods or set()) - {"HEAD"})
            endpoints.append({"methods": methods, "path": route.path})
    run_token = os.environ.get(RUN_TOKEN_ENV)

    async def index(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return json_response(
            {
                "service": "tiktok-sandbox admin API (no auth: bind to loopback)",
                "docs": "docs/sandbox.md",
                "base_url": base,
                "endpoints": endpoints,
            }
        )

    async def healthz(request: Request) -> Response:
        response = json_response({"status": "ok"})
        if run_token:
            response.headers[RUN_TOKEN_HEADER] = run_token
        return response

    return [
        Route(ADMIN_PREFIX, index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
