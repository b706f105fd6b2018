"""Waiting on the processes `tiktok-webhooks dev` starts, for the tests that run it."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def connect(receiver: str, open_id: str) -> None:
    """A browser's trip through Login Kit at `receiver`, with the sandbox playing TikTok
    (its consent decided in the authorize URL)."""
    with httpx.Client(timeout=10) as browser:
        start = browser.get(f"{receiver}/oauth/tiktok/start")
        assert start.status_code == 302
        authorize = browser.get(
            start.headers["location"] + f"&sandbox_user={open_id}&sandbox_decision=approve"
        )
        assert authorize.status_code == 302
        callback = browser.get(authorize.headers["location"])
        assert callback.status_code in (200, 302, 303), callback.text
