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

from receiver.settings import Settings, load_settings_from_env


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings_from_env(getattr(args, "config", None))


def cmd_worker(args: argparse.Namespace) -> int:
    from handlers.worker import check_health, create_worker

    settings = _settings(args)
    if args.check:
        return asyncio.run(check_health(settings))
    # arq logs every job at INFO: at thousands of jobs per second that is the bottleneck.
    logging.getLogger("arq").setLevel(logging.DEBUG if args.log_jobs else logging.WARNING)
    log = logging.getLogger("tiktok_webhooks.worker")
    from receiver.security_checks import log_security_warnings

    settings.require_worker()  # before the metrics port is taken: a config error is one line
    log_security_warnings(settings)
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=args.metrics_host)
        log.info("metrics on http://%s:%d/metrics", args.metrics_host, args.metrics_port)
    # A Redis restart or failover must not kill the worker (an orchestrator would back
    # off restarting it): start again with a growing pause until Redis answers.
    pause = 0.5
    while True:
        worker = create_worker(settings, burst=args.burst)
        try:
            worker.run()
            return 0
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("lost Redis (%s); starting again in %.1fs", type(exc).__name__, pause)
        time.sleep(pause)
        pause = min(pause * 2, 30.0)


def _with_store(args: argparse.Namespace, action: Callable[[Any, Settings], Awaitable[int]]) -> int:
    from handlers.deadletter import DeadLetterStore
    from handlers.worker import arq_pool

    settings = _settings(args)

    async def run() -> int:
        pool = await arq_pool(settings)
        try:
            return await action((pool, DeadLetterStore(pool)), settings)
        finally:
            await pool.aclose()

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
            for letter in letters:
                print(
                    f"{letter.id}  {_when(letter.failed_at)}  {letter.function}  "
                    f"{letter.event}  tries={letter.tries}  {letter.error_type}: "
                    f"{letter.error_message[:80]}"
                )
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
    worker = sub.add_parser("worker", help="run the arq worker that handles events and tokens")
    worker.add_argument("--config", type=Path, help="TOML settings file")
    worker.add_argument("--metrics-port", type=int, default=9101, help="0 to disable")
    worker.add_argument("--metrics-host", default="127.0.0.1")
    worker.add_argument("--burst", action="store_true", help="drain the queue, then exit")
    worker.add_argument(
        "--check", action="store_true", help="exit 0 if a worker reported in recently (probe)"
    )
    worker.add_argument("--log-jobs", action="store_true", help="log every job (arq's INFO log)")
    worker.set_defaults(func=cmd_worker)

    dlq = sub.add_parser("dlq", help="inspect, replay or drop dead-lettered jobs")
    dlq.add_argument("action", choices=["list", "show", "replay", "drop"])
    dlq.add_argument("id", nargs="*", help="dead-letter ids (for show, replay, drop)")
    dlq.add_argument("--limit", type=int, default=100)
    dlq.add_argument("--config", type=Path, help="TOML settings file")
    dlq.set_defaults(func=cmd_dlq)
