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
import shlex
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

from receiver.cli.dev_files import (
    check_ports,
    handler_files,
    locked_data_dir,
    mtimes,
)
from receiver.forward_config import generate_secret
from receiver.private_files import open_private, write_private
from receiver.testing.redis_server import free_port
from receiver.vault.crypto import generate_key

RUN_TOKEN_ENV = "TIKTOK_WEBHOOKS_RUN_TOKEN"
RUN_TOKEN_HEADER = "X-Run-Token"

DEFAULT_DEV_SCOPES = (
    "user.info.basic,user.info.profile,user.info.stats,video.list,video.upload,"
    "portability.all.ongoing"
)
CLI = [sys.executable, "-m", "receiver.cli"]


@dataclass
class Child:
    """A process of the stack; `ready(child)` is true once it answers as *this* child."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[Child], bool]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    token: str = ""


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
        write_private(
            path,
            "# Made by `tiktok-webhooks dev`: development credentials, not TikTok's.\n"
            + "".join(f"{name}={value}\n" for name, value in values.items()),
        )
    return values


def _answers_with_token(url: str) -> Callable[[Child], bool]:
    """Ready when `url` answers 200 with this child's run token (not another program's)."""

    def check(child: Child) -> bool:
        try:
            response = httpx.get(url, timeout=1, trust_env=False)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.headers.get(RUN_TOKEN_HEADER) == child.token

    return check


def _redis_answers(port: int) -> Callable[[Child], bool]:
    """Ready when the Redis on `port` is this child (its INFO names the child's pid)."""

    def check(child: Child) -> bool:
        assert child.process is not None
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"INFO server\r\n")
                reply = b""
                while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
        except OSError:
            return False
        return f"process_id:{child.process.pid}\r\n".encode() in reply

    return check


def _worker_ready(
    metrics_url: str, health_key: str, redis_port: int | None
) -> Callable[[Child], bool]:
    """Ready when its metrics answer and (with our own Redis) it reported in to arq."""

    def check(child: Child) -> bool:
        try:
            if httpx.get(metrics_url, timeout=1, trust_env=False).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
        if redis_port is None:
            return True
        try:
            with socket.create_connection(("127.0.0.1", redis_port), timeout=0.5) as conn:
                key = health_key.encode()
                conn.sendall(b"EXISTS %s\r\n" % key)
                return conn.recv(16).startswith(b":1")
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
        log = open_private(child.log_path, append=True)
        child.token = secrets.token_hex(12)
        child.process = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
            child.argv,
            env=child.env | {RUN_TOKEN_ENV: child.token},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        if child not in self.children:
            self.children.append(child)
        assert child.process.stdout is not None
        pump = threading.Thread(
            target=_pump, args=(child.name, child.process.stdout, log, self.quiet), daemon=True
        )
        pump.start()
        child.threads.append(pump)
        deadline = time.monotonic() + timeout
        while not child.ready(child):
            if child.process.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with status {child.process.returncode} while "
                    f"starting; see {child.log_path}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} did not become ready; see {child.log_path}")
            time.sleep(0.1)

    def restart(self, child: Child) -> None:
        self._stop(child)
        self.start(child)

    def watch(self, on_tick: Callable[[], None] = lambda: None) -> int:
        """Block until Ctrl-C (0) or until a child dies (1); `on_tick` about once a second."""
        ticks = 0
        while True:
            ticks += 1
            if ticks % 3 == 0:
                on_tick()
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

    def _stop(self, child: Child) -> None:
        if child.process is None or child.process.poll() is not None:
            return
        child.process.send_signal(signal.SIGTERM)
        try:
            child.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()

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
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with locked_data_dir(data_dir):
        return _run_stack(args, data_dir)


def _run_stack(args: argparse.Namespace, data_dir: Path) -> int:
    redis_url = os.environ.get("REDIS_URL")
    binary = None if redis_url else shutil.which("redis-server")
    if not redis_url and binary is None:
        print("redis-server is not installed: `sudo apt-get install -y redis-server`")
        return 2
    # Every port is checked before anything starts; 0 picks a free one.
    wanted = [
        ("--port", args.port),
        ("--sandbox-port", args.sandbox_port),
        ("--worker-metrics-port", args.worker_metrics_port),
        ("--echo-port", args.echo_port),
    ]
    if not redis_url:
        wanted.append(("--redis-port", args.redis_port))
    check_ports(wanted)
    port: int = args.port or free_port()
    sandbox_port: int = args.sandbox_port or free_port()
    metrics_port: int = args.worker_metrics_port or free_port()
    redis_port: int | None = None if redis_url else (args.redis_port or free_port())
    handler_paths = [p.resolve() for p in args.handlers_path or [Path(".")]]
    modules = [m.strip() for spec in args.handlers or [] for m in spec.split(",") if m.strip()]

    creds = load_or_create_env(data_dir)
    base = f"http://127.0.0.1:{port}"
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    redirect_uri = f"{base}/oauth/tiktok/callback"
    echo = f"http://127.0.0.1:{args.echo_port or free_port()}"
    supervisor = Supervisor(quiet=args.quiet)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOK_", "REDIS_"))}
    queue_name = env.get("ARQ_QUEUE_NAME", "arq:queue")
    try:
        if redis_port is not None:
            assert binary is not None
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
            _forget_worker_health(redis_port, f"{queue_name}:health-check")
        assert redis_url is not None
        wiring = {
            "REDIS_URL": redis_url,
            "TIKTOK_WEBHOOKS_ENV": "development",
            "TIKTOK_REDIRECT_URI": redirect_uri,
            "TIKTOK_API_BASE_URL": sandbox,
            "TIKTOK_AUTH_URL": f"{sandbox}/v2/auth/authorize/",
            "TIKTOK_SCOPES": args.scopes,
            # The operator console, signed in with ADMIN_TOKEN from the env file.
            "CONSOLE_ENABLED": "1",
            # Where the worker keeps downloaded data archives.
            "PORTABILITY_DIR": os.environ.get("PORTABILITY_DIR") or str(data_dir / "portability"),
            "FORWARD_URL": f"{echo}/",  # every event, forwarded to the echo consumer
        }
        if modules:
            wiring["WORKER_HANDLER_MODULES"] = ",".join(modules)
        service_env = env | creds | wiring
        supervisor.start(
            Child(
                "sandbox",
                [*CLI, "sandbox", "--port", str(sandbox_port),
                 "--client-key", creds["TIKTOK_CLIENT_KEY"],
                 "--redirect-uri", redirect_uri,
                 "--callback-url", f"{base}/webhooks/tiktok",
                 "--webhook-time-scale", str(args.webhook_time_scale),
                 "--interactive"],
                # The secret goes by environment: a command line is visible to all users.
                env | {"TIKTOK_SANDBOX_CLIENT_SECRET": creds["TIKTOK_CLIENT_SECRET"]},
                _answers_with_token(f"{sandbox}/healthz"),
                data_dir / "sandbox.log",
            )
        )  # fmt: skip
        supervisor.start(
            Child(
                "echo",
                [*CLI, "forward", "echo", "--port", echo.rsplit(":", 1)[1]],
                env | {"FORWARD_SECRET": creds["FORWARD_SECRET"]},
                _answers_with_token(f"{echo}/healthz"),
                data_dir / "echo.log",
            )
        )
        supervisor.start(
            Child(
                "receiver",
                [*CLI, "serve", "--port", str(port)],
                service_env,
                _answers_with_token(f"{base}/readyz"),
                data_dir / "receiver.log",
            )
        )
        worker = Child(
            "worker",
            [*CLI, "worker", "--metrics-port", str(metrics_port), "--log-handlers",
             *[arg for path in handler_paths for arg in ("--handlers-path", str(path))]],
            service_env,
            _worker_ready(
                f"http://127.0.0.1:{metrics_port}/metrics",
                f"{queue_name}:health-check",
                redis_port,
            ),
            data_dir / "worker.log",
        )  # fmt: skip
        supervisor.start(worker)
        # Only now, with every child up: so `tiktok-webhooks ...` in another shell reach
        # this stack (a failed start leaves the files of the last good one alone).
        write_private(data_dir / "stack.env", "".join(f"{k}={v}\n" for k, v in wiring.items()))
        activate = data_dir / "activate"
        write_private(
            activate,
            _activate_script(creds | wiring, data_dir, handler_paths if modules else []),
        )
        _print_summary(base, sandbox, metrics_port, data_dir, modules)
        reload = _HandlerReload(supervisor, worker, modules, handler_paths)
        return supervisor.watch(reload.check if modules and not args.no_reload else _nothing)
    except RuntimeError as exc:
        print(f"tiktok-webhooks dev: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…", file=sys.stderr)
        return 0
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            supervisor.stop_all()


def _nothing() -> None:
    return None


def _forget_worker_health(redis_port: int, key: str) -> None:
    """A previous run's arq health record must not make a new worker look ready."""
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", redis_port), timeout=1) as conn,
    ):
        conn.sendall(b"DEL %s\r\n" % key.encode())
        conn.recv(16)


class _HandlerReload:
    """Restart the worker when a file of the handler modules changes."""

    def __init__(
        self, supervisor: Supervisor, worker: Child, modules: list[str], paths: list[Path]
    ) -> None:
        self.supervisor, self.worker = supervisor, worker
        self.modules, self.paths = modules, paths
        self.seen = mtimes(handler_files(modules, paths))

    def check(self) -> None:
        now = mtimes(handler_files(self.modules, self.paths))
        if now == self.seen:
            return
        changed = sorted(
            str(p) for p in now.keys() | self.seen.keys() if now.get(p) != self.seen.get(p)
        )
        self.seen = now
        print(f"\n-- {', '.join(changed)} changed: restarting the worker", flush=True)
        try:
            self.supervisor.restart(self.worker)
        except RuntimeError:
            # A typo in a handler must not stop the stack: wait for the next save.
            self.supervisor.children.remove(self.worker)
            print(
                "-- the worker did not start with the changed handlers (see its lines "
                "above); the rest keeps running: fix and save again",
                flush=True,
            )
            return
        print("-- worker restarted with the new handlers", flush=True)


def _activate_script(values: dict[str, str], data_dir: Path, import_paths: list[Path]) -> str:
    bin_dir = Path(sys.executable).parent
    lines = [
        "# Made by `tiktok-webhooks dev` for the stack in this directory. In another shell,",
        f"#   . {_shown(data_dir / 'activate')}",
        "# puts the tiktok-webhooks command on PATH and points it at the stack.",
        "# Development credentials, not TikTok's.",
        f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"',
    ]
    if import_paths:
        # So `tiktok-webhooks handlers list` (and python) there import the --handlers too.
        joined = shlex.quote(":".join(str(p) for p in import_paths))
        lines.append(f'export PYTHONPATH={joined}"${{PYTHONPATH:+:$PYTHONPATH}}"')
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is below it (shorter to type)."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _print_summary(
    base: str, sandbox: str, metrics_port: int, data_dir: Path, modules: list[str]
) -> None:
    handlers = ", ".join(modules) if modules else "built-in only (add yours: --handlers MODULE)"
    print(
        f"""
tiktok-webhooks dev stack is up (Ctrl-C stops everything)

  receiver          {base}/webhooks/tiktok
  connect a user    {base}/oauth/tiktok/start      (open in a browser; the sandbox plays TikTok)
  receiver metrics  {base}/metrics
  worker metrics    http://127.0.0.1:{metrics_port}/metrics
  operator console  {base}/console/                (sign in with ADMIN_TOKEN from {data_dir}/env)
  handlers          {handlers}
  sandbox (TikTok)  {sandbox}/                     (admin API: {sandbox}/sandbox/)
  internal API      {base}/internal/users/<open_id>  (Authorization: Bearer $ADMIN_TOKEN)
  data and logs     {data_dir}

in another shell, to use the CLI against this stack:
  . {_shown(data_dir / "activate")}

then send a signed test event:
  tiktok-webhooks send {base}/webhooks/tiktok --event video.publish.completed --open-id <open_id>

or have the sandbox send one, like TikTok would:
  curl -s -X POST {sandbox}/sandbox/webhooks -H 'content-type: application/json' \\
       -d '{{"event": "video.publish.completed", "open_id": "<open_id>"}}'
""",
        flush=True,
    )


def register(sub: Any) -> None:
    dev = sub.add_parser(
        "dev",
        help="run Redis, the sandbox, the receiver and a worker locally",
        description="Run the whole stack locally: a private Redis, the TikTok sandbox, the "
        "receiver and a worker, wired together. Writes DATA_DIR/activate: source it in "
        "another shell to use the CLI against the stack.",
    )
    dev.add_argument(
        "--port", type=int, default=8000, help="the receiver's port (default 8000; 0: a free one)"
    )
    dev.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".dev-data"),
        help="credentials, Redis data and logs (default .dev-data)",
    )
    dev.add_argument(
        "--sandbox-port", type=int, default=9300, help="the sandbox's port (default 9300; 0: free)"
    )
    dev.add_argument(
        "--redis-port", type=int, default=0, help="the private Redis's port (default 0: a free one)"
    )
    dev.add_argument(
        "--worker-metrics-port",
        type=int,
        default=9101,
        help="the worker's metrics port (default 9101; 0: a free one)",
    )
    dev.add_argument(
        "--echo-port",
        type=int,
        default=0,
        help="the echo consumer that forwarded events go to (default 0: a free one)",
    )
    dev.add_argument(
        "--handlers",
        action="append",
        metavar="MODULE",
        help="your handler modules (WORKER_HANDLER_MODULES), comma-separated or repeated; "
        "the worker restarts when their files change (default: built-in handlers only)",
    )
    dev.add_argument(
        "--handlers-path",
        type=Path,
        action="append",
        metavar="DIR",
        help="where --handlers modules are imported from, repeatable (default: the "
        "current directory)",
    )
    dev.add_argument(
        "--no-reload",
        action="store_true",
        help="do not restart the worker when a handler file changes (default: restart)",
    )
    dev.add_argument(
        "--scopes",
        # Enough for every built-in handler: profile, publishes and videos, data archives.
        default=DEFAULT_DEV_SCOPES,
        help=f"scopes asked for (default {DEFAULT_DEV_SCOPES})",
    )
    dev.add_argument(
        "--webhook-time-scale",
        type=float,
        default=0.001,
        help="the sandbox's webhook retry clock (default 0.001: TikTok's 72 h in about 4 minutes)",
    )
    dev.add_argument(
        "--quiet", action="store_true", help="only write the children's logs (default: show them)"
    )
    dev.set_defaults(func=cmd_dev)
