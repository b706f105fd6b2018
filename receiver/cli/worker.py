"""CLI commands around the worker: `worker`, `dlq` (`status` is in .followups)."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from redis.exceptions import RedisError

from receiver.cli.failures import (
    EXIT_CONFIG,
    EXIT_PORT_IN_USE,
    CommandFailed,
    reaching_redis,
    redis_location,
)
from receiver.settings import Settings, load_settings_from_env


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings_from_env(getattr(args, "config", None))


def add_handlers_path(paths: list[Path] | None) -> None:
    """Make the directories of `--handlers-path` importable (like PYTHONPATH)."""
    for path in reversed(paths or []):
        if not path.is_dir():
            raise CommandFailed(f"--handlers-path {path}: not a directory", EXIT_CONFIG)
        sys.path.insert(0, str(path.resolve()))


def cmd_worker(args: argparse.Namespace) -> int:
    from handlers.worker import check_health, create_worker, describe_handlers

    settings = _settings(args)
    add_handlers_path(args.handlers_path)
    if args.check:
        with reaching_redis(settings):
            return asyncio.run(check_health(settings))
    # arq logs every job at INFO: at thousands of jobs per second that is the bottleneck.
    logging.getLogger("arq").setLevel(logging.DEBUG if args.log_jobs else logging.WARNING)
    log = logging.getLogger("tiktok_webhooks.worker")
    from receiver.security_checks import log_security_warnings

    settings.require_worker()  # before the metrics port is taken: a config error is one line
    log_security_warnings(settings)

    def build() -> Any:
        return create_worker(settings, burst=args.burst, log_outcomes=args.log_handlers)

    # First the configuration (settings, handler modules), then the port, then Redis:
    # each failure says what it is, instead of hiding behind the next step.
    worker = build()
    modules = ", ".join(settings.worker_handler_modules) or "none (WORKER_HANDLER_MODULES)"
    log.info("handler modules: %s", modules)
    for line in describe_handlers():
        log.info("handlers of %s", line)
    if args.metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(args.metrics_port, addr=args.metrics_host)
        except OSError as exc:
            raise CommandFailed(
                f"cannot serve the worker's metrics on {args.metrics_host}:{args.metrics_port} "
                f"({exc.strerror or exc}): another process uses the port; choose another "
                "with --metrics-port N (0 turns the metrics off)",
                EXIT_PORT_IN_USE,
            ) from None
        log.info("metrics on http://%s:%d/metrics", args.metrics_host, args.metrics_port)
    # A Redis restart or failover must not kill the worker (an orchestrator would back
    # off restarting it): start again with a growing pause until Redis answers.
    pause = 0.5
    while True:
        try:
            worker.run()
            return 0
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "Redis at %s unreachable (%s); trying again in %.1fs",
                redis_location(settings),
                type(exc).__name__,
                pause,
            )
        time.sleep(pause)
        pause = min(pause * 2, 30.0)
        worker = build()


def _with_store(args: argparse.Namespace, action: Callable[[Any, Settings], Awaitable[int]]) -> int:
    from handlers.deadletter import DeadLetterStore
    from handlers.worker import arq_pool

    settings = _settings(args)

    async def run() -> int:
        pool = await arq_pool(settings, retries=0)  # say at once that Redis is unreachable
        try:
            return await action((pool, DeadLetterStore(pool)), settings)
        finally:
            await pool.aclose()

    with reaching_redis(settings):
        return asyncio.run(run())


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def cmd_dlq(args: argparse.Namespace) -> int:
    async def action(handles: Any, settings: Settings) -> int:
        pool, store = handles
        if args.action == "list":
            letters = await store.list(args.limit)
            if not letters:
                print("dead-letter list is empty")
                return 0
            rows = [("ID", "FAILED AT", "FUNCTION", "EVENT", "TRIES")]
            rows += [
                (
                    letter.id,
                    _when(letter.failed_at),
                    letter.function,
                    letter.event,
                    str(letter.tries),
                )
                for letter in letters
            ]
            errors = ["ERROR"] + [
                f"{letter.error_type}: {letter.error_message[:80]}" for letter in letters
            ]
            widths = [max(len(row[i]) for row in rows) for i in range(5)]
            for row, error in zip(rows, errors, strict=True):
                print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)), error)
            return 0
        if not args.id:
            print(f"error: `dlq {args.action}` needs an id (see `dlq list`)", file=sys.stderr)
            return 2
        missing = 0
        for letter_id in args.id:
            if args.action == "show":
                letter = await store.get(letter_id)
                if letter is None:
                    missing += 1
                    print(f"{letter_id}: not in the dead-letter list", file=sys.stderr)
                    continue
                shown = msgspec.to_builtins(letter)
                shown["args"] = [
                    a.decode("utf-8", "replace") if isinstance(a, bytes) else a for a in letter.args
                ]
                print(msgspec.json.format(msgspec.json.encode(shown)).decode())
            elif args.action == "replay":
                job_id = await store.replay(letter_id, pool, queue_name=settings.queue_name)
                if job_id is None:
                    missing += 1
                    print(f"{letter_id}: not in the dead-letter list", file=sys.stderr)
                else:
                    print(f"{letter_id}: replayed as job {job_id}")
            elif args.action == "drop":
                if await store.drop(letter_id):
                    print(f"{letter_id}: dropped")
                else:
                    missing += 1
                    print(f"{letter_id}: not in the dead-letter list", file=sys.stderr)
        return 1 if missing else 0

    return _with_store(args, action)


def register(sub: Any) -> None:
    worker = sub.add_parser(
        "worker",
        help="run the arq worker that handles events and tokens",
        description="Run the arq worker: your handlers and the built-in ones for every "
        "accepted delivery, token refreshes, profile fetches.",
    )
    worker.add_argument("--config", type=Path, help="TOML settings file (default: none)")
    worker.add_argument(
        "--metrics-port", type=int, default=9101, help="metrics port (default 9101; 0: off)"
    )
    worker.add_argument(
        "--metrics-host", default="127.0.0.1", help="metrics address (default 127.0.0.1)"
    )
    add_handlers_path_option(worker)
    worker.add_argument(
        "--burst", action="store_true", help="drain the queue, then exit (default: run on)"
    )
    worker.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker reported in recently, 1 if not (the orchestrator's probe)",
    )
    worker.add_argument(
        "--log-jobs", action="store_true", help="log every job (arq's INFO log; default off)"
    )
    worker.add_argument(
        "--log-handlers",
        action="store_true",
        help="log one line per handler run with its outcome (default off; `dev` turns it on)",
    )
    worker.set_defaults(func=cmd_worker)

    dlq = sub.add_parser(
        "dlq",
        help="inspect, replay or drop dead-lettered jobs",
        description="The dead-letter list: jobs that failed for good.",
    )
    dlq.add_argument(
        "action",
        choices=["list", "show", "replay", "drop"],
        help="list them, show records, put them back on the queue, or drop them",
    )
    dlq.add_argument("id", nargs="*", help="dead-letter ids (for show, replay, drop)")
    dlq.add_argument("--limit", type=int, default=100, help="list at most N (default 100)")
    dlq.add_argument("--config", type=Path, help="TOML settings file (default: none)")
    dlq.set_defaults(func=cmd_dlq)


def add_handlers_path_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--handlers-path",
        type=Path,
        action="append",
        metavar="DIR",
        help="a directory to import WORKER_HANDLER_MODULES from, like PYTHONPATH; "
        "repeatable (default: none, installed packages and PYTHONPATH only)",
    )
