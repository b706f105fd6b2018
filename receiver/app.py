"""The web process: the webhook endpoint, health, readiness, metrics, and optionally
the OAuth routes (TIKTOK_REDIRECT_URI set), the internal API (ADMIN_TOKEN set) and the
operator console (CONSOLE_ENABLED, with its recent-delivery index)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from receiver.api.routes import InternalApi
from receiver.console.routes import ConsoleRoutes, check_console
from receiver.ingest import webhook
from receiver.ingest.capture import CaptureConfig, capturing
from receiver.ingest.enqueue import EventQueue
from receiver.ingest.recent import RecentIndex
from receiver.oauth.routes import OAuthRoutes
from receiver.redis_conn import create_redis
from receiver.redis_watch import redis_location, watch_redis
from receiver.settings import Settings
from receiver.vault.services import (
    TokenServices,
    check_web_features,
    internal_api_enabled,
    oauth_enabled,
)


class ReceiverApp:
    """Routes the callback path straight to the webhook endpoint, the rest to Starlette."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        # Refuse to start half-configured (raises ConfigError saying what to set).
        check_web_features(settings)
        check_console(settings)
        self.settings = settings
        self.capture_config = CaptureConfig(
            enabled=settings.webhook_capture,
            max_entries=settings.webhook_capture_max_entries,
            max_age_seconds=settings.webhook_capture_max_age_seconds,
        )
        self.webhook = webhook.WebhookEndpoint(settings, clock=clock)
        routes: list[BaseRoute] = [
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.metrics),
        ]
        # Off unless configured: their paths are then plain 404s.
        self.oauth = OAuthRoutes(settings) if oauth_enabled(settings) else None
        self.internal_api = InternalApi(settings) if internal_api_enabled(settings) else None
        self.console = ConsoleRoutes(settings) if settings.console_enabled else None
        for feature in self._features():
            if feature is not None:
                routes.extend(feature.routes())
        self.starlette = Starlette(routes=routes, lifespan=self.lifespan)
        self.redis = create_redis(settings)
        # Set by `tiktok-webhooks dev` per child: /healthz and /readyz repeat it, so the
        # supervisor knows it reached its own receiver (not another program on the port).
        self.run_token = os.environ.get("TIKTOK_WEBHOOKS_RUN_TOKEN") or None

    def _features(self) -> tuple[OAuthRoutes | InternalApi | ConsoleRoutes, ...]:
        return tuple(f for f in (self.oauth, self.internal_api, self.console) if f is not None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == webhook.PATH:
            await self.webhook(scope, receive, send)
            return
        await self.starlette(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        queue = EventQueue(
            self.redis,
            queue_name=self.settings.queue_name,
            dedupe_ttl_seconds=self.settings.webhook_dedupe_ttl_seconds,
            job_expires_seconds=self.settings.job_expires_seconds,
        )
        stop_watch = asyncio.Event()
        watch = asyncio.ensure_future(
            watch_redis(self.redis, redis_location(self.settings), stop_watch)
        )
        await queue.load_script()
        self.webhook.queue = queue
        services = None
        if self._features():
            services = TokenServices.open(self.settings, self.redis)
        for feature in self._features():
            feature.attach(services)
        recent = None
        if self.console is not None:
            recent = RecentIndex(
                self.redis,
                max_entries=self.settings.console_recent_max_entries,
                max_age_seconds=self.settings.console_recent_max_age_seconds,
            )
            self.webhook.recent = recent.note
        try:
            async with capturing(self.webhook, self.redis, self.capture_config):
                yield
        finally:
            stop_watch.set()
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            self.webhook.recent = None
            if recent is not None:
                await recent.aclose()
            for feature in self._features():
                feature.attach(None)
            if services is not None:
                await services.aclose()
            self.webhook.queue = None
            await queue.aclose()
            await self.redis.aclose()

    async def healthz(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=self._run_token_header())

    async def readyz(self, _request: Request) -> Response:
        headers = self._run_token_header()
        try:
            # Bounded as a whole: redis-py's own timeouts apply per socket operation.
            async with asyncio.timeout(self.settings.redis_timeout_seconds):
                await self.redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            return JSONResponse(
                {"status": "unavailable", "redis": type(exc).__name__},
                status_code=503,
                headers=headers,
            )
        return JSONResponse({"status": "ready"}, headers=headers)

    def _run_token_header(self) -> dict[str, str] | None:
        return {"X-Run-Token": self.run_token} if self.run_token else None

    async def metrics(self, _request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> ReceiverApp:
    return ReceiverApp(settings, clock=clock)
