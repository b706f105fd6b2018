"""`tiktok-webhooks`: serve, sign, send (and the commands later issues add)."""

from __future__ import annotations

import argparse
import difflib
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import msgspec

from receiver import __version__
from receiver.cli.failures import CommandFailed
from receiver.cli.parser import CliParser
from receiver.cli.verdict import require_serve
from receiver.ingest.delivery import build_body, signed_headers
from receiver.ingest.events import KNOWN_EVENTS
from receiver.ingest.examples import EXAMPLE_CONTENT
from receiver.ingest.signature import signature_header
from receiver.logs import configure_logging, log_format
from receiver.settings import ConfigError, Settings, load_settings_from_env

Command = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings_from_env(getattr(args, "config", None))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from receiver.app import create_app

    settings = _settings(args)
    require_serve(settings)
    from receiver.cli.serving import protocol_class, startup_limits
    from receiver.security_checks import log_security_warnings

    log_security_warnings(settings)
    app = create_app(settings)
    limit_concurrency = startup_limits(args.limit_concurrency)
    # Everything imported and built so far lives as long as the process: keep it out of
    # the collector's way, and collect young objects less often. Both cut the pauses
    # that show up as the slowest deliveries under load.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http=protocol_class(args.header_timeout),
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=args.timeout_keep_alive,
        lifespan="on",
        access_log=False,
        log_level=args.log_level,
        # uvicorn's records go through our handler (LOG_FORMAT), not its own.
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_graceful_shutdown=args.graceful_timeout,
    )
    return 0


def _read_input(name: str) -> bytes:
    if name == "-":
        if sys.stdin.isatty():
            print(
                "reading the body from standard input (end with Ctrl-D; or give a FILE)",
                file=sys.stderr,
            )
        return sys.stdin.buffer.read()
    return Path(name).read_bytes()


def cmd_sign(args: argparse.Namespace) -> int:
    body = _read_input(args.file)
    print(signature_header(args.secret, body, args.timestamp))
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    client_key = args.client_key or os.environ.get("TIKTOK_CLIENT_KEY", "").strip()
    secret = args.secret or os.environ.get("TIKTOK_CLIENT_SECRET", "").split(",")[0].strip()
    if not client_key or not secret:
        print(
            "error: give --client-key and --secret, or set TIKTOK_CLIENT_KEY and "
            "TIKTOK_CLIENT_SECRET",
            file=sys.stderr,
        )
        return 2
    if args.event not in KNOWN_EVENTS and not args.force:
        close = difflib.get_close_matches(args.event, sorted(KNOWN_EVENTS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        print(
            f"error: {args.event!r} is not an event this version knows; {hint}"
            "--force sends it anyway (as an unknown event)",
            file=sys.stderr,
        )
        return 2
    if args.content is not None:
        try:
            msgspec.json.decode(args.content)
        except msgspec.DecodeError:
            print("error: --content is not valid JSON", file=sys.stderr)
            return 2
        content: str | dict[str, object] = args.content
    else:
        content = EXAMPLE_CONTENT.get(args.event, {})
    body = build_body(
        client_key=client_key, event=args.event, content=content, user_openid=args.open_id
    )
    try:
        response = httpx.post(
            args.url, content=body, headers=signed_headers(secret, body), timeout=args.timeout
        )
    except httpx.HTTPError as exc:
        print(
            f"error: could not deliver to {args.url}: {type(exc).__name__}: {exc}", file=sys.stderr
        )
        return 1
    print(f"{response.status_code} {response.reason_phrase}")
    print(response.text)
    return 0 if response.status_code == 200 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="tiktok-webhooks",
        description="TikTok for Developers webhook receiver: `tiktok-webhooks COMMAND --help` "
        "tells more about each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the webhook receiver (uvicorn)",
        description="Run the webhook receiver (and the OAuth routes and internal API when "
        "configured) on uvicorn, one process; scale by running more.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--config", type=Path, help="TOML settings file (default: none)")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn's log level (default info)",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies whose X-Forwarded-* headers are trusted (uvicorn's setting; "
        "default 127.0.0.1)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=int,
        default=20,
        help="seconds to finish requests in flight on shutdown (default 20)",
    )
    serve.add_argument(
        "--limit-concurrency",
        type=int,
        default=1000,
        help="open connections or running requests above which requests get 503 "
        "(kept below the file descriptor limit; default 1000)",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a connection may take to send its headers (else 408, closed; default 10)",
    )
    serve.add_argument(
        "--timeout-keep-alive",
        type=int,
        default=5,
        help="seconds an idle keep-alive connection is kept open (default 5)",
    )
    serve.set_defaults(func=cmd_serve)

    sign = sub.add_parser(
        "sign",
        help="print the TikTok-Signature value for a body",
        description="Print the TikTok-Signature header value TikTok would send for a body.",
    )
    sign.add_argument("--secret", required=True, help="the app's client secret (required)")
    sign.add_argument("--timestamp", type=int, help="unix seconds (default: now)")
    sign.add_argument(
        "file", nargs="?", default="-", help="body file, or - for stdin (default: stdin)"
    )
    sign.set_defaults(func=cmd_sign)

    send = sub.add_parser(
        "send",
        help="build, sign and POST one event, like the portal's Test URL",
        description="Build, sign and POST one event to a receiver and print the answer; "
        "exit status 1 unless 200.",
    )
    send.add_argument(
        "url", help="the receiver's webhook URL, e.g. http://127.0.0.1:8000/webhooks/tiktok"
    )
    send.add_argument("--event", required=True, help="event name, e.g. authorization.removed")
    send.add_argument("--content", help="content JSON (default: the contract's example)")
    send.add_argument("--open-id", help="user_openid of the envelope (default: none)")
    send.add_argument("--client-key", help="default: $TIKTOK_CLIENT_KEY")
    send.add_argument("--secret", help="default: first of $TIKTOK_CLIENT_SECRET")
    send.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)"
    )
    send.add_argument(
        "--force",
        action="store_true",
        help="send an event name this version does not know (default: refuse, suggest one)",
    )
    send.set_defaults(func=cmd_send)

    from receiver.cli import dev, handlers_list
    from receiver.cli import followups as cli_followups
    from receiver.cli import forward as cli_forward
    from receiver.cli import replay as cli_replay
    from receiver.cli import tokens as cli_tokens
    from receiver.cli import worker as cli_worker
    from tiktok_sandbox import cli as sandbox_cli

    cli_worker.register(sub)
    cli_followups.register(sub)
    cli_tokens.register(sub)
    cli_replay.register(sub)
    dev.register(sub)
    handlers_list.register(sub)
    cli_forward.register(sub)
    sandbox_parser = sub.add_parser(
        "sandbox",
        help="run the local TikTok simulator",
        description="Run the local TikTok simulator: OAuth, user info, webhooks with "
        "retries, and an admin API under /sandbox/ (docs/sandbox.md).",
    )
    sandbox_cli.configure_parser(sandbox_parser)
    sandbox_parser.set_defaults(func=sandbox_cli.run)
    deliveries = sub.add_parser(
        "sandbox-deliveries",
        help="list the webhooks a running sandbox sent, with attempts",
        description="List the webhooks a running sandbox sent, with their attempts.",
    )
    sandbox_cli.configure_deliveries_parser(deliveries)
    deliveries.set_defaults(func=sandbox_cli.run_deliveries)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logging(log_format())
    except ConfigError as exc:
        print(f"tiktok-webhooks: {exc}", file=sys.stderr)
        return 2
    # httpx logs every request URL at INFO; ours never carry secrets, but keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    func: Command = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"tiktok-webhooks: {exc}", file=sys.stderr)
        return 2
    except CommandFailed as exc:
        print(f"tiktok-webhooks: {exc}", file=sys.stderr)
        return exc.status
    except FileNotFoundError as exc:
        print(f"tiktok-webhooks: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
