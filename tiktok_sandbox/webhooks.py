"""The webhook sender: POSTs each queued delivery the way TikTok does, retrying failures.

One background task per running app, started and stopped by the app's lifespan, claims
due deliveries from the state's `DeliveryLog` and runs at most `webhooks.concurrency`
attempts at a time, each in a task of its own, so no request handler ever waits on a
delivery. Every attempt is signed anew with the app's client_secret, exactly as the
receiver verifies it (`TikTok-Signature: t=<unix>,s=<hex HMAC-SHA256 of "t." + body>`):
a fresh `t` from the wall clock (plus the setting `clock_skew_seconds`), over the same
body bytes. Only a 200 acknowledges; any other status, a connection error or a timeout
is a failed attempt, retried on the schedule of `WebhookSettings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from tiktok_sandbox.delivery_log import RESPONSE_SNIPPET_BYTES, Attempt, Job
from tiktok_sandbox.signing import delivery_headers
from tiktok_sandbox.state import SandboxState

logger = logging.getLogger("tiktok_sandbox.webhooks")

USER_AGENT = "tiktok-sandbox-webhooks/1.0"
_MAX_ERROR_CHARS = 300


class _Answer:
    __slots__ = ("error", "snippet", "status", "truncated")

    def __init__(
        self,
        status: int | None = None,
        error: str | None = None,
        snippet: str = "",
        truncated: bool = False,
    ) -> None:
        self.status = status
        self.error = error
        self.snippet = snippet
        self.truncated = truncated


def _describe(exc: BaseException) -> str:
    text = str(exc)
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return described[:_MAX_ERROR_CHARS]


class WebhookSender:
    """Sends the deliveries of one `SandboxState`; `start()` and `stop()` on its loop."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._log = state.deliveries
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        # trust_env=False: a proxy from the environment must not swallow loopback calls.
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, headers={"User-Agent": USER_AGENT}
        )
        self._log.set_notifier(self.notify)
        self._task = asyncio.create_task(self._run(), name="sandbox-webhook-sender")

    async def stop(self) -> None:
        """Cancel the loop and any attempt under way (its delivery stays pending)."""
        self._log.set_notifier(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        attempts = list(self._inflight)
        for task in attempts:
            task.cancel()
        await asyncio.gather(*attempts, return_exceptions=True)
        self._inflight.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._loop = None

    def notify(self) -> None:
        """Wake the loop: a delivery is due. Safe from any thread."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            concurrency = self._state.settings.webhooks.concurrency
            for job in self._log.claim_due(time.monotonic(), concurrency - len(self._inflight)):
                task = asyncio.create_task(
                    self._attempt(job), name=f"sandbox-webhook-{job.delivery_id}"
                )
                self._inflight.add(task)
                task.add_done_callback(self._attempt_done)
            timeout: float | None = None  # all slots busy: wait for one to free up
            if len(self._inflight) < concurrency:
                due = self._log.next_due()
                if due is not None:
                    timeout = max(0.0, due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook attempt failed unexpectedly", exc_info=task.exception())
        if self._wake is not None:
            self._wake.set()

    async def _attempt(self, job: Job) -> None:
        state = self._state
        app = state.app(job.client_key)
        url = app.callback_url if app is not None else None
        started_at = self._log.wall_clock()
        timestamp = int(started_at + state.settings.webhooks.clock_skew_seconds)
        started = time.perf_counter()
        try:
            if app is None:
                answer = _Answer(error="the app is no longer registered")
            elif url is None:
                answer = _Answer(error="the app has no callback URL")
            else:
                headers = delivery_headers(app.client_secret, job.body, timestamp)
                answer = await self._post(url, job.body, headers)
        except asyncio.CancelledError:
            self._log.release(job)
            raise
        except Exception as exc:
            logger.exception("sandbox bug while sending webhook delivery %d", job.delivery_id)
            answer = _Answer(error=f"sandbox internal error: {_describe(exc)}")
        attempt = Attempt(
            number=job.number,
            started_at=started_at,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            url=url,
            signature_timestamp=timestamp,
            status_code=answer.status,
            error=answer.error,
            response_body=answer.snippet,
            response_truncated=answer.truncated,
        )
        status = self._log.finish(job, attempt, state.settings.webhooks, time.monotonic())
        logger.info(
            "webhook delivery %d attempt %d to %s: %s (%s)",
            job.delivery_id,
            job.number,
            url,
            answer.status if answer.status is not None else answer.error,
            status or "forgotten",
        )

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> _Answer:
        """POST once; the status and the start of the answer, or what went wrong."""
        assert self._client is not None
        timeout = self._state.settings.webhooks.timeout_seconds
        try:
            # httpx's timeout bounds each read; asyncio's bounds the whole exchange.
            async with asyncio.timeout(timeout):
                async with self._client.stream(
                    "POST", url, content=body, headers=headers, timeout=timeout
                ) as response:
                    snippet = bytearray()
                    truncated = False
                    async for chunk in response.aiter_bytes():
                        room = RESPONSE_SNIPPET_BYTES - len(snippet)
                        snippet += chunk[:room]
                        if len(chunk) > room:
                            truncated = True
                            break
                    return _Answer(
                        response.status_code, None, snippet.decode("utf-8", "replace"), truncated
                    )
        except (TimeoutError, httpx.TimeoutException):
            return _Answer(error=f"timeout after {timeout:g} s")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return _Answer(error=_describe(exc))
