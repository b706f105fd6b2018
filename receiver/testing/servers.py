"""Run an ASGI app on a real uvicorn server in a background thread, for real-HTTP tests."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp

from receiver.testing.redis_server import free_port


@contextmanager
def serve_in_thread(app: ASGIApp, *, lifespan: str = "on") -> Iterator[str]:
    """Serve `app` on 127.0.0.1:<free port>; yield its base URL; shut it down after."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan=lifespan,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until_ready(
    process: subprocess.Popen[bytes], url: str, *, timeout: float = 20, log: Path | None = None
) -> None:
    """Wait until `url` answers 200 (e.g. a started `serve`'s /readyz); fail if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            detail = f": {log.read_text()}" if log is not None and log.exists() else ""
            raise RuntimeError(f"{url} did not become ready{detail}")
        time.sleep(0.05)
