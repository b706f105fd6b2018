"""An operator with the console open during the ingest benchmark: signs in, then loads
the overview once a second (as a browser tab refreshing it would), timing each page."""

from __future__ import annotations

import re
import threading
import time
from types import TracebackType

import httpx

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Operator:
    def __init__(self, base_url: str, token: str, *, every_seconds: float = 1.0) -> None:
        self.base_url = base_url
        self.token = token
        self.every_seconds = every_seconds
        self.page_ms: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Operator:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        # The console's cookies are Secure; a browser keeps them on http://127.0.0.1, an
        # httpx cookie jar does not, so they are carried by hand.
        with httpx.Client(base_url=self.base_url, timeout=10) as browser:
            form = browser.get("/console/login")
            found = _CSRF.search(form.text)
            login_cookie = form.cookies.get("console_login")
            signed_in = (
                found
                and login_cookie
                and browser.post(
                    "/console/login",
                    data={"csrf": found.group(1), "token": self.token},
                    headers={"Cookie": f"console_login={login_cookie}"},
                )
            )
            if not signed_in or signed_in.status_code != 303:
                self.errors.append("could not sign in to the console")
                return
            session = {"Cookie": f"console_session={signed_in.cookies['console_session']}"}
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    page = browser.get("/console/", headers=session)
                except httpx.HTTPError as exc:
                    self.errors.append(type(exc).__name__)
                else:
                    if page.status_code == 200:
                        self.page_ms.append((time.perf_counter() - started) * 1000)
                    else:
                        self.errors.append(f"HTTP {page.status_code}")
                self._stop.wait(self.every_seconds)

    def summary(self) -> dict[str, float]:
        pages = sorted(self.page_ms)
        if not pages:
            return {"pages": 0, "errors": len(self.errors)}
        return {
            "pages": len(pages),
            "errors": len(self.errors),
            "p50_ms": round(pages[len(pages) // 2], 1),
            "max_ms": round(pages[-1], 1),
        }
