"""Command line: `tiktok-webhooks sandbox ...` (mounted by the main CLI) or
`python -m tiktok_sandbox`.

`python -m tiktok_sandbox [options]` serves the sandbox;
`python -m tiktok_sandbox deliveries [options]` lists the webhook deliveries of a
running one. Argument destinations are prefixed
`sandbox_` so they cannot collide with the options of a parent parser that mounts these
as a subcommand.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn

from tiktok_sandbox.app import AUTHORIZE_PATH, create_app
from tiktok_sandbox.config import (
    DEFAULT_APP_NAME,
    DEFAULT_REDIRECT_URI,
    AppConfig,
    LiveSettings,
    SandboxConfig,
    WebhookSettings,
    callback_url_problem,
    default_app,
)
from tiktok_sandbox.delivery_log import STATUSES

_DEFAULTS = LiveSettings()
_WEBHOOK_DEFAULTS = WebhookSettings()
DEFAULT_URL = "http://127.0.0.1:9300"


# The client secret from the environment: command lines are visible to every local user.
SECRET_ENV = "TIKTOK_SANDBOX_CLIENT_SECRET"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", dest="sandbox_host", default="127.0.0.1", help="address (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", dest="sandbox_port", type=int, default=9300, help="port (default 9300)"
    )
    parser.add_argument(
        "--client-key",
        dest="sandbox_client_key",
        help="register this app (default: sandbox_client_key / sandbox_client_secret)",
    )
    parser.add_argument(
        "--client-secret",
        dest="sandbox_client_secret",
        default=os.environ.get(SECRET_ENV) or None,
        help=f"the app's client secret (default: ${SECRET_ENV}, which keeps it out of `ps`)",
    )
    parser.add_argument(
        "--app-name",
        dest="sandbox_app_name",
        default=DEFAULT_APP_NAME,
        help=f"the app's name on the consent page (default {DEFAULT_APP_NAME!r})",
    )
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
        help=f"lifetime of access tokens (default {_DEFAULTS.access_token_ttl})",
    )
    parser.add_argument(
        "--refresh-token-ttl",
        dest="sandbox_refresh_token_ttl",
        type=int,
        default=_DEFAULTS.refresh_token_ttl,
        metavar="SECONDS",
        help=f"lifetime of refresh tokens (default {_DEFAULTS.refresh_token_ttl})",
    )
    parser.add_argument(
        "--code-ttl",
        dest="sandbox_code_ttl",
        type=int,
        default=_DEFAULTS.code_ttl,
        metavar="SECONDS",
        help=f"lifetime of authorization codes (default {_DEFAULTS.code_ttl})",
    )
    parser.add_argument(
        "--rate-limit",
        dest="sandbox_rate_limit",
        type=int,
        default=_DEFAULTS.rate_limit_per_minute,
        metavar="PER_MINUTE",
        help="requests per endpoint per app per minute; 0 turns the limit off "
        f"(default {_DEFAULTS.rate_limit_per_minute})",
    )
    parser.add_argument(
        "--invalid-client-status",
        dest="sandbox_invalid_client_status",
        type=int,
        default=_DEFAULTS.invalid_client_http_status,
        metavar="STATUS",
        help="HTTP status of invalid_client errors (TikTok has been seen sending 200; "
        f"default {_DEFAULTS.invalid_client_http_status})",
    )
    parser.add_argument(
        "--callback-url",
        dest="sandbox_callback_url",
        metavar="URL",
        help="the app's webhook callback URL (default: none, no webhooks are sent)",
    )
    parser.add_argument(
        "--webhook-time-scale",
        dest="sandbox_webhook_time_scale",
        type=float,
        default=_WEBHOOK_DEFAULTS.time_scale,
        metavar="FACTOR",
        help="multiplies webhook retry delays and the horizon (default 1 = real time; "
        "0.001: 72 h in about 4 min)",
    )
    parser.add_argument(
        "--webhook-retry-base",
        dest="sandbox_webhook_retry_base",
        type=float,
        default=_WEBHOOK_DEFAULTS.retry_base_seconds,
        metavar="SECONDS",
        help="delay before the first webhook retry; each next one doubles (default "
        f"{_WEBHOOK_DEFAULTS.retry_base_seconds:g})",
    )
    parser.add_argument(
        "--webhook-horizon",
        dest="sandbox_webhook_horizon",
        type=float,
        default=_WEBHOOK_DEFAULTS.horizon_seconds,
        metavar="SECONDS",
        help="no webhook retry later than this after the event (default 72 h)",
    )
    parser.add_argument(
        "--webhook-timeout",
        dest="sandbox_webhook_timeout",
        type=float,
        default=_WEBHOOK_DEFAULTS.timeout_seconds,
        metavar="SECONDS",
        help="how long one webhook attempt may take, not scaled (default "
        f"{_WEBHOOK_DEFAULTS.timeout_seconds:g})",
    )
    parser.add_argument(
        "--log-level",
        dest="sandbox_log_level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level (default info)",
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
        raise ValueError(f"--client-key and --client-secret (or ${SECRET_ENV}) go together")
    app.name = args.sandbox_app_name
    if args.sandbox_callback_url is not None:
        problem = callback_url_problem(args.sandbox_callback_url)
        if problem is not None:
            raise ValueError(problem)
        app.callback_url = args.sandbox_callback_url
    config = SandboxConfig(
        apps=[app],
        access_token_ttl=args.sandbox_access_token_ttl,
        refresh_token_ttl=args.sandbox_refresh_token_ttl,
        code_ttl=args.sandbox_code_ttl,
        rate_limit_per_minute=args.sandbox_rate_limit or None,
        auto_approve=not args.sandbox_interactive,
        invalid_client_http_status=args.sandbox_invalid_client_status,
        webhooks=WebhookSettings(
            time_scale=args.sandbox_webhook_time_scale,
            retry_base_seconds=args.sandbox_webhook_retry_base,
            horizon_seconds=args.sandbox_webhook_horizon,
            timeout_seconds=args.sandbox_webhook_timeout,
        ),
    )
    config.validate()
    return config


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _show_sandbox_logs(level: str) -> None:
    """Print the sandbox's own log lines (e.g. each webhook attempt at info) like uvicorn's,
    each exactly once: with a handler of their own and no propagation to the root logger
    (which the main CLI configures too)."""
    for name in ("sandbox", "tiktok_sandbox"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
            logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(level.upper())


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
    lines.append(f"  webhook callback URL: {app.callback_url or '(none: no webhooks sent)'}")
    lines.append(f"  admin API: {base}/sandbox/ (see docs/sandbox.md)")
    print("\n".join(lines), file=sys.stderr)
    if not _is_loopback(host):
        print("sandbox: warning: the admin API has no auth; bind to loopback", file=sys.stderr)
    _show_sandbox_logs(args.sandbox_log_level)
    uvicorn.run(create_app(config), host=host, port=port, log_level=args.sandbox_log_level)
    return 0


# -- `deliveries`: the webhook delivery log of a running sandbox -----------------------


def configure_deliveries_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        dest="sandbox_url",
        default=DEFAULT_URL,
        metavar="URL",
        help=f"base URL of the running sandbox (default: {DEFAULT_URL})",
    )
    parser.add_argument(
        "--status",
        dest="sandbox_status",
        choices=sorted(STATUSES),
        help="only deliveries in this state (default: all)",
    )
    parser.add_argument(
        "--event", dest="sandbox_event", metavar="NAME", help="only this event (default: all)"
    )
    parser.add_argument(
        "--open-id", dest="sandbox_open_id", metavar="OPEN_ID", help="only this user's"
    )
    parser.add_argument(
        "--client-key", dest="sandbox_client_key", metavar="KEY", help="only this app's"
    )
    parser.add_argument(
        "--id",
        dest="sandbox_delivery_id",
        type=int,
        metavar="ID",
        help="show this delivery, its body and every attempt",
    )
    parser.add_argument(
        "--json", dest="sandbox_json", action="store_true", help="print the API's JSON"
    )
    parser.add_argument(
        "--timeout",
        dest="sandbox_timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the sandbox (default 5)",
    )


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _last(delivery: dict[str, Any]) -> str:
    if delivery["last_status_code"] is not None:
        return str(delivery["last_status_code"])
    error: str | None = delivery["last_error"]
    return "-" if error is None else (error if len(error) <= 40 else error[:39] + "…")


def _table(header: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]
    lines = [header, *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def deliveries_table(deliveries: list[dict[str, Any]]) -> str:
    """The listing `python -m tiktok_sandbox deliveries` prints, from `GET /sandbox/webhooks`."""
    if not deliveries:
        return "no webhook deliveries"
    header = ["ID", "STATUS", "EVENT", "OPEN_ID", "CLIENT_KEY", "ATTEMPTS", "LAST"]
    header += ["CREATED (UTC)", "NEXT ATTEMPT (UTC)"]
    rows = [
        [
            str(d["id"]),
            d["status"],
            d["event"],
            d["open_id"] or "-",
            d["client_key"],
            str(d["attempt_count"]),
            _last(d),
            _when(d["created_at"]),
            _when(d["next_attempt_at"]),
        ]
        for d in deliveries
    ]
    return _table(header, rows)


def delivery_report(delivery: dict[str, Any]) -> str:
    """One delivery in full, from `GET /sandbox/webhooks/{id}`."""
    lines = [
        f"delivery {delivery['id']}: {delivery['event']} for {delivery['open_id'] or '-'} "
        f"(app {delivery['client_key']}): {delivery['status']} after "
        f"{delivery['attempt_count']} attempt(s)",
        f"created {_when(delivery['created_at'])} UTC, next attempt "
        f"{_when(delivery['next_attempt_at'])}, finished {_when(delivery['finished_at'])}",
    ]
    if delivery["redelivery_of"] is not None:
        lines.append(f"redelivery of {delivery['redelivery_of']}")
    if delivery["discard_reason"]:
        lines.append(f"discarded: {delivery['discard_reason']}")
    lines += [f"body: {delivery['body']}", ""]
    if not delivery["attempts"]:
        lines.append("no attempts yet")
        return "\n".join(lines)
    rows = [
        [
            str(a["number"]),
            _when(a["started_at"]),
            str(a["signature_timestamp"]),
            str(a["status_code"]) if a["status_code"] is not None else a["error"] or "-",
            f"{a['duration_ms']:.1f} ms",
            (a["response_body"][:60] + ("…" if len(a["response_body"]) > 60 else "")).replace(
                "\n", " "
            ),
        ]
        for a in delivery["attempts"]
    ]
    lines.append(_table(["#", "STARTED (UTC)", "T", "RESULT", "DURATION", "RESPONSE"], rows))
    return "\n".join(lines)


def run_deliveries(args: argparse.Namespace) -> int:
    """Print the delivery log of the sandbox at `--url`; 1 when it cannot be read."""
    base = args.sandbox_url.rstrip("/")
    if args.sandbox_delivery_id is not None:
        path, params = f"/sandbox/webhooks/{args.sandbox_delivery_id}", {}
    else:
        path = "/sandbox/webhooks"
        filters = {
            "status": args.sandbox_status,
            "event": args.sandbox_event,
            "open_id": args.sandbox_open_id,
            "client_key": args.sandbox_client_key,
        }
        params = {name: value for name, value in filters.items() if value is not None}
    try:
        response = httpx.get(
            base + path, params=params, timeout=args.sandbox_timeout, trust_env=False
        )
    except httpx.HTTPError as exc:
        print(f"sandbox deliveries: cannot reach {base}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        print(f"sandbox deliveries: HTTP {response.status_code}: {message}", file=sys.stderr)
        return 1
    body = response.json()
    if args.sandbox_json:
        print(json.dumps(body, indent=2))
    elif args.sandbox_delivery_id is not None:
        print(delivery_report(body))
    else:
        print(deliveries_table(body["deliveries"]))
    return 0


class _Parser(argparse.ArgumentParser):
    """Reads an open_id with TikTok's leading '-' (`-000NAdx…`) as a value, not an option
    (the receiver's CLI does the same; the sandbox shares no code with it)."""

    def _parse_optional(self, arg_string: str) -> Any:
        if (
            len(arg_string) >= 8
            and arg_string.startswith("-")
            and not arg_string.startswith("--")
            and arg_string.isascii()
            and arg_string.replace("-", "").replace("_", "").replace(".", "").isalnum()
            and arg_string not in self._option_string_actions
        ):
            return None
        return super()._parse_optional(arg_string)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["deliveries"]:
        deliveries = _Parser(
            prog="python -m tiktok_sandbox deliveries",
            description="List the webhook deliveries of a running sandbox",
        )
        configure_deliveries_parser(deliveries)
        return run_deliveries(deliveries.parse_args(argv[1:]))
    parser = _Parser(
        prog="python -m tiktok_sandbox",
        description="Local simulator of TikTok's OAuth v2, User Info, Content Posting status, "
        "Display and Data Portability APIs",
        epilog="`python -m tiktok_sandbox deliveries --help`: the webhook delivery log",
    )
    configure_parser(parser)
    return run(parser.parse_args(argv))
