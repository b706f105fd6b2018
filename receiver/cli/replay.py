"""CLI commands `capture export` and `replay` (see docs/replay.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from receiver.settings import load_settings_from_env

# Bad lines reported one by one before the rest are only counted.
_MAX_BAD_LINES_SHOWN: Final = 20
# The receiver's default WEBHOOK_TOLERANCE_SECONDS.
_DEFAULT_TOLERANCE: Final = 300


def parse_rate(text: str) -> float:
    """`--rate`: deliveries per second, written N or N/s."""
    number = text.strip().removesuffix("/s").strip()
    try:
        rate = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate: write e.g. 50 or 50/s") from None
    if not (rate > 0 and math.isfinite(rate)):
        raise argparse.ArgumentTypeError("the rate must be a positive number per second")
    return rate


def _concurrency(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be between 1 and 1000")
    return value


# --------------------------------------------------------------------------- capture export


def cmd_capture_export(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from receiver.ingest.capture import export_capture
    from receiver.private_files import open_private
    from receiver.redis_conn import create_redis

    settings = load_settings_from_env(args.config)
    to_stdout = args.file == "-"
    path = Path(args.file)
    partial = path.with_name(path.name + ".partial")

    async def run(write: Callable[[bytes], object]) -> int:
        redis = create_redis(settings)
        try:
            return await export_capture(redis, write)
        finally:
            await redis.aclose()

    try:
        if to_stdout:
            count = asyncio.run(run(sys.stdout.buffer.write))
        else:
            # It holds open_ids and signatures that verify within the tolerance: 0600.
            with open_private(partial) as out:
                count = asyncio.run(run(out.write))
            os.replace(partial, path)
    except (RedisError, OSError) as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
            print(f"error: cannot write {args.file}: {exc.strerror}", file=sys.stderr)
            return 1
        from receiver.cli.failures import unreachable_redis

        raise unreachable_redis(settings, exc) from None
    if to_stdout:
        sys.stdout.flush()
    where = "stdout" if to_stdout else args.file
    hint = "" if count else " (nothing captured: do the receivers run with WEBHOOK_CAPTURE=1?)"
    print(f"exported {count} deliveries to {where}{hint}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- replay


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_replay(args: argparse.Namespace) -> int:
    from receiver.ingest import replay

    positionals: list[str] = args.positionals
    if args.corpus:
        if len(positionals) != 1:
            return _fail("with --corpus give only the URL")
        source, url = str(replay.corpus_path()), positionals[0]
    else:
        if len(positionals) != 2:
            return _fail("give the deliveries FILE (or --corpus) and the receiver's URL")
        source, url = positionals
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return _fail(f"{url!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/webhooks/tiktok")
    if args.secret and not args.resign:
        return _fail("--secret is only used with --resign")
    if args.client_key and not args.resign:
        return _fail("--client-key changes the body, so it needs --resign")
    if args.corpus and args.resign and not args.client_key:
        return _fail(
            "--corpus needs --client-key: its deliveries carry TikTok's example client keys, "
            'which a receiver answers 401; e.g. --client-key "$TIKTOK_CLIENT_KEY"'
        )
    secret: str | None = None
    if args.resign:
        secret = args.secret or os.environ.get("TIKTOK_CLIENT_SECRET", "").split(",")[0].strip()
        if not secret:
            return _fail("--resign needs --secret S or TIKTOK_CLIENT_SECRET")

    try:
        if source == "-":
            deliveries, bad = replay.read_deliveries(sys.stdin.buffer)
        else:
            deliveries, bad = replay.load_deliveries(source)
    except OSError as exc:
        return _fail(f"cannot read {source}: {exc.strerror or exc}")
    if args.client_key:
        rewritten: list[replay.Delivery] = []
        for delivery in deliveries:
            changed = replay.with_client_key(delivery, args.client_key)
            if isinstance(changed, replay.Delivery):
                rewritten.append(changed)
            else:
                bad.append(changed)
        deliveries = rewritten
        bad.sort(key=lambda b: b.line)
    name = "stdin" if source == "-" else source
    for entry in bad[:_MAX_BAD_LINES_SHOWN]:
        print(f"{name}:{entry.line}: {entry.reason}; skipped", file=sys.stderr)
    if len(bad) > _MAX_BAD_LINES_SHOWN:
        print(f"{name}: {len(bad) - _MAX_BAD_LINES_SHOWN} more bad lines skipped", file=sys.stderr)

    if secret is None:
        unsigned = [d.line for d in deliveries if d.signature is None]
        if unsigned:
            shown = ", ".join(map(str, unsigned[:10])) + (", ..." if len(unsigned) > 10 else "")
            return _fail(
                f"{len(unsigned)} deliveries have no signature (line {shown}), like the "
                "shipped corpus: replay them with --resign --secret S"
            )
        now = time.time()
        stale = [t for d in deliveries if (t := replay.signed_at(d)) is not None]
        stale = [t for t in stale if abs(now - t) > _DEFAULT_TOLERANCE]
        if stale:
            print(
                f"note: {len(stale)} of {len(deliveries)} deliveries were signed more than "
                f"{_DEFAULT_TOLERANCE} s ago (the oldest {int(now - min(stale))} s): a receiver "
                "with the default WEBHOOK_TOLERANCE_SECONDS answers them 401 stale_timestamp; "
                "--resign signs them afresh",
                file=sys.stderr,
            )

    progress = None if args.quiet else replay.Progress(sys.stderr, len(deliveries))

    async def run() -> replay.ReplayResult:
        loop = asyncio.get_running_loop()
        stop, abandon = asyncio.Event(), asyncio.Event()

        def interrupted() -> None:
            if stop.is_set():
                abandon.set()
                return
            stop.set()
            message = "interrupted: waiting for the requests in flight (Ctrl-C again: abandon them)"
            if progress is not None:
                progress.log(message)
            else:
                print(message, file=sys.stderr)

        try:
            loop.add_signal_handler(signal.SIGINT, interrupted)
            installed = True
        except (NotImplementedError, RuntimeError):  # not on this platform / thread
            installed = False
        try:
            return await replay.replay(
                deliveries,
                url,
                rate=args.rate,
                concurrency=args.concurrency,
                secret=secret,
                request_timeout=args.timeout,
                progress=progress,
                stop=stop,
                abandon=abandon,
            )
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGINT)

    result = asyncio.run(run())
    result.bad_lines = bad
    if args.json:
        print(msgspec.json.encode(result.to_json()).decode())
    else:
        print(f"replay of {name} to {url}")
        print(result.summary())
    if result.interrupted:
        return 130
    return 0 if result.succeeded else 1


# --------------------------------------------------------------------------- registration

_REPLAY_EPILOG: Final = """\
Each line of FILE is one delivery: {"body": ..., "signature": "t=...,s=...", ...}, as
written by `tiktok-webhooks capture export` (see docs/replay.md). Captured signatures carry
the time TikTok signed them; once that is older than the receiver's tolerance (300 s by
default) they are answered 401 stale_timestamp, and --resign is needed.

Exit status: 0 if every line was sent and answered 200, 1 otherwise (a non-200 answer,
no answer, a bad line), 2 for a usage error, 130 when interrupted (Ctrl-C).
"""


def register(sub: Any) -> None:
    capture = sub.add_parser(
        "capture",
        help="deliveries captured by receivers running with WEBHOOK_CAPTURE=1",
        description="Deliveries captured by receivers running with WEBHOOK_CAPTURE=1.",
    )
    actions = capture.add_subparsers(dest="capture_action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write the captured deliveries, oldest first, to a JSONL file",
        description="Write the captured deliveries, oldest first, to a JSONL file "
        "(the format `replay` reads).",
    )
    export.add_argument("file", help="output file, or - for stdout")
    export.add_argument("--config", type=Path, help="TOML settings file (for REDIS_URL)")
    export.set_defaults(func=cmd_capture_export)

    replay = sub.add_parser(
        "replay",
        help="send the deliveries of a JSONL file to a receiver",
        description="Send each delivery of a JSONL file to a receiver, as captured or "
        "re-signed, and summarise the answers.",
        usage="%(prog)s (FILE | --corpus) URL [options]",
        epilog=_REPLAY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument(
        "positionals",
        nargs="+",
        metavar="FILE URL",
        help="the JSONL file (- for stdin) and the receiver's webhook URL, "
        "e.g. http://127.0.0.1:8000/webhooks/tiktok",
    )
    replay.add_argument(
        "--corpus",
        action="store_true",
        help="replay the shipped corpus (one example per event; needs --resign)",
    )
    replay.add_argument(
        "--rate",
        type=parse_rate,
        help="at most N deliveries per second (N or N/s; default: no limit)",
    )
    replay.add_argument(
        "--concurrency",
        type=_concurrency,
        default=8,
        help="requests in flight at once (default 8; 1 keeps the file's order)",
    )
    replay.add_argument(
        "--resign",
        action="store_true",
        help="sign every delivery again, with the time it is sent",
    )
    replay.add_argument("--secret", help="with --resign (default: first of $TIKTOK_CLIENT_SECRET)")
    replay.add_argument(
        "--client-key",
        help="with --resign: put this client_key into each envelope (the receiver only "
        "accepts its configured apps; the corpus has TikTok's example keys)",
    )
    replay.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per request (default 10)"
    )
    replay.add_argument("--json", action="store_true", help="print the summary as JSON")
    replay.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    replay.set_defaults(func=cmd_replay)
