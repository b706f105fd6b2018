"""`tiktok-webhooks dev` as a new user runs it: a real stack of real processes."""

from __future__ import annotations

import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import clean_env

CLI = [sys.executable, "-m", "receiver.cli"]
FREE_PORTS = ["--port", "0", "--sandbox-port", "0", "--worker-metrics-port", "0"]
pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "redis-server"], capture_output=True, check=False).returncode != 0,
    reason="needs redis-server",
)


def dev_env() -> dict[str, str]:
    return clean_env()


class Output:
    """The lines a process prints, read by a thread; `wait_for` blocks until one matches."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stream = process.stdout

        def pump() -> None:
            for line in stream:
                self.lines.put(line)

        self.reader = threading.Thread(target=pump, daemon=True)
        self.reader.start()

    def wait_for(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} never printed; got:\n{''.join(self.seen[-40:])}")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    package = tmp_path / "acme"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "hooks.py").write_text(
        "from handlers.registry import registry\n\n"
        "@registry.on('tiktok.ping', name='acme.pong')\n"
        "async def pong(event, ctx):\n"
        "    return 'pong'\n"
    )
    return tmp_path


@pytest.fixture
def stack(project: Path) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    process = subprocess.Popen(
        [*CLI, "dev", *FREE_PORTS, "--data-dir", str(project / ".dev-data"),
         "--handlers", "acme.hooks"],
        cwd=project,
        env=dev_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    output = Output(process)
    try:
        output.wait_for("dev stack is up")
        yield process, output
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.reader.join(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def in_activated_shell(project: Path, command: str) -> subprocess.CompletedProcess[str]:
    """`command` in a fresh shell that only sourced the activate file, as the README says."""
    env = {"HOME": str(project), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(
        ["bash", "-c", f". .dev-data/activate && {command}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dev_stack_from_a_fresh_shell(
    project: Path, stack: tuple[subprocess.Popen[str], Output]
) -> None:
    process, output = stack
    data = project / ".dev-data"
    for name in ("activate", "env"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    activate = (data / "activate").read_text()
    assert f"export PATH={Path(sys.executable).parent}:" in activate
    output.wait_for("  . .dev-data/activate")  # the banner's one line to source

    listing = in_activated_shell(project, "tiktok-webhooks dlq list")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.strip() == "dead-letter list is empty"

    receiver = next(
        line.split()[-1] for line in (data / "stack.env").read_text().splitlines()
        if line.startswith("TIKTOK_REDIRECT_URI=")
    ).removesuffix("/oauth/tiktok/callback").split("=")[-1]  # fmt: skip
    sent = in_activated_shell(
        project, f"tiktok-webhooks send {receiver}/webhooks/tiktok --event tiktok.ping"
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    output.wait_for("tiktok.ping -> acme.pong: ok")
    listed = in_activated_shell(project, "tiktok-webhooks handlers list")
    assert listed.returncode == 0, listed.stderr
    assert "acme.pong" in listed.stdout

    second = subprocess.run(
        [*CLI, "dev", *FREE_PORTS, "--data-dir", str(data)],
        cwd=project,
        env=dev_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 5
    assert "another `tiktok-webhooks dev`" in second.stderr
    assert "Traceback" not in second.stderr

    hooks = project / "acme" / "hooks.py"
    good = hooks.read_text()
    hooks.write_text(good.replace("async def", "async deff"))  # a typo while editing
    output.wait_for("changed: restarting the worker")
    output.wait_for("the worker did not start with the changed handlers")
    hooks.write_text(good.replace("'pong'", "'pong again'"))
    output.wait_for("changed: restarting the worker")
    output.wait_for("worker restarted with the new handlers")
    assert process.poll() is None  # the stack kept running through the typo


def test_dev_says_which_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = subprocess.run(
            [*CLI, "dev", *FREE_PORTS[2:], "--port", str(port), "--data-dir", str(tmp_path)],
            env=dev_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 4
    assert f"{port} (--port)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "stack.env").exists()
    assert not (tmp_path / "redis.log").exists()  # nothing was started
