"""Async client for TikTok's v2 OAuth token, revoke and user-info endpoints.

One pooled `httpx.AsyncClient` per process. Requests follow tiktok-contract.md §2-4
exactly: form bodies with ``Cache-Control: no-cache`` for OAuth, ``fields`` in the query
and a Bearer header for user info. OAuth errors may arrive with HTTP 200, so responses
are classified by their body first and by their status only when the body says nothing.
Failures become `receiver.tiktok.errors` classes; tokens never reach logs or messages.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote, urlencode

import httpx
import msgspec

from receiver.secrets import Secret
from receiver.settings import AppCredentials, Settings
from receiver.tiktok import metrics as api_metrics
from receiver.tiktok import responses as answers
from receiver.tiktok.metrics import Endpoint
from receiver.tiktok.user_fields import FIELDS_BY_SCOPE, fields_for_scopes

__all__ = ["FIELDS_BY_SCOPE", "TikTokClient", "TokenGrant", "fields_for_scopes"]

logger = logging.getLogger("tiktok_webhooks.api")

TOKEN_PATH: Final = "/v2/oauth/token/"
REVOKE_PATH: Final = "/v2/oauth/revoke/"
USER_INFO_PATH: Final = "/v2/user/info/"


def _json_headers(access_token: Secret) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {access_token.reveal()}",
        "Content-Type": "application/json; charset=UTF-8",
    }


class TokenGrant(msgspec.Struct, frozen=True, kw_only=True):
    """A successful token response (code exchange or refresh); its repr masks the tokens."""

    open_id: str
    scope: tuple[str, ...]
    access_token: Secret
    refresh_token: Secret
    expires_in: int
    refresh_expires_in: int
    token_type: str = "Bearer"


class _TokenBody(msgspec.Struct):
    open_id: str
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    scope: str = ""
    token_type: str = "Bearer"


class TikTokClient:
    """TikTok's OAuth and user-info API for one app; use ``async with`` or `aclose()`."""

    def __init__(
        self,
        settings: Settings,
        *,
        app: AppCredentials | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        before_request: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        app = app or settings.primary_app
        # Awaited before every call with the endpoint name: the worker's shared rate limiter.
        self._before_request = before_request
        if not app.client_secrets:
            raise ValueError("the TikTok app has no client secret")
        self.client_key = app.client_key
        self._client_secret = app.client_secrets[0]  # newest first
        self._auth_url = settings.tiktok_auth_url
        self._default_scopes = settings.tiktok_scopes
        self.timeout_seconds = settings.http_timeout_seconds
        self._http = httpx.AsyncClient(
            base_url=settings.tiktok_api_base_url,
            timeout=httpx.Timeout(settings.http_timeout_seconds),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
            headers={"User-Agent": "tiktok-webhooks/0.1"},
            follow_redirects=False,
            transport=transport,
        )

    def __repr__(self) -> str:
        return (
            f"TikTokClient(client_key={self.client_key!r}, base_url={str(self._http.base_url)!r})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def authorize_url(
        self,
        *,
        state: str,
        redirect_uri: str,
        scopes: Sequence[str] | None = None,
        code_challenge: str | None = None,
    ) -> str:
        """The TikTok authorize URL to redirect the browser to (contract §2.1)."""
        params = {
            "client_key": self.client_key,
            "scope": ",".join(scopes if scopes is not None else self._default_scopes),
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state,
        }
        if code_challenge is not None:
            params["code_challenge"] = code_challenge
            params["code_challenge_method"] = "S256"
        separator = "&" if "?" in self._auth_url else "?"
        return self._auth_url + separator + urlencode(params, quote_via=quote, safe=",")

    async def exchange_code(
        self, code: str, *, redirect_uri: str, code_verifier: str | None = None
    ) -> TokenGrant:
        """Trade an authorization code for tokens; codes are single-use, so never retry blindly."""
        form = {
            "client_key": self.client_key,
            "client_secret": self._client_secret.reveal(),
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
        }
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        return await self._token_call(form)

    async def refresh(self, refresh_token: Secret) -> TokenGrant:
        """Get new tokens; with rotation the old refresh token stops working on success."""
        form = {
            "client_key": self.client_key,
            "client_secret": self._client_secret.reveal(),
            "grant_type": "refresh_token",
            "refresh_token": refresh_token.reveal(),
        }
        return await self._token_call(form)

    async def revoke(self, access_token: Secret) -> None:
        """Disconnect the app from the user's account (success is an empty body)."""
        form = {
            "client_key": self.client_key,
            "client_secret": self._client_secret.reveal(),
            "token": access_token.reveal(),
        }
        await self._oauth_post(REVOKE_PATH, form, "revoke")

    async def user_info(self, access_token: Secret, fields: Sequence[str]) -> dict[str, Any]:
        """The ``data.user`` object for the token's user, with the requested `fields`."""
        if not fields:
            raise ValueError("user_info needs at least one field")
        response = await self._send(
            "user_info",
            "GET",
            USER_INFO_PATH,
            params={"fields": ",".join(fields)},
            headers={"Authorization": f"Bearer {access_token.reveal()}"},
        )
        body = answers.json_object(response)
        error = body.get("error") if body is not None else None
        if isinstance(error, dict):
            # Success is "ok"; an older copy of the docs showed 0 (contract §4).
            if error.get("code") not in ("ok", 0, "0", None):
                raise answers.api_error("user_info", response, error)
        elif error not in (None, "", 0):
            # An OAuth-shaped error on this endpoint, e.g. from a gateway.
            assert body is not None
            raise answers.oauth_error("user_info", response, body)
        if not response.is_success or body is None:
            raise answers.status_error("user_info", response)
        data = body.get("data")
        user = data.get("user") if isinstance(data, dict) else None
        if not isinstance(user, dict):
            raise answers.invalid_response("user_info", response, "no data.user object")
        return user

    async def api_post(
        self,
        endpoint: Endpoint,
        path: str,
        access_token: Secret,
        body: dict[str, Any],
        *,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST a v2 API call with a JSON body; the ``data`` object of a success ({} if none).

        The error code decides (TikTok sends some failures with HTTP 200, and some error
        bodies without ``data``); integers in the answer stay exact (msgspec decodes them).
        """
        response = await self._send(
            endpoint,
            "POST",
            path,
            params=params,
            content=msgspec.json.encode(body),
            headers=_json_headers(access_token),
        )
        answer = answers.json_object(response)
        answers.raise_for_api_error(endpoint, response, answer)
        assert answer is not None
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    @contextlib.asynccontextmanager
    async def api_stream(
        self, endpoint: Endpoint, path: str, access_token: Secret, body: dict[str, Any]
    ) -> AsyncIterator[httpx.Response]:
        """POST a v2 call whose success is a byte stream (a data download); the caller
        reads the body in chunks and tells an archive from a JSON error itself."""
        if self._before_request is not None:
            await self._before_request(endpoint)
        started = time.perf_counter()
        request = self._http.build_request(
            "POST", path, content=msgspec.json.encode(body), headers=_json_headers(access_token)
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            api_metrics.observe_request(endpoint, None, time.perf_counter() - started)
            raise answers.transport_error(endpoint, exc) from None
        api_metrics.observe_request(endpoint, response.status_code, time.perf_counter() - started)
        try:
            yield response
        except httpx.TransportError as exc:
            raise answers.transport_error(endpoint, exc) from None
        finally:
            await response.aclose()

    async def _token_call(self, form: dict[str, str]) -> TokenGrant:
        response, body = await self._oauth_post(TOKEN_PATH, form, "token")
        try:
            parsed = msgspec.convert(body, _TokenBody)
        except msgspec.ValidationError as exc:
            # msgspec's message names the field, never its value.
            raise answers.invalid_response("token", response, f"token response: {exc}") from None
        except (msgspec.MsgspecError, RecursionError, ValueError, TypeError) as exc:
            raise answers.invalid_response(
                "token", response, f"token response: {type(exc).__name__}"
            ) from None
        return TokenGrant(
            open_id=parsed.open_id,
            scope=tuple(s.strip() for s in parsed.scope.split(",") if s.strip()),
            access_token=Secret(parsed.access_token),
            refresh_token=Secret(parsed.refresh_token),
            expires_in=parsed.expires_in,
            refresh_expires_in=parsed.refresh_expires_in,
            token_type=parsed.token_type,
        )

    async def _oauth_post(
        self, path: str, form: dict[str, str], endpoint: Endpoint
    ) -> tuple[httpx.Response, dict[str, Any]]:
        response = await self._send(
            endpoint,
            "POST",
            path,
            data=form,
            headers={"Cache-Control": "no-cache"},
        )
        body = answers.json_object(response)
        if body is not None and body.get("error"):
            raise answers.oauth_error(endpoint, response, body)
        if not response.is_success:
            raise answers.status_error(endpoint, response)
        if body is None:
            if endpoint == "revoke" and not response.content.strip():
                return response, {}
            raise answers.invalid_response(endpoint, response, "the body is not a JSON object")
        return response, body

    async def _send(
        self, endpoint: Endpoint, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        if self._before_request is not None:
            await self._before_request(endpoint)
        started = time.perf_counter()
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            api_metrics.observe_request(endpoint, None, time.perf_counter() - started)
            raise answers.transport_error(endpoint, exc) from None
        elapsed = time.perf_counter() - started
        api_metrics.observe_request(endpoint, response.status_code, elapsed)
        logger.debug(
            "TikTok %s answered HTTP %d in %.3fs (log_id=%s)",
            endpoint,
            response.status_code,
            elapsed,
            response.headers.get("x-tt-logid"),
        )
        return response
