"""The console in a real browser (Debian's Chromium through Playwright) against `dev`.

Real processes as `tiktok-webhooks dev` starts them (Redis, sandbox, receiver, worker with
a test handler that can be broken on purpose). The operator signs in, sees a delivery
the sandbox sent appear and opens it, sees a failing handler's dead letter, replays it
and sees it succeed, looks at a user's profile and signs out. Every page gets a
screenshot (in $CONSOLE_SCREENSHOTS, default a temporary directory) and an accessibility
check (labelled controls, heading order, colour contrast).

Skipped, saying why, only where Chromium is not installed (`scripts/bootstrap` installs
it in CI and with WITH_BROWSER=1).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from receiver.testing.redis_server import free_port
from tests.console.failing_handler import BROKEN_FLAG
from tests.dev_stack import answers, connect, wait_for

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ACCESSIBILITY_CHECK = (Path(__file__).parent / "accessibility.js").read_text()
USER = "console-user"

if not Path(CHROMIUM).exists():
    pytest.skip(
        f"Chromium is not installed at {CHROMIUM}: run `WITH_BROWSER=1 scripts/bootstrap` "
        "(or `apt-get install chromium`) to run the console's browser tests",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@dataclass
class Stack:
    receiver: str
    sandbox: str
    admin_token: str
    redis_url: str

    def sandbox_api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.sandbox}{path}", timeout=10, **kwargs)
        assert response.is_success, response.text
        return response.json() if response.content else None


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("console-stack")
    port, sandbox_port, metrics_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOK_", "REDIS_"))}
    env |= {
        "WORKER_HANDLER_MODULES": "tests.console.failing_handler",
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [
            sys.executable, "-m", "receiver.cli", "dev", "--quiet",
            "--port", str(port), "--sandbox-port", str(sandbox_port),
            "--worker-metrics-port", str(metrics_port), "--data-dir", str(data_dir),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    receiver = f"http://127.0.0.1:{port}"
    try:
        wait_for("the dev stack", lambda: answers(f"{receiver}/readyz"), timeout=90)
        wait_for("the worker", lambda: answers(f"http://127.0.0.1:{metrics_port}/metrics"))
        # `dev` writes stack.env once every child is up.
        wait_for("the stack's settings file", (data_dir / "stack.env").exists)
        yield Stack(
            receiver=receiver,
            sandbox=f"http://127.0.0.1:{sandbox_port}",
            admin_token=read_env(data_dir / "env")["ADMIN_TOKEN"],
            redis_url=read_env(data_dir / "stack.env")["REDIS_URL"],
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the pages' screenshots go: $CONSOLE_SCREENSHOTS (docs/console to refresh the
    documentation's), else a temporary directory."""
    chosen = os.environ.get("CONSOLE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Visit:
    """Takes a screenshot of each page and runs the accessibility check on it."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.pages: list[str] = []

    def check(self, name: str) -> None:
        self.page.screenshot(path=str(self.folder / f"{name}.png"), full_page=True)
        problems = self.page.evaluate(ACCESSIBILITY_CHECK)
        assert problems == [], f"{name}: {problems}"
        self.pages.append(name)


def test_an_operator_session(stack: Stack, browser: Browser, screenshots: Path) -> None:
    store = redis.Redis.from_url(stack.redis_url)
    stack.sandbox_api("POST", "/sandbox/users", json={"open_id": USER, "display_name": "Ines"})
    connect(stack.receiver, USER)
    context = browser.new_context()
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text))
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith(stack.receiver) else outside.append(request.url)
        ),
    )
    visit = Visit(page, screenshots)
    try:
        # Sign in.
        page.goto(f"{stack.receiver}/console/")
        expect(page).to_have_url(re.compile(r"/console/login$"))
        visit.check("login")
        page.get_by_label("Console token").fill("not the token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("not right")
        page.get_by_label("Console token").fill(stack.admin_token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
        cookie = next(c for c in context.cookies() if c["name"] == "console_session")
        assert cookie["httpOnly"]
        assert cookie["secure"]
        assert cookie["sameSite"] == "Strict"

        # A delivery the sandbox sends appears; open it.
        stack.sandbox_api(
            "POST",
            "/sandbox/webhooks",
            json={
                "event": "video.publish.completed",
                "open_id": USER,
                "content": {"share_id": "video.console.1"},
            },
        )
        page.get_by_role("link", name="Deliveries").click()
        row = page.get_by_role("row").filter(has_text="video.publish.completed")
        for _ in range(50):
            if row.count():
                break
            page.wait_for_timeout(200)
            page.reload()
        expect(row.first).to_contain_text(USER)
        expect(row.first).to_contain_text("accepted")
        visit.check("deliveries")
        row.first.get_by_role("link").first.click()
        expect(page.locator("pre").first).to_contain_text("video.console.1")
        visit.check("delivery")

        # A failing handler's dead letter; replay it once fixed and see it succeed.
        store.set(BROKEN_FLAG, b"1")
        stack.sandbox_api(
            "POST",
            "/sandbox/webhooks",
            json={"event": "video.upload.failed", "open_id": USER},
        )
        page.get_by_role("link", name="Dead letters").click()
        letter = page.get_by_role("row").filter(has_text="video.upload.failed")
        for _ in range(100):
            if letter.count():
                break
            page.wait_for_timeout(200)
            page.reload()
        expect(letter).to_contain_text("broken on purpose")
        visit.check("dead-letters")
        letter.get_by_role("link").first.click()
        expect(page.get_by_text("broken on purpose")).to_be_visible()
        visit.check("dead-letter")
        store.delete(BROKEN_FLAG)
        page.get_by_role("button", name="Replay…").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Replay this dead letter")
        visit.check("confirm")
        page.get_by_role("button", name="Yes, do it").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Dead letters")
        replays = page.get_by_role("heading", name="Recent replays").locator("xpath=..")
        for _ in range(50):
            if page.locator(".job-done").count():
                break
            page.wait_for_timeout(200)
            page.reload()
        expect(page.locator(".job-done").first).to_have_text("done")
        expect(replays).to_contain_text("1 replayed")
        expect(page.get_by_role("row").filter(has_text="video.upload.failed")).to_have_count(0)

        # The user's profile (fetched by the worker after the connect).
        page.get_by_role("link", name="Users").click()
        visit.check("users")
        page.get_by_role("link", name=USER).click()
        for _ in range(50):
            if page.get_by_text("Ines", exact=True).count():
                break
            page.wait_for_timeout(200)
            page.reload()
        expect(page.get_by_text("Ines", exact=True)).to_be_visible()
        expect(page.locator(".status").first).to_have_text("active")
        assert page.locator("img").count() == 0
        visit.check("user")

        page.get_by_role("link", name="Overview").click()
        expect(page.get_by_role("link", name=re.compile("accepted"))).to_be_visible()
        visit.check("overview")

        # The forward destination `dev` configures, and the deliveries sent to it.
        page.get_by_role("navigation").get_by_role("link", name="Forwarding").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Forwarding")
        forwarded = page.get_by_role("row").filter(has_text="video.publish.completed")
        for _ in range(50):
            if forwarded.count():
                break
            page.wait_for_timeout(200)
            page.reload()
        expect(forwarded.first).to_contain_text("succeeded")
        expect(page.get_by_role("row").filter(has_text="default").first).to_contain_text("enabled")
        visit.check("forwarding")

        # Sign out: the console asks for the token again.
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/console/login$"))
        page.goto(f"{stack.receiver}/console/users")
        expect(page).to_have_url(re.compile(r"/console/login$"))
    finally:
        context.close()
        store.close()
    assert outside == []
    assert not [text for text in blocked if "Content Security Policy" in text], blocked
    assert len(visit.pages) == 10
