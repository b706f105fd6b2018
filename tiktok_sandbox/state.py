"""All of the sandbox's in-memory state, reachable from handlers as `app.state.sandbox`.

Each part guards itself with its own lock and never awaits while holding it, so it is
safe for concurrent requests on the event loop and for tests poking it from another
thread.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable

import msgspec
from starlette.requests import Request

from tiktok_sandbox.calls import CallContext, CallLog
from tiktok_sandbox.clock import SandboxClock
from tiktok_sandbox.config import AppConfig, LiveSettings, SandboxConfig, SettingsPatch
from tiktok_sandbox.data_requests import DataRequestStore
from tiktok_sandbox.delivery_log import DeliveryLog
from tiktok_sandbox.events import Outbox
from tiktok_sandbox.faults import FaultBook
from tiktok_sandbox.grants import TokenStore
from tiktok_sandbox.ids import new_log_id
from tiktok_sandbox.models import SandboxEvent
from tiktok_sandbox.publishes import PostingStore
from tiktok_sandbox.ratelimit import SlidingWindowLimiter
from tiktok_sandbox.users import UserDirectory


class SandboxState:
    def __init__(
        self,
        config: SandboxConfig,
        clock: Callable[[], float] | None = None,
        webhook_clock: Callable[[], float] | None = None,
    ) -> None:
        """`clock` is the sandbox's time (tokens, codes, `create_time`); `webhook_clock`
        (default `time.time`) the wall clock webhooks are signed and logged with."""
        config.validate()
        self.config = config
        self.clock = SandboxClock(clock)
        self.users = UserDirectory()
        self.tokens = TokenStore()
        self.calls = CallLog()
        self.faults = FaultBook()
        self.limiter = SlidingWindowLimiter()
        self.outbox = Outbox()
        self.deliveries = DeliveryLog(webhook_clock)
        self.posts = PostingStore()
        self.data_requests = DataRequestStore()
        self.outbox.subscribe(self._queue_delivery)
        self._lock = threading.Lock()
        self._apps: dict[str, AppConfig] = {}
        self._settings = config.live_settings()
        self.reset()

    def reset(self) -> None:
        """Back to the configuration `create_app` was given: apps, users and settings."""
        with self._lock:
            self._apps = {
                app.client_key: msgspec.structs.replace(app, redirect_uris=list(app.redirect_uris))
                for app in self.config.apps
            }
            self._settings = self.config.live_settings()
        self.users.clear()
        for user in self.config.users:
            self.users.add(msgspec.structs.replace(user))
        self.tokens.clear()
        self.calls.clear()
        self.faults.clear()
        self.limiter.clear()
        self.outbox.clear()
        self.deliveries.clear()
        self.posts.clear()
        self.data_requests.clear()
        self.clock.reset()

    def now(self) -> float:
        return self.clock.now()

    @property
    def settings(self) -> LiveSettings:
        with self._lock:
            return self._settings

    def update_settings(self, patch: SettingsPatch) -> LiveSettings:
        with self._lock:
            self._settings = patch.apply(self._settings)
            return self._settings

    # -- apps ----------------------------------------------------------------------

    def app(self, client_key: str) -> AppConfig | None:
        with self._lock:
            return self._apps.get(client_key)

    def apps(self) -> list[AppConfig]:
        with self._lock:
            return list(self._apps.values())

    def add_app(self, app: AppConfig) -> bool:
        """Register an app; False when its client_key is taken."""
        with self._lock:
            if app.client_key in self._apps:
                return False
            self._apps[app.client_key] = app
            return True

    def set_callback_url(self, client_key: str, url: str | None) -> AppConfig | None:
        """Change where the app's webhooks go (None: nowhere); None if there is no such app.

        Retries of pending deliveries go to the new URL, as each attempt reads it anew.
        """
        with self._lock:
            app = self._apps.get(client_key)
            if app is None:
                return None
            app = msgspec.structs.replace(app, callback_url=url)
            self._apps[client_key] = app
            return app

    def authenticate(self, client_key: str, client_secret: str) -> bool:
        app = self.app(client_key)
        return app is not None and hmac.compare_digest(
            app.client_secret.encode(), client_secret.encode()
        )

    # -- calls and events ------------------------------------------------------------

    def begin_call(self, endpoint: str, method: str) -> CallContext:
        now = self.now()
        return CallContext(endpoint=endpoint, method=method, time=now, log_id=new_log_id(now))

    def _queue_delivery(self, event: SandboxEvent) -> None:
        """Outbox listener: an app with a callback URL gets the event as a webhook."""
        app = self.app(event.client_key)
        if app is not None and app.callback_url is not None:
            self.deliveries.add_event(event)

    def advance_timelines(self) -> None:
        """Move publishes and data requests whose next state is due (their webhooks go out)."""
        now = self.now()
        settings = self.settings

        def emit(
            client_key: str, event: str, open_id: str | None, content: dict[str, object]
        ) -> None:
            self.outbox.emit(
                client_key=client_key, event=event, open_id=open_id, content=content, now=now
            )

        self.posts.advance(now, settings.publish_step_seconds, emit)
        self.data_requests.advance(now, settings.data_ready_seconds, emit)

    def deauthorize(self, open_id: str, client_key: str | None, reason: int) -> list[SandboxEvent]:
        """Revoke the user's grants and queue one `authorization.removed` per app."""
        now = self.now()
        return [
            self.outbox.emit(
                client_key=key,
                event="authorization.removed",
                open_id=open_id,
                content={"reason": reason},
                now=now,
            )
            for key in self.tokens.revoke_user(open_id, client_key, now)
        ]


def get_state(request: Request) -> SandboxState:
    state = request.app.state.sandbox
    assert isinstance(state, SandboxState)
    return state
