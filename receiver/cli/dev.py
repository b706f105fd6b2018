"""`tiktok-webhooks dev`: Redis, the sandbox, the receiver and a worker, wired together.

Every part runs as a child process on loopback; this process supervises them: it
prints where everything is, prefixes each child's output with its name, stops all of
them on Ctrl-C, and reports (and stops) when one of them dies.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from receiver.forward_config import generate_secret
from receiver.testing.redis_server import free_port
from receiver.vault.crypto import generate_key

CLI = [sys.executable, "-m", "receiver.cli"]


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    threads: list[threading.Thread] = field(default_factory=list)


def load_or_create_env(data_dir: Path) -> dict[str, str]:
    """The dev app's credentials and keys, made once and kept (tokens survive restarts)."""
    path = data_dir / "env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                values[name.strip()] = value.strip()
    wanted: dict[str, Callable[[], str]] = {
        "TIKTOK_CLIENT_KEY": lambda: f"dev_{secrets.token_hex(6)}",
        "TIKTOK_CLIENT_SECRET": lambda: secrets.token_urlsafe(24),
        "TOKEN_ENCRYPTION_KEYS": generate_key,
        "ADMIN_TOKEN": lambda: secrets.token_urlsafe(24),
        "FORWARD_SECRET": generate_secret,
    }
    missing = {name: make() for name, make in wanted.items() if not values.get(name)}
    if missing:
        values |= missing
        path.write_text(
            "# Made by `tiktok-webhooks dev`: development credentials, not TikTok's.\n"
            + "".join(f"{name}={value}\n" for name, value in values.items())
        )
        path.chmod(0o600)
    return values


def _answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def _redis_answers(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return check


# Resolved in the parent: between fork and exec the child must not load anything.
_LIBC = ctypes.CDLL(None)


def _die_with_parent() -> None:
    """In the child: get SIGTERM if `dev` itself is killed, so nothing is left behind."""
    with contextlib.suppress(AttributeError):
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux only; elsewhere a no-op)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _pump(name: str, stream: IO[bytes], log: IO[bytes], quiet: bool) -> None:
    width = 9
    for line in iter(stream.readline, b""):
        log.write(line)
        log.flush()
        if not quiet:
            sys.stdout.write(f"{name:<{width}}| {line.decode('utf-8', 'replace')}")
            sys.stdout.flush()


class Supervisor:
    def __init__(self, quiet: bool) -> None:
        self.children: list[Child] = []
        self.quiet = quiet

    def start(self, child: Child, timeout: float = 30.0) -> None:
        log = child.log_path.open("ab")
        child.process = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
            child.argv,
            env=child.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self.children.append(child)
        assert child.process.stdout is not None
        pump = threading.Thread(
            target=_pump, args=(child.name, child.process.stdout, log, self.quiet), daemon=True
        )
        pump.start()
        child.threads.append(pump)
        deadline = time.monotonic() + timeout
        while not child.ready():
            if child.process.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with status {child.process.returncode} while "
                    f"starting; see {child.log_path}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} did not become ready; see {child.log_path}")
            time.sleep(0.1)

    def watch(self) -> int:
        """Block until Ctrl-C (0) or until a child dies (1)."""
        while True:
            for child in self.children:
                assert child.process is not None
                code = child.process.poll()
                if code is not None:
                    print(
                        f"\n!! {child.name} exited with status {code}; stopping the rest. "
                        f"Its log: {child.log_path}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.3)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


def cmd_dev(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    creds = load_or_create_env(data_dir)
    port: int = args.port
    sandbox_port: int = args.sandbox_port or free_port()
    base = f"http://127.0.0.1:{port}"
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    redirect_uri = f"{base}/oauth/tiktok/callback"
    echo = f"http://127.0.0.1:{args.echo_port or free_port()}"
    supervisor = Supervisor(quiet=args.quiet)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOK_", "REDIS_"))}
    redis_url = os.environ.get("REDIS_URL")
    try:
        if not redis_url:
            binary = shutil.which("redis-server")
            if binary is None:
                print("redis-server is not installed: `sudo apt-get install -y redis-server`")
                return 2
            redis_port = args.redis_port or free_port()
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            supervisor.start(
                Child(
                    "redis",
                    [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir",
                     str(data_dir), "--appendonly", "yes", "--save", ""],
                    env,
                    _redis_answers(redis_port),
                    data_dir / "redis.log",
                )
            )  # fmt: skip
        wiring = {
            "REDIS_URL": redis_url,
            "TIKTOK_WEBHOOKS_ENV": "development",
            "TIKTOK_REDIRECT_URI": redirect_uri,
            "TIKTOK_API_BASE_URL": sandbox,
            "TIKTOK_AUTH_URL": f"{sandbox}/v2/auth/authorize/",
            "TIKTOK_SCOPES": args.scopes,
            "FORWARD_URL": f"{echo}/",  # every event, forwarded to the echo consumer
        }
        # So `tiktok-webhooks status|tokens|dlq ...` in another shell reach this stack.
        (data_dir / "stack.env").write_text("".join(f"{k}={v}\n" for k, v in wiring.items()))
        service_env = env | creds | wiring
        supervisor.start(
            Child(
                "sandbox",
                [*CLI, "sandbox", "--port", str(sandbox_port),
                 "--client-key", creds["TIKTOK_CLIENT_KEY"],
                 "--client-secret", creds["TIKTOK_CLIENT_SECRET"],
                 "--redirect-uri", redirect_uri,
                 "--callback-url", f"{base}/webhooks/tiktok",
                 "--webhook-time-scale", str(args.webhook_time_scale),
                 "--interactive"],
                env,
                _answers(f"{sandbox}/sandbox/users"),
                data_dir / "sandbox.log",
            )
        )  # fmt: skip
        supervisor.start(
            Child(
                "echo",
                [*CLI, "forward", "echo", "--port", echo.rsplit(":", 1)[1]],
                env | {"FORWARD_SECRET": creds["FORWARD_SECRET"]},
                _answers(f"{echo}/healthz"),
                data_dir / "echo.log",
            )
        )
        supervisor.start(
            Child(
                "receiver",
                [*CLI, "serve", "--port", str(port)],
                service_env,
                _answers(f"{base}/readyz"),
                data_dir / "receiver.log",
            )
        )
        supervisor.start(
            Child(
                "worker",
                [*CLI, "worker", "--metrics-port", str(args.worker_metrics_port)],
                service_env,
                _answers(f"http://127.0.0.1:{args.worker_metrics_port}/metrics"),
                data_dir / "worker.log",
            )
        )
        _print_summary(args, base, sandbox, creds, data_dir)
        return supervisor.watch()
    except RuntimeError as exc:
        print(f"tiktok-webhooks dev: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…", file=sys.stderr)
        return 0
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            supervisor.stop_all()


def _print_summary(
    args: argparse.Namespace, base: str, sandbox: str, creds: dict[str, str], data_dir: Path
) -> None:
    env_file = data_dir / "env"
    print(
        f"""
tiktok-webhooks dev stack is up (Ctrl-C stops everything)

  receiver          {base}/webhooks/tiktok
  connect a user    {base}/oauth/tiktok/start      (open in a browser; the sandbox plays TikTok)
  receiver metrics  {base}/metrics
  worker metrics    http://127.0.0.1:{args.worker_metrics_port}/metrics
  sandbox (TikTok)  {sandbox}/                     (admin API: {sandbox}/sandbox/...)
  internal API      {base}/internal/users/<open_id>  (Authorization: Bearer $ADMIN_TOKEN)
  data and logs     {data_dir}

in another shell, to use the CLI against this stack:
  set -a; . {env_file}; . {data_dir / "stack.env"}; set +a

send a signed test event:
  tiktok-webhooks send {base}/webhooks/tiktok --event video.publish.completed --open-id <open_id>

have the sandbox send one, like TikTok would:
  curl -s -X POST {sandbox}/sandbox/webhooks -H 'content-type: application/json' \\
       -d '{{"event": "video.publish.completed", "open_id": "<open_id>"}}'
""",
        flush=True,
    )


def register(sub: Any) -> None:
    dev = sub.add_parser("dev", help="run Redis, the sandbox, the receiver and a worker locally")
    dev.add_argument("--port", type=int, default=8000, help="the receiver's port")
    dev.add_argument("--data-dir", type=Path, default=Path(".dev-data"))
    dev.add_argument("--sandbox-port", type=int, default=9300)
    dev.add_argument("--redis-port", type=int, default=0, help="default: a free port")
    dev.add_argument("--worker-metrics-port", type=int, default=9101)
    dev.add_argument("--echo-port", type=int, default=0, help="the echo consumer's; default: free")
    dev.add_argument("--scopes", default="user.info.basic,user.info.profile,user.info.stats")
    dev.add_argument(
        "--webhook-time-scale",
        type=float,
        default=0.001,
        help="the sandbox's webhook retry clock (0.001: TikTok's 72 h in about 4 minutes)",
    )
    dev.add_argument("--quiet", action="store_true", help="only write the children's logs")
    dev.set_defaults(func=cmd_dev)
