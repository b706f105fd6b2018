"""A thin httpx client for the sandbox, and a clock tests can move, shared by the tests."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tiktok_sandbox import AppConfig, SandboxConfig, SandboxUser

CLIENT_KEY = "test_client_key"
CLIENT_SECRET = "test_client_secret"
REDIRECT_URI = "https://app.example.com/oauth/tiktok/callback"
OTHER_REDIRECT_URI = "https://app.example.com/oauth/tiktok/callback2"
OTHER_KEY = "other_client_key"
OTHER_SECRET = "other_client_secret"
OTHER_APP_REDIRECT = "https://other.example.com/cb"
ALICE = "open-alice"
START = 1_700_000_000.0
DAY = 24 * 3600


class FakeClock:
    """Frozen time that only moves when told to, read from the server thread."""

    def __init__(self, start: float = START) -> None:
        self._lock = threading.Lock()
        self._now = start

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def set(self, value: float) -> None:
        with self._lock:
            self._now = value


def make_config(**overrides: Any) -> SandboxConfig:
    config = SandboxConfig(
        apps=[
            AppConfig(
                client_key=CLIENT_KEY,
                client_secret=CLIENT_SECRET,
                redirect_uris=[REDIRECT_URI, OTHER_REDIRECT_URI],
            ),
            AppConfig(
                client_key=OTHER_KEY,
                client_secret=OTHER_SECRET,
                redirect_uris=[OTHER_APP_REDIRECT],
            ),
        ],
        users=[
            SandboxUser(
                open_id=ALICE,
                union_id="union-alice",
                display_name="Alice",
                username="alice",
                bio_description="hi",
                is_verified=True,
                follower_count=42,
                following_count=7,
                likes_count=1000,
                video_count=3,
            )
        ],
    )
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


def query_of(response: httpx.Response) -> dict[str, str]:
    """The callback query of a 302 from the authorize page, one value per name."""
    assert response.status_code == 302, response.text
    parsed = parse_qs(urlsplit(response.headers["location"]).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in parsed.values())
    return {name: values[0] for name, values in parsed.items()}


class SandboxClient:
    """Talks to a running sandbox over real HTTP; every helper returns the raw response."""

    def __init__(self, base_url: str, clock: FakeClock | None = None) -> None:
        self.base_url = base_url
        self.clock = clock
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=5)

    def close(self) -> None:
        self.http.close()

    def authorize(self, **params: str | None) -> httpx.Response:
        query: dict[str, str | None] = {
            "client_key": CLIENT_KEY,
            "response_type": "code",
            "scope": "user.info.basic",
            "redirect_uri": REDIRECT_URI,
            "state": "state-123",
        }
        query.update(params)
        return self.http.get(
            "/v2/auth/authorize/", params={k: v for k, v in query.items() if v is not None}
        )

    def code(self, **params: str | None) -> str:
        return query_of(self.authorize(**params))["code"]

    def token(self, **form: str | None) -> httpx.Response:
        body: dict[str, str | None] = {"client_key": CLIENT_KEY, "client_secret": CLIENT_SECRET}
        body.update(form)
        return self.http.post(
            "/v2/oauth/token/", data={k: v for k, v in body.items() if v is not None}
        )

    def exchange(self, code: str, **form: str | None) -> httpx.Response:
        fields: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
        }
        fields.update(form)
        return self.token(**fields)

    def login(self, scope: str = "user.info.basic", **params: str | None) -> dict[str, Any]:
        """Authorize and exchange the code: the token endpoint's JSON."""
        redirect = params.get("redirect_uri") or REDIRECT_URI
        extra = {k: params[k] for k in ("client_key", "client_secret") if k in params}
        response = self.exchange(self.code(scope=scope, **params), redirect_uri=redirect, **extra)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def refresh(self, refresh_token: str, **form: str | None) -> httpx.Response:
        return self.token(grant_type="refresh_token", refresh_token=refresh_token, **form)

    def revoke(self, token: str, **form: str | None) -> httpx.Response:
        body: dict[str, str | None] = {
            "client_key": CLIENT_KEY,
            "client_secret": CLIENT_SECRET,
            "token": token,
        }
        body.update(form)
        return self.http.post(
            "/v2/oauth/revoke/", data={k: v for k, v in body.items() if v is not None}
        )

    def user_info(self, token: str | None, fields: str | None = "open_id") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        params = {"fields": fields} if fields is not None else {}
        return self.http.get("/v2/user/info/", params=params, headers=headers)

    def admin(self, method: str, path: str, json: Any = None) -> httpx.Response:
        return self.http.request(method, f"/sandbox/{path}", json=json)

    def settings(self, **changes: Any) -> None:
        response = self.admin("PUT", "settings", changes)
        assert response.status_code == 200, response.text

    def fault(self, **spec: Any) -> None:
        response = self.admin("POST", "faults", spec)
        assert response.status_code == 201, response.text

    def advance(self, seconds: float) -> None:
        response = self.admin("POST", "clock/advance", {"seconds": seconds})
        assert response.status_code == 200, response.text

    def calls(self, **filters: str) -> list[dict[str, Any]]:
        response = self.http.get("/sandbox/calls", params=filters)
        assert response.status_code == 200, response.text
        calls: list[dict[str, Any]] = response.json()["calls"]
        return calls

    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.admin("GET", "events").json()["events"]
        return events
