"""Login Kit for Web: `/oauth/tiktok/start` and `/oauth/tiktok/callback` (contract §2.1-2.4).

`start` makes a single-use state bound to the browser (kept in an encrypted cookie, see
`receiver.oauth.state`; nothing is written to Redis) and redirects to TikTok; it is rate
limited per client address. `callback` checks the state, exchanges the code, stores the
tokens in the vault, marks the user connected and asks the worker to fetch the profile.
Every failure is a page that says what happened (and, for TikTok errors, the operator
hint and TikTok's log_id); none shows a token or a secret, and none is a 500.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Final, Literal
from urllib.parse import urlencode, urlsplit

from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from receiver import users
from receiver.oauth.pages import SECURITY_HEADERS, page, tiktok_error_details
from receiver.oauth.ratelimit import StartLimiter
from receiver.oauth.state import FlowCookies, Rejection, StateChecker, pkce_pair
from receiver.settings import Settings
from receiver.tiktok.errors import (
    InvalidGrant,
    RateLimited,
    RedirectUriMismatch,
    TikTokError,
    error_for,
)
from receiver.vault.services import TokenServices

logger = logging.getLogger("tiktok_webhooks.oauth")

START_PATH: Final = "/oauth/tiktok/start"
CALLBACK_PATH: Final = "/oauth/tiktok/callback"
CONNECTED_PATH: Final = "/oauth/tiktok/connected"
# TikTok's codes are well under 200 characters; anything huge is not one.
_MAX_PARAM_LENGTH: Final = 2048
_DEFAULT_RETRY_AFTER: Final = 30
# OAuth error codes (RFC 6749 §4.1.2.1 and TikTok's) are short snake_case words; anything
# else is logged and shown as "invalid", never as sent.
_ERROR_CODE: Final = re.compile(r"[a-z0-9_.]{1,64}")

Outcome = Literal[
    "redirected",
    "rate_limited",
    "connected",
    "denied",
    "invalid_state",
    "bad_request",
    "tiktok_error",
    "transient",
    "unavailable",
]
OAUTH_REQUESTS: Final = Counter(
    "tiktok_oauth_requests_total",
    "OAuth start and callback requests, by route (start, callback) and outcome.",
    ["route", "outcome"],
)
for _outcome in ("connected", "denied", "invalid_state", "tiktok_error", "transient"):
    OAUTH_REQUESTS.labels("callback", _outcome)


class OAuthRoutes:
    """The two routes; `attach` gives them the services the app's lifespan created."""

    def __init__(self, settings: Settings) -> None:
        assert settings.tiktok_redirect_uri is not None
        self.settings = settings
        self.redirect_uri = settings.tiktok_redirect_uri
        self.secure_cookie = urlsplit(self.redirect_uri).scheme == "https"
        # `__Host-` cookies are only accepted when Secure, on Path=/ and without Domain.
        self.cookie_name = "__Host-tiktok_oauth" if self.secure_cookie else "tiktok_oauth"
        self.services: TokenServices | None = None
        self.states: StateChecker | None = None
        self.cookies = FlowCookies(
            settings.token_encryption_keys,
            ttl_seconds=settings.oauth_state_ttl_seconds,
            binding=self.cookie_name,
        )
        self.limiter = StartLimiter(settings.oauth_start_rate_per_minute)

    def routes(self) -> list[Route]:
        return [
            Route(START_PATH, self.start, methods=["GET"]),
            Route(CALLBACK_PATH, self.callback, methods=["GET"]),
            Route(CONNECTED_PATH, self.connected, methods=["GET"]),
        ]

    def attach(self, services: TokenServices | None) -> None:
        self.services = services
        self.states = None if services is None else StateChecker(services.redis, self.cookies)

    async def start(self, request: Request) -> Response:
        if self.services is None or self.states is None:
            return self._unavailable("start")
        now = time.time()
        wait = self.limiter.allow(request.client.host if request.client else None, now)
        if wait is not None:
            return self._done(
                "start",
                "rate_limited",
                page(
                    429,
                    "Too many sign-in attempts",
                    "Too many sign-ins were started from your network. Please wait a minute.",
                    headers={"Retry-After": str(int(wait))},
                ),
            )
        client = self.services.client()
        assert client is not None
        verifier, challenge = pkce_pair() if self.settings.tiktok_use_pkce else (None, None)
        state, expires_at = self.cookies.new_state(now)
        cookie = self.cookies.started(
            request.cookies.get(self.cookie_name), state, verifier, expires_at, now
        )
        url = client.authorize_url(
            state=state,
            redirect_uri=self.redirect_uri,
            scopes=self.settings.tiktok_scopes,
            code_challenge=challenge,
        )
        response = RedirectResponse(url, status_code=302, headers=SECURITY_HEADERS)
        response.set_cookie(
            self.cookie_name,
            cookie,
            max_age=self.settings.oauth_state_ttl_seconds,
            path="/",
            secure=self.secure_cookie,
            httponly=True,
            samesite="lax",
        )
        OAUTH_REQUESTS.labels("start", "redirected").inc()
        return response

    async def callback(self, request: Request) -> Response:
        try:
            return await self._callback(request)
        except (RedisError, OSError) as exc:
            logger.warning("OAuth callback: Redis unavailable (%s)", type(exc).__name__)
            return self._unavailable("callback")

    async def _callback(self, request: Request) -> Response:
        if self.services is None or self.states is None:
            return self._unavailable("callback")
        params = request.query_params
        for name in ("state", "code", "error", "error_description"):
            values = params.getlist(name)
            if len(values) > 1 or any(len(v) > _MAX_PARAM_LENGTH for v in values):
                return self._bad_request(f"The parameter {name!r} is repeated or too long.")

        checked = await self.states.consume(
            params.get("state"), request.cookies.get(self.cookie_name)
        )
        if isinstance(checked, Rejection):
            logger.info("OAuth callback rejected: %s", checked.name.lower())
            return self._done(
                "callback",
                "invalid_state",
                page(400, "This sign-in cannot be completed", checked.value, start_again=True),
            )

        error = params.get("error")
        if error:
            error_code = error if _ERROR_CODE.fullmatch(error) else "invalid"
            return self._tiktok_refused(error_code, params.get("error_description") or "")
        code = params.get("code")
        if not code:
            return self._bad_request("TikTok's response has neither a code nor an error.")

        client = self.services.client()
        vault = self.services.vault()
        assert client is not None
        assert vault is not None
        try:
            grant = await client.exchange_code(
                code, redirect_uri=self.redirect_uri, code_verifier=checked.code_verifier
            )
        except TikTokError as exc:
            return self._exchange_failed(exc)
        if not grant.open_id:
            return self._exchange_failed(
                TikTokError("invalid_response", "the token response has no open_id")
            )
        await vault.save_grant(grant)
        await users.record_connected(self.services.redis, client.client_key, grant.open_id)
        await users.enqueue_profile_fetch(
            self.services.queue,
            client.client_key,
            grant.open_id,
            reason="connect",
            queue_name=self.settings.queue_name,
        )
        logger.info("user %s connected (scopes %s)", grant.open_id, ",".join(grant.scope))
        if self.settings.oauth_success_url:
            response: Response = RedirectResponse(
                self.settings.oauth_success_url, status_code=303, headers=SECURITY_HEADERS
            )
        else:
            # Once, to a URL without the code: reloading the page must not reuse it.
            # Relative, so it also works behind a path-prefix proxy.
            target = "connected"
            if self.settings.is_development:
                target += "?" + urlencode({"open_id": grant.open_id})
            response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
        return self._done("callback", "connected", response)

    async def connected(self, request: Request) -> Response:
        """Where a successful callback lands (under `dev`: who connected, what to try)."""
        details: list[tuple[str, str]] = []
        open_id = request.query_params.get("open_id", "")
        if self.settings.is_development and open_id and len(open_id) <= _MAX_PARAM_LENGTH:
            details = [
                ("open_id", open_id),
                ("Try next", f"tiktok-webhooks tokens show {open_id}"),
                ("Or", f"curl -s -H \"Authorization: Bearer $ADMIN_TOKEN\" "
                 f"{self.redirect_uri.removesuffix(CALLBACK_PATH)}/internal/users/{open_id}"),
            ]  # fmt: skip
        return page(
            200,
            "TikTok account connected",
            "Your TikTok account is connected. You can close this window.",
            details=details,
            details_title="Connected (development)",
        )

    def _tiktok_refused(self, error: str, description: str) -> Response:
        """TikTok sent the browser back with `error` instead of a code."""
        if error == "access_denied":
            return self._done(
                "callback",
                "denied",
                page(
                    403,
                    "TikTok account not connected",
                    "Access was not allowed on TikTok, so nothing was connected.",
                    start_again=True,
                ),
            )
        exc = error_for(error, description, http_status=None, endpoint="authorize")
        logger.warning("OAuth authorize failed: %s", exc)
        return self._done(
            "callback",
            "tiktok_error",
            page(
                400,
                "TikTok could not connect the account",
                "TikTok did not authorize this request.",
                details=tiktok_error_details(exc),
                start_again=True,
            ),
        )

    def _exchange_failed(self, exc: TikTokError) -> Response:
        details = tiktok_error_details(exc)
        if exc.is_retryable:
            wait = int(exc.retry_after) if isinstance(exc, RateLimited) else _DEFAULT_RETRY_AFTER
            return self._done(
                "callback",
                "transient",
                page(
                    503,
                    "TikTok is not answering right now",
                    "Connecting the account failed because TikTok could not be reached or "
                    "was busy. Please try again in a minute.",
                    details=details,
                    start_again=True,
                    headers={"Retry-After": str(max(1, wait))},
                ),
            )
        if isinstance(exc, InvalidGrant) and not isinstance(exc, RedirectUriMismatch):
            return self._done(
                "callback",
                "tiktok_error",
                page(
                    400,
                    "This sign-in has expired",
                    "TikTok no longer accepts this sign-in: it was already used or took too "
                    "long. Please start again.",
                    details=details,
                    start_again=True,
                ),
            )
        return self._done(
            "callback",
            "tiktok_error",
            page(
                502,
                "TikTok could not connect the account",
                "TikTok refused the request because of a problem with this site's TikTok "
                "settings. The details below tell the site's operator what to fix.",
                details=details,
                start_again=True,
            ),
        )

    def _bad_request(self, message: str) -> Response:
        return self._done(
            "callback",
            "bad_request",
            page(400, "This sign-in cannot be completed", message, start_again=True),
        )

    def _unavailable(self, route: Literal["start", "callback"]) -> Response:
        return self._done(
            route,
            "unavailable",
            page(
                503,
                "Temporarily unavailable",
                "The service cannot store the sign-in right now. Please try again shortly.",
                headers={"Retry-After": str(self.settings.webhook_retry_after_seconds)},
            ),
        )

    def _done(self, route: str, outcome: Outcome, response: Response) -> Response:
        OAUTH_REQUESTS.labels(route, outcome).inc()
        return response
