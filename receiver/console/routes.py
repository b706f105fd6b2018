"""The console's routes under /console/: login, pages, confirmed actions, its static files.

Every page needs a session (see `receiver.console.session`); without one a GET is sent to
the login form and a POST gets 403. Every POST needs the session's CSRF token (403
otherwise) and every action asks for confirmation first: the button posts to a
confirmation page whose own form (``confirm=yes``) does it. Responses carry
`SECURITY_HEADERS`. Bad input (unknown ids, odd filters) gives a 404 or the page with
nothing found, never a 500; Redis unreachable gives a 503 page.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import parse_qs, quote, urlencode

import msgspec
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from handlers.forwarding.store import STATES, DeliveryStore
from receiver import keys
from receiver.console import actions, queries
from receiver.console.session import (
    COOKIE_PATH,
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_COOKIE_SECONDS,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    SessionData,
    Signer,
    same_token,
)
from receiver.secrets import Secret
from receiver.settings import ConfigError, Settings
from receiver.vault.services import MIN_ADMIN_TOKEN_LENGTH, TokenServices

logger = logging.getLogger("tiktok_webhooks.console")

PREFIX: Final = "/console"
HERE: Final = Path(__file__).resolve().parent
TEMPLATES: Final = HERE / "templates"
STATIC: Final = HERE / "static"
STATIC_TYPES: Final = {".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
MAX_FORM_BYTES: Final = 16 * 1024
MAX_FILTER_CHARS: Final = 200
USERS_CACHE_SECONDS: Final = 15.0
NAV: Final = (
    ("overview", "Overview", ""),
    ("deliveries", "Deliveries", "/deliveries"),
    ("users", "Users", "/users"),
    ("dead-letters", "Dead letters", "/dead-letters"),
    ("forwarding", "Forwarding", "/forwarding"),
)
FORWARD_STATES: Final = STATES
CHART_COLOURS: Final = {
    "accepted": "#1a7f37",
    "duplicate": "#57606a",
    "malformed": "#8a5a00",
    "unavailable": "#a40e26",
}

Page = Callable[[Request, "Operator"], Awaitable[Response]]


def console_enabled(settings: Settings) -> bool:
    return settings.console_enabled


def console_token(settings: Settings) -> Secret | None:
    return settings.console_token or settings.admin_token


def check_console(settings: Settings) -> None:
    """Raise ConfigError if CONSOLE_ENABLED is set but the console cannot work."""
    if not settings.console_enabled:
        return
    problems = []
    token = console_token(settings)
    if token is None:
        problems.append(
            "CONSOLE_ENABLED needs CONSOLE_TOKEN (or ADMIN_TOKEN) for the operators' login: "
            "use the output of `tiktok-webhooks keygen`"
        )
    elif len(token.reveal()) < MIN_ADMIN_TOKEN_LENGTH:
        problems.append(
            f"CONSOLE_TOKEN is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters: use a random "
            "value, e.g. the output of `tiktok-webhooks keygen`"
        )
    if not settings.apps:
        problems.append("CONSOLE_ENABLED needs TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET")
    if not settings.token_encryption_keys:
        problems.append(
            "CONSOLE_ENABLED shows and refreshes users' tokens: set TOKEN_ENCRYPTION_KEYS"
        )
    if problems:
        raise ConfigError(problems)


class Operator(msgspec.Struct, frozen=True):
    session: SessionData
    address: str

    @property
    def who(self) -> str:
        return f"session {self.session.sid} from {self.address}"


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    seconds = int(time.time() - ts)
    if seconds < 0:
        return "in " + _span(-seconds)
    return _span(seconds) + " ago"


def _span(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _pretty(value: Any) -> str:
    try:
        return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
    except (TypeError, msgspec.EncodeError):
        return repr(value)


def _clip(value: str | None) -> str:
    return (value or "").strip()[:MAX_FILTER_CHARS]


class ConsoleRoutes:
    """Routes under /console; `attach` gives them the lifespan's services."""

    def __init__(self, settings: Settings) -> None:
        token = console_token(settings)
        assert token is not None
        self.settings = settings
        self.signer = Signer(token, session_seconds=settings.console_session_seconds)
        self.services: TokenServices | None = None
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        env = self.templates.env
        env.filters["when"] = _when
        env.filters["ago"] = _ago
        env.filters["text"] = _text
        env.filters["pretty"] = _pretty
        self._users_cache: tuple[float, dict[str, int], bool] | None = None

    def attach(self, services: TokenServices | None) -> None:
        self.services = services

    def routes(self) -> list[BaseRoute]:
        page = self._page
        return [
            Route(f"{PREFIX}/login", self.login_form, methods=["GET"]),
            Route(f"{PREFIX}/login", self.login, methods=["POST"]),
            Route(f"{PREFIX}/logout", page(self.logout), methods=["POST"]),
            Route(f"{PREFIX}", self.to_overview, methods=["GET"]),
            Route(f"{PREFIX}/", page(self.overview), methods=["GET"]),
            Route(f"{PREFIX}/deliveries", page(self.deliveries), methods=["GET"]),
            Route(f"{PREFIX}/deliveries/{{entry_id}}", page(self.delivery), methods=["GET"]),
            Route(f"{PREFIX}/users", page(self.users), methods=["GET"]),
            Route(f"{PREFIX}/users/{{client_key}}/{{open_id}}", page(self.user), methods=["GET"]),
            Route(
                f"{PREFIX}/users/{{client_key}}/{{open_id}}/{{action}}",
                page(self.user_action),
                methods=["POST"],
            ),
            Route(f"{PREFIX}/dead-letters", page(self.dead_letters), methods=["GET"]),
            Route(f"{PREFIX}/dead-letters/replay", page(self.replay_all), methods=["POST"]),
            Route(f"{PREFIX}/dead-letters/{{letter_id}}", page(self.dead_letter), methods=["GET"]),
            Route(
                f"{PREFIX}/dead-letters/{{letter_id}}/replay",
                page(self.replay_one),
                methods=["POST"],
            ),
            Route(f"{PREFIX}/forwarding", page(self.forwarding), methods=["GET"]),
            Route(
                f"{PREFIX}/forwarding/deliveries/{{delivery_id}}",
                page(self.forward_delivery),
                methods=["GET"],
            ),
            Route(
                f"{PREFIX}/forwarding/deliveries/{{delivery_id}}/retry",
                page(self.forward_retry),
                methods=["POST"],
            ),
            Route(
                f"{PREFIX}/forwarding/destinations/{{name}}/{{action}}",
                page(self.destination_action),
                methods=["POST"],
            ),
            Route(f"{PREFIX}/static/{{name}}", self.static, methods=["GET"]),
        ]

    # -- plumbing ------------------------------------------------------------------------

    def _base(self, request: Request) -> str:
        return str(request.scope.get("root_path", "")) + PREFIX

    def _render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        *,
        operator: Operator | None = None,
        status: int = 200,
    ) -> Response:
        base = self._base(request)
        nav = [(key, label, base + (path or "/")) for key, label, path in NAV]
        full = {
            "base": base,
            "nav": nav,
            "operator": operator,
            "csrf": operator.session.csrf if operator else None,
            "csrf_field": CSRF_FIELD,
            **context,
        }
        return self.templates.TemplateResponse(
            request, template, full, status_code=status, headers=SECURITY_HEADERS
        )

    def _message(
        self,
        request: Request,
        status: int,
        title: str,
        message: str,
        operator: Operator | None = None,
    ) -> Response:
        context = {"title": title, "message": message, "section": ""}
        return self._render(request, "message.html", context, operator=operator, status=status)

    async def _form(self, request: Request) -> dict[str, str] | None:
        """The urlencoded form of a POST (first value per name); None if unreadable."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return None
        try:
            parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
        except (UnicodeDecodeError, ValueError):
            return None
        return {name: values[0] for name, values in parsed.items()}

    async def _operator(self, request: Request, services: TokenServices) -> Operator | None:
        session = self.signer.read_session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        if not await services.redis.exists(keys.CONSOLE_SESSION_PREFIX + session.sid):
            return None  # logged out
        address = request.client.host if request.client else "unknown"
        return Operator(session, address)

    def _page(self, handler: Page) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            services = self.services
            if services is None:
                return self._message(request, 503, "Starting", "The console is starting.")
            try:
                operator = await self._operator(request, services)
                if operator is None:
                    if request.method == "POST":
                        return self._message(
                            request, 403, "Not signed in", "Sign in again, then retry."
                        )
                    return RedirectResponse(
                        self._base(request) + "/login", 303, headers=SECURITY_HEADERS
                    )
                if request.method == "POST":
                    form = await self._form(request)
                    if form is None or not same_token(operator.session.csrf, form.get(CSRF_FIELD)):
                        return self._message(
                            request,
                            403,
                            "Form expired",
                            "This form is not valid for your session: reload the page and "
                            "try again.",
                            operator,
                        )
                    request.state.form = form
                return await handler(request, operator)
            except (RedisError, OSError) as exc:
                logger.warning("console: Redis unavailable (%s)", type(exc).__name__)
                return self._message(
                    request, 503, "Redis unreachable", "Redis does not answer; retry shortly."
                )

        return endpoint

    def _redirect(self, request: Request, path: str) -> Response:
        return RedirectResponse(self._base(request) + path, 303, headers=SECURITY_HEADERS)

    # -- login ---------------------------------------------------------------------------

    def _set_cookie(
        self, request: Request, response: Response, name: str, value: str, max_age: int
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=str(request.scope.get("root_path", "")) + COOKIE_PATH,
            secure=True,
            httponly=True,
            samesite="strict",
        )

    async def login_form(self, request: Request, *, problem: str = "") -> Response:
        csrf, cookie = self.signer.new_login()
        context = {"title": "Sign in", "section": "", "login_csrf": csrf, "problem": problem}
        response = self._render(request, "login.html", context, status=401 if problem else 200)
        self._set_cookie(request, response, LOGIN_COOKIE, cookie, LOGIN_COOKIE_SECONDS)
        return response

    async def login(self, request: Request) -> Response:
        services = self.services
        if services is None:
            return self._message(request, 503, "Starting", "The console is starting.")
        form = await self._form(request)
        expected = self.signer.login_csrf(request.cookies.get(LOGIN_COOKIE))
        if form is None or expected is None or not same_token(expected, form.get(CSRF_FIELD)):
            return self._message(
                request, 403, "Form expired", "The sign-in form expired: open it again."
            )
        token = console_token(self.settings)
        assert token is not None
        address = request.client.host if request.client else "unknown"
        if token != form.get("token", "").strip():  # Secret.__eq__: constant time
            logger.warning("console: failed sign-in from %s", address)
            return await self.login_form(request, problem="That token is not right.")
        session, cookie = self.signer.new_session()
        try:
            await services.redis.set(
                keys.CONSOLE_SESSION_PREFIX + session.sid, b"1", ex=self.signer.session_seconds
            )
        except (RedisError, OSError):
            return self._message(
                request, 503, "Redis unreachable", "Redis does not answer; retry shortly."
            )
        logger.info("console: session %s signed in from %s", session.sid, address)
        response = self._redirect(request, "/")
        self._set_cookie(request, response, SESSION_COOKIE, cookie, self.signer.session_seconds)
        response.delete_cookie(LOGIN_COOKIE, path=self._base(request))
        return response

    async def logout(self, request: Request, operator: Operator) -> Response:
        assert self.services is not None
        await self.services.redis.delete(keys.CONSOLE_SESSION_PREFIX + operator.session.sid)
        logger.info("console: %s signed out", operator.who)
        response = self._redirect(request, "/login")
        response.delete_cookie(
            SESSION_COOKIE, path=self._base(request), secure=True, httponly=True, samesite="strict"
        )
        return response

    async def to_overview(self, request: Request) -> Response:
        return self._redirect(request, "/")

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        path = STATIC / name
        media_type = STATIC_TYPES.get(path.suffix)
        if media_type is None or "/" in name or name.startswith(".") or not path.is_file():
            return Response("not found", 404, headers=SECURITY_HEADERS)
        headers = {**SECURITY_HEADERS, "Cache-Control": "private, max-age=300"}
        return Response(path.read_bytes(), media_type=media_type, headers=headers)

    # -- pages ---------------------------------------------------------------------------

    def _warn_before(self) -> float:
        return self.settings.refresh_token_warning_days * 86400.0

    async def _user_counts(self, services: TokenServices) -> tuple[dict[str, int], bool]:
        now = time.monotonic()
        cached = self._users_cache
        if cached is not None and now - cached[0] < USERS_CACHE_SECONDS:
            return cached[1], cached[2]
        counts, partial = await queries.users_by_status(
            services.redis, warn_before=self._warn_before()
        )
        self._users_cache = (now, counts, partial)
        return counts, partial

    async def overview(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        minutes = await queries.deliveries_per_minute(services.redis)
        state = await queries.queue_state(services.redis, self.settings.queue_name)
        user_counts, users_partial = await self._user_counts(services)
        recent = await queries.recent_actions(services.redis, limit=10)
        destinations = await queries.forward_destinations(self.settings, services.redis)
        totals = {outcome: 0 for outcome in queries.OUTCOMES}
        for minute in minutes:
            for outcome, count in minute.counts.items():
                totals[outcome] = totals.get(outcome, 0) + count
        context = {
            "title": "Overview",
            "section": "overview",
            "chart": _chart(minutes),
            "totals": totals,
            "state": state,
            "user_counts": user_counts,
            "users_partial": users_partial,
            "actions": recent,
            "destinations": destinations,
            "destination_states": {
                name: sum(1 for d in destinations if d.state == name)
                for name in ("enabled", "failing", "disabled")
            },
        }
        return self._render(request, "overview.html", context, operator=operator)

    async def deliveries(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        params = request.query_params
        filters = queries.DeliveryFilter(
            event=_clip(params.get("event")),
            user=_clip(params.get("user")),
            app=_clip(params.get("app")),
        )
        before = _clip(params.get("before")) or None
        if before is not None and not queries._is_stream_id(before):
            before = None
        found, next_cursor = await queries.recent_deliveries(services.redis, filters, before=before)
        query = {k: v for k, v in msgspec.structs.asdict(filters).items() if v}
        next_url = None
        if next_cursor:
            next_url = "?" + urlencode({**query, "before": next_cursor})
        context = {
            "title": "Deliveries",
            "section": "deliveries",
            "deliveries": found,
            "filters": filters,
            "next_url": next_url,
            "apps": [app.client_key for app in self.settings.apps],
            "max_entries": self.settings.console_recent_max_entries,
            "max_age_hours": self.settings.console_recent_max_age_seconds / 3600,
        }
        return self._render(request, "deliveries.html", context, operator=operator)

    async def delivery(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        found = await queries.delivery(services.redis, request.path_params["entry_id"])
        if found is None:
            return self._message(
                request,
                404,
                "Delivery not found",
                "It is not in the recent-delivery index (it may have aged out).",
                operator,
            )
        context = {
            "title": f"Delivery {found.id}",
            "section": "deliveries",
            "delivery": found,
            "decoded": queries.decoded_content(found.body),
            "raw": found.body.decode("utf-8", "replace"),
        }
        return self._render(request, "delivery.html", context, operator=operator)

    async def users(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        params = request.query_params
        apps = [app.client_key for app in self.settings.apps]
        app = params.get("app") or apps[0]
        if app not in apps:
            app = apps[0]
        cursor_text = params.get("cursor", "0")
        cursor = int(cursor_text) if cursor_text.isdigit() and len(cursor_text) < 20 else 0
        status = _clip(params.get("status"))
        rows, next_cursor = await queries.users_page(
            services.redis, app, cursor=cursor, warn_before=self._warn_before()
        )
        if status:
            rows = [row for row in rows if row.status == status]
        next_url = None
        if next_cursor:
            next_url = "?" + urlencode(
                {"app": app, "cursor": next_cursor, **({"status": status} if status else {})}
            )
        context = {
            "title": "Users",
            "section": "users",
            "rows": rows,
            "apps": apps,
            "app": app,
            "status": status,
            "statuses": ("active", "expiring", "needs_reauth", "revoked", "corrupt"),
            "next_url": next_url,
        }
        return self._render(request, "users.html", context, operator=operator)

    async def user(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        client_key = request.path_params["client_key"]
        open_id = request.path_params["open_id"]
        vault = services.vault(client_key) if client_key in services.vaults else None
        if vault is None:
            return self._message(
                request, 404, "Unknown app", "No app with that client key.", operator
            )
        fields = await cast(
            Awaitable[dict[Any, Any]],
            services.redis.hgetall(keys.TOKEN_PREFIX + f"{client_key}:{open_id}"),
        )
        row = None
        if fields:
            text_fields = {_text(k): _text(v) for k, v in fields.items()}
            row = queries.token_state(
                client_key,
                open_id,
                text_fields,
                warn_before=self._warn_before(),
                now=time.time(),
            )
        profile = await queries.profile(services.redis, client_key, open_id)
        if row is None and profile is None:
            return self._message(
                request, 404, "User not found", "No tokens or profile stored for this user.",
                operator,
            )  # fmt: skip
        statuses, statuses_partial = await queries.user_statuses(
            services.redis, client_key, open_id
        )
        videos = await queries.user_videos(services.redis, client_key, open_id)
        data_requests = await queries.user_data_requests(services.redis, client_key, open_id)
        target = f"{client_key}:{open_id}"
        user_actions = [
            a for a in await queries.recent_actions(services.redis, 100) if a.target == target
        ][:10]
        context = {
            "title": f"User {open_id}",
            "section": "users",
            "client_key": client_key,
            "open_id": open_id,
            "row": row,
            "profile": profile,
            "profile_fields": _profile_fields(profile.fields if profile else {}),
            "statuses": statuses,
            "statuses_partial": statuses_partial,
            "videos": videos,
            "data_requests": data_requests,
            "fetched_limit": queries.USER_FETCHED_LIMIT,
            "actions": user_actions,
        }
        return self._render(request, "user.html", context, operator=operator)

    async def user_action(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        client_key = request.path_params["client_key"]
        open_id = request.path_params["open_id"]
        action = request.path_params["action"]
        vault = services.vault(client_key) if client_key in services.vaults else None
        descriptions = {
            "refresh": (
                "Refresh this user's token now",
                "The service asks TikTok for a new access token with the stored refresh "
                "token (TikTok then retires the old refresh token).",
            ),
            "reauth": (
                "Mark this user for re-authorization",
                "The stored tokens are no longer used; the user must connect again through "
                "the OAuth flow.",
            ),
        }
        if vault is None or action not in descriptions:
            return self._message(request, 404, "Not found", "No such user action.", operator)
        path = f"/users/{quote(client_key, safe='')}/{quote(open_id, safe='')}"
        form: dict[str, str] = request.state.form
        if form.get("confirm") != "yes":
            title, detail = descriptions[action]
            return self._confirm(
                request, operator, title, detail, f"{open_id} ({client_key})", path
            )
        if action == "refresh":
            await actions.refresh_user(services.redis, vault, open_id, who=operator.who)
        else:
            await actions.require_reauth(services.redis, vault, open_id, who=operator.who)
        return self._redirect(request, path)

    def _confirm(
        self,
        request: Request,
        operator: Operator,
        title: str,
        detail: str,
        target: str,
        back: str,
        hidden: dict[str, str] | None = None,
    ) -> Response:
        context = {
            "title": title,
            "section": "",
            "detail": detail,
            "target": target,
            "action_url": request.url.path,
            "back": self._base(request) + back,
            "hidden": hidden or {},
        }
        return self._render(request, "confirm.html", context, operator=operator)

    async def dead_letters(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        filters = _letter_filter(request.query_params)
        letters, size = await queries.dead_letters(services.redis, filters)
        replays = [
            a
            for a in await queries.recent_actions(services.redis, 50)
            if a.what.startswith("replay")
        ][:10]
        job_ids = [job for a in replays for job in a.job_ids][:100]
        states = await queries.job_states(services.redis, job_ids, self.settings.queue_name)
        context = {
            "title": "Dead letters",
            "section": "dead-letters",
            "letters": letters,
            "size": size,
            "window": queries.DEAD_LETTER_WINDOW,
            "filters": filters,
            "filter_fields": msgspec.structs.asdict(filters),
            "replays": replays,
            "states": states,
        }
        return self._render(request, "dead_letters.html", context, operator=operator)

    async def dead_letter(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        letter = await queries.dead_letter(services.redis, request.path_params["letter_id"])
        if letter is None:
            return self._message(
                request,
                404,
                "Dead letter not found",
                "It is not in the dead-letter list (replayed or dropped already?).",
                operator,
            )
        body = queries.letter_body(letter)
        context = {
            "title": f"Dead letter {letter.id}",
            "section": "dead-letters",
            "letter": letter,
            "decoded": queries.decoded_content(body) if body is not None else None,
            "other_args": [_text(a) for a in letter.args if not isinstance(a, bytes)],
        }
        return self._render(request, "dead_letter.html", context, operator=operator)

    async def replay_one(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        letter_id = request.path_params["letter_id"]
        letter = await queries.dead_letter(services.redis, letter_id)
        if letter is None:
            return self._message(
                request, 404, "Dead letter not found", "Replayed or dropped already.", operator
            )
        form: dict[str, str] = request.state.form
        if form.get("confirm") != "yes":
            return self._confirm(
                request,
                operator,
                "Replay this dead letter",
                "The job goes back on the queue with a fresh try count and leaves the "
                "dead-letter list; if it fails again it comes back with a new id.",
                f"{letter.id}: {letter.function} ({letter.event}), {letter.error_type}",
                f"/dead-letters/{letter.id}",
            )
        await actions.replay_letters(
            services.redis,
            services.queue,
            [letter.id],
            queue_name=self.settings.queue_name,
            who=operator.who,
        )
        return self._redirect(request, "/dead-letters")

    async def replay_all(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        form: dict[str, str] = request.state.form
        filters = _letter_filter(form)
        ids = await actions.matching_letter_ids(services.redis, filters)
        if form.get("confirm") != "yes":
            described = ", ".join(
                f"{name} = {value}"
                for name, value in msgspec.structs.asdict(filters).items()
                if value
            )
            return self._confirm(
                request,
                operator,
                f"Replay {len(ids)} dead letters",
                "Each job goes back on the queue with a fresh try count and leaves the "
                f"dead-letter list (at most {actions.REPLAY_ALL_LIMIT} at once).",
                described or "every dead letter",
                "/dead-letters",
                hidden={k: v for k, v in msgspec.structs.asdict(filters).items() if v},
            )
        if ids:
            await actions.replay_letters(
                services.redis,
                services.queue,
                ids,
                queue_name=self.settings.queue_name,
                who=operator.who,
            )
        return self._redirect(request, "/dead-letters")

    async def forwarding(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        params = request.query_params
        names = [d.name for d in self.settings.forward_destinations]
        destination = _clip(params.get("destination")) or None
        if destination not in names:
            destination = None
        state = _clip(params.get("state")) or None
        if state not in FORWARD_STATES:
            state = None
        destinations = await queries.forward_destinations(self.settings, services.redis)
        found = await queries.forward_deliveries(
            self.settings, services.redis, destination=destination, state=state
        )
        recent = [
            a for a in await queries.recent_actions(services.redis, 50) if "forward" in a.what
        ][:10]
        context = {
            "title": "Forwarding",
            "section": "forwarding",
            "destinations": destinations,
            "deliveries": found,
            "destination": destination or "",
            "state": state or "",
            "states": FORWARD_STATES,
            "page_size": queries.FORWARD_PAGE,
            "actions": recent,
        }
        return self._render(request, "forwarding.html", context, operator=operator)

    async def forward_delivery(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        found = await queries.forward_delivery(
            self.settings, services.redis, request.path_params["delivery_id"]
        )
        if found is None:
            return self._message(
                request,
                404,
                "Forward delivery not found",
                "No forward delivery by that id (it may have expired).",
                operator,
            )
        context = {
            "title": f"Forward delivery {found.delivery.id}",
            "section": "forwarding",
            "found": found,
        }
        return self._render(request, "forward_delivery.html", context, operator=operator)

    async def forward_retry(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        delivery_id = request.path_params["delivery_id"]
        found = await queries.forward_delivery(self.settings, services.redis, delivery_id)
        if found is None:
            return self._message(
                request,
                404,
                "Forward delivery not found",
                "No forward delivery by that id (it may have expired).",
                operator,
            )
        path = f"/forwarding/deliveries/{quote(delivery_id, safe='')}"
        form: dict[str, str] = request.state.form
        if form.get("confirm") != "yes":
            d = found.delivery
            return self._confirm(
                request,
                operator,
                "Send this forward delivery again",
                "It is sent to its destination again now, with a fresh retry schedule, "
                "whatever its state (also if it was delivered already).",
                f"{d.id}: {d.event} to {d.destination}, {d.state}, {d.attempts} attempts",
                path,
            )
        await actions.retry_forward_delivery(
            services.redis,
            DeliveryStore(services.redis),
            delivery_id,
            who=operator.who,
        )
        return self._redirect(request, path)

    async def destination_action(self, request: Request, operator: Operator) -> Response:
        services = self.services
        assert services is not None
        name = request.path_params["name"]
        action = request.path_params["action"]
        descriptions = {
            "disable": (
                "Disable this forward destination",
                "Nothing more is sent to it: new events for it are held until it is enabled again.",
            ),
            "enable": (
                "Enable this forward destination",
                "New events are sent to it again, and the deliveries held while it was "
                "disabled are sent now, each with a fresh retry schedule.",
            ),
        }
        known = any(d.name == name for d in self.settings.forward_destinations)
        if not known or action not in descriptions:
            return self._message(
                request, 404, "Not found", "No such forward destination or action.", operator
            )
        form: dict[str, str] = request.state.form
        if form.get("confirm") != "yes":
            title, detail = descriptions[action]
            return self._confirm(request, operator, title, detail, name, "/forwarding")
        await actions.set_destination_enabled(
            services.redis,
            DeliveryStore(services.redis),
            name,
            enabled=action == "enable",
            who=operator.who,
        )
        return self._redirect(request, "/forwarding")


def _letter_filter(params: Any) -> queries.LetterFilter:
    return queries.LetterFilter(
        event=_clip(params.get("event")),
        function=_clip(params.get("function")),
        error=_clip(params.get("error")),
    )


# Profile fields that are links to TikTok (shown as links, never loaded as images).
_LINK_FIELDS: Final = frozenset(
    {"avatar_url", "avatar_url_100", "avatar_large_url", "profile_deep_link"}
)


def _profile_fields(fields: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(name, value, is a link) per profile field, in name order."""
    shown = []
    for name in sorted(fields):
        value = fields[name]
        text = value if isinstance(value, str) else _pretty(value)
        is_link = name in _LINK_FIELDS and isinstance(value, str) and value.startswith("https://")
        shown.append((name, text, is_link))
    return shown


class ChartBar(msgspec.Struct, frozen=True):
    x: int
    y: float
    height: float
    colour: str
    label: str


def _chart(minutes: list[queries.MinuteCounts]) -> dict[str, Any]:
    """Stacked bars per minute, as SVG rectangles (no script, no inline style)."""
    width, height, bar = 600, 120, 10
    peak = max((m.total for m in minutes), default=0) or 1
    bars = []
    for index, minute in enumerate(minutes):
        y = float(height)
        for outcome in queries.OUTCOMES:
            count = minute.counts.get(outcome, 0)
            if not count:
                continue
            size = count / peak * (height - 10)
            y -= size
            when = datetime.datetime.fromtimestamp(minute.minute * 60, datetime.UTC)
            bars.append(
                ChartBar(
                    x=index * bar,
                    y=round(y, 1),
                    height=round(size, 1),
                    colour=CHART_COLOURS[outcome],
                    label=f"{when:%H:%M}Z {outcome}: {count}",
                )
            )
    return {
        "width": width,
        "height": height,
        "bar": bar - 2,
        "bars": bars,
        "peak": peak if any(m.total for m in minutes) else 0,
        "colours": CHART_COLOURS,
    }
