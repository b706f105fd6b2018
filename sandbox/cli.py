"""Command line: `tiktok-webhooks sandbox ...` (mounted by the main CLI) or `python -m sandbox`.

Argument destinations are prefixed `sandbox_` so they cannot collide with the options of
a parent parser that mounts these as a subcommand.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

import uvicorn

from sandbox.app import AUTHORIZE_PATH, create_app
from sandbox.config import (
    DEFAULT_REDIRECT_URI,
    AppConfig,
    LiveSettings,
    SandboxConfig,
    default_app,
)

_DEFAULTS = LiveSettings()


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", dest="sandbox_host", default="127.0.0.1")
    parser.add_argument("--port", dest="sandbox_port", type=int, default=9300)
    parser.add_argument(
        "--client-key",
        dest="sandbox_client_key",
        help="register this app (default: sandbox_client_key / sandbox_client_secret)",
    )
    parser.add_argument("--client-secret", dest="sandbox_client_secret")
    parser.add_argument(
        "--redirect-uri",
        dest="sandbox_redirect_uris",
        action="append",
        metavar="URI",
        help=f"a redirect URI of the app; repeatable (default: {DEFAULT_REDIRECT_URI})",
    )
    parser.add_argument(
        "--interactive",
        dest="sandbox_interactive",
        action="store_true",
        help="show a consent page with Approve / Deny instead of approving at once",
    )
    parser.add_argument(
        "--access-token-ttl",
        dest="sandbox_access_token_ttl",
        type=int,
        default=_DEFAULTS.access_token_ttl,
        metavar="SECONDS",
    )
    parser.add_argument(
        "--refresh-token-ttl",
        dest="sandbox_refresh_token_ttl",
        type=int,
        default=_DEFAULTS.refresh_token_ttl,
        metavar="SECONDS",
    )
    parser.add_argument(
        "--code-ttl",
        dest="sandbox_code_ttl",
        type=int,
        default=_DEFAULTS.code_ttl,
        metavar="SECONDS",
    )
    parser.add_argument(
        "--rate-limit",
        dest="sandbox_rate_limit",
        type=int,
        default=_DEFAULTS.rate_limit_per_minute,
        metavar="PER_MINUTE",
        help="requests per endpoint per app per minute; 0 turns the limit off",
    )
    parser.add_argument(
        "--invalid-client-status",
        dest="sandbox_invalid_client_status",
        type=int,
        default=_DEFAULTS.invalid_client_http_status,
        metavar="STATUS",
        help="HTTP status of invalid_client errors (TikTok has been seen sending 200)",
    )
    parser.add_argument(
        "--log-level",
        dest="sandbox_log_level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
    )


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """Raise ValueError when the options cannot make a working sandbox."""
    key, secret = args.sandbox_client_key, args.sandbox_client_secret
    uris: list[str] = args.sandbox_redirect_uris or [DEFAULT_REDIRECT_URI]
    if key is None and secret is None:
        app = default_app()
        if args.sandbox_redirect_uris:
            app.redirect_uris = uris
    elif key and secret:
        app = AppConfig(client_key=key, client_secret=secret, redirect_uris=uris)
    else:
        raise ValueError("--client-key and --client-secret go together")
    config = SandboxConfig(
        apps=[app],
        access_token_ttl=args.sandbox_access_token_ttl,
        refresh_token_ttl=args.sandbox_refresh_token_ttl,
        code_ttl=args.sandbox_code_ttl,
        rate_limit_per_minute=args.sandbox_rate_limit or None,
        auto_approve=not args.sandbox_interactive,
        invalid_client_http_status=args.sandbox_invalid_client_status,
    )
    config.validate()
    return config


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    """Serve the sandbox on uvicorn until interrupted; 2 on bad options."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    host, port = args.sandbox_host, args.sandbox_port
    base = f"http://{host}:{port}"
    app = config.apps[0]
    lines = [
        f"TikTok sandbox on {base}",
        f"  TIKTOK_AUTH_URL={base}{AUTHORIZE_PATH}",
        f"  TIKTOK_API_BASE_URL={base}",
        f"  TIKTOK_CLIENT_KEY={app.client_key}",
    ]
    if args.sandbox_client_key is None:  # the built-in app's secret is public anyway
        lines.append(f"  TIKTOK_CLIENT_SECRET={app.client_secret}")
    lines.append(f"  redirect URIs: {', '.join(app.redirect_uris)}")
    lines.append(f"  admin API: {base}/sandbox/ (see docs/sandbox.md)")
    print("\n".join(lines), file=sys.stderr)
    if not _is_loopback(host):
        print("sandbox: warning: the admin API has no auth; bind to loopback", file=sys.stderr)
    uvicorn.run(create_app(config), host=host, port=port, log_level=args.sandbox_log_level)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Local simulator of TikTok's OAuth v2 and User Info API",
    )
    configure_parser(parser)
    return run(parser.parse_args(argv))
