"""The console's tests drive the receiver in-process and the sandbox as TikTok over HTTP."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final

import httpx

from receiver.settings import Settings
from tests.oauth.conftest import sandbox_info, tiktok
from tests.oauth.harness import ADMIN_TOKEN, RECEIVER, Browser, oauth_settings, running

__all__ = ["sandbox_info", "tiktok"]

CONSOLE: Final = f"{RECEIVER}/console"
_CSRF: Final = re.compile(r'name="csrf" value="([^"]+)"')


def console_settings(redis_url: str, sandbox_url: str, **env: str) -> Settings:
    return oauth_settings(redis_url, sandbox_url, **{"CONSOLE_ENABLED": "1", **env})


def csrf_of(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


class Operator:
    """A browser signed in to the console (cookies in its jar)."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.http = browser.http

    async def sign_in(self, token: str = ADMIN_TOKEN) -> httpx.Response:
        form = await self.http.get(f"{CONSOLE}/login")
        assert form.status_code == 200
        return await self.http.post(
            f"{CONSOLE}/login", data={"csrf": csrf_of(form.text), "token": token}
        )

    async def page(self, path: str) -> httpx.Response:
        return await self.http.get(f"{CONSOLE}{path}")

    async def post(self, path: str, *, from_page: str, **fields: str) -> httpx.Response:
        """POST a form the way the page at `from_page` carries it (with its CSRF token)."""
        page = await self.page(from_page)
        assert page.status_code == 200, page.text
        return await self.http.post(f"{CONSOLE}{path}", data={"csrf": csrf_of(page.text), **fields})


@asynccontextmanager
async def signed_in(settings: Settings) -> AsyncIterator[Operator]:
    async with running(settings) as browser:
        operator = Operator(browser)
        response = await operator.sign_in()
        assert response.status_code == 303, response.text
        yield operator


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
