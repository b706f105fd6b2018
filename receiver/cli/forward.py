"""`tiktok-webhooks forward ...`: secrets, destinations, deliveries, retry and replay.

forward keygen                         a new whsec_ secret
forward destinations                   configured destinations, their state and counts
forward list [--destination N] [--state S] [--limit N]
forward show ID                        one delivery, every attempt, the payload
forward retry ID...                    send deliveries again now
forward replay --since T [--until T] [--destination N]
forward enable NAME | disable NAME
forward echo [--port 9400]             a consumer that verifies and prints (for `dev`)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handlers.forwarding.store import DeliveryStore
    from receiver.settings import Settings

Action = Callable[["Settings", "DeliveryStore"], Awaitable[int]]


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _json(value: Any) -> str:
    import msgspec

    return msgspec.json.format(msgspec.json.encode(value)).decode()


def _with_store(args: argparse.Namespace, action: Action) -> int:
    from redis.exceptions import RedisError

    from handlers.forwarding.store import DeliveryStore
    from receiver.redis_conn import create_redis
    from receiver.settings import load_settings_from_env

    settings = load_settings_from_env(getattr(args, "config", None))

    async def run() -> int:
        redis = create_redis(settings)
        try:
            return await action(settings, DeliveryStore(redis))
        except (RedisError, OSError) as exc:
            print(f"error: Redis is unreachable ({type(exc).__name__}): {exc}", file=sys.stderr)
            return 1
        finally:
            await redis.aclose()

    return asyncio.run(run())


def cmd_keygen(args: argparse.Namespace) -> int:
    from receiver.forward_config import generate_secret

    print(generate_secret())
    return 0


def _known(settings: Settings, name: str | None) -> bool:
    if name is None or any(d.name == name for d in settings.forward_destinations):
        return True
    names = ", ".join(d.name for d in settings.forward_destinations) or "none configured"
    print(f"error: no forward destination {name!r} (configured: {names})", file=sys.stderr)
    return False


def cmd_destinations(args: argparse.Namespace) -> int:
    from handlers.forwarding.admin import destinations_view

    async def action(settings: Settings, store: DeliveryStore) -> int:
        views = await destinations_view(settings, store)
        if not views:
            print("no forward destinations: set FORWARD_URL and FORWARD_SECRET, or [[forward]]")
            return 0
        for view in views:
            state = f"DISABLED ({view['disabled_reason']})" if view["disabled"] else "enabled"
            print(
                f"{view['name']}  {state}  pending={view['pending']}  dead={view['dead']}  "
                f"held={view['held']}  events={','.join(view['events'])}"
            )
        return 0

    return _with_store(args, action)


def cmd_list(args: argparse.Namespace) -> int:
    from handlers.forwarding.admin import list_view

    async def action(settings: Settings, store: DeliveryStore) -> int:
        try:
            rows = await list_view(
                store, limit=args.limit, destination=args.destination, state=args.state
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not rows:
            print("no deliveries")
        for row in rows:
            print(
                f"{row['id']}  {_when(row['created_at'])}  {row['destination']}  "
                f"{row['event']}  {row['state']}  attempts={row['attempts']}  "
                f"next={_when(row['next_attempt_at'])}  {row['note'][:60]}"
            )
        return 0

    return _with_store(args, action)


def cmd_show(args: argparse.Namespace) -> int:
    from handlers.forwarding.admin import delivery_view

    async def action(settings: Settings, store: DeliveryStore) -> int:
        missing = 0
        for delivery in args.id:
            view = await delivery_view(store, delivery)
            if view is None:
                print(f"{delivery}: no such delivery (see `forward list`)", file=sys.stderr)
                missing += 1
                continue
            print(_json(view))
        return 1 if missing else 0

    return _with_store(args, action)


def cmd_retry(args: argparse.Namespace) -> int:
    async def action(settings: Settings, store: DeliveryStore) -> int:
        missing = 0
        for delivery in args.id:
            if await store.requeue(delivery, only_unfinished=False):
                print(f"{delivery}: sending again now")
            else:
                print(f"{delivery}: no such delivery (see `forward list`)", file=sys.stderr)
                missing += 1
        return 1 if missing else 0

    return _with_store(args, action)


def cmd_replay(args: argparse.Namespace) -> int:
    from handlers.forwarding.admin import parse_time, replay

    try:
        since = parse_time(args.since)
        until = parse_time(args.until) if args.until else time.time()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if until < since:
        print("error: --until is before --since", file=sys.stderr)
        return 2

    async def action(settings: Settings, store: DeliveryStore) -> int:
        if not _known(settings, args.destination):
            return 2
        sent = await replay(store, since=since, until=until, destination=args.destination)
        print(
            f"{len(sent)} deliveries not delivered yet between {_when(since)} and "
            f"{_when(until)} are sent again now"
        )
        return 0

    return _with_store(args, action)


def cmd_enable(args: argparse.Namespace) -> int:
    from handlers.forwarding.admin import enable

    async def action(settings: Settings, store: DeliveryStore) -> int:
        if not _known(settings, args.name):
            return 2
        if args.action == "disable":
            await store.disable(args.name, "disabled by hand")
            print(f"{args.name}: disabled; new events are held until `forward enable`")
            return 0
        held = (await store.counts(args.name))["held"]

        def progress(released: int, left: int) -> None:
            if left:  # only a long release reports as it goes
                print(f"  released {released:,} held deliveries, {left:,} to go", flush=True)

        enabled, released = await enable(store, args.name, progress if held > 5000 else None)
        print(f"{args.name}: {'enabled' if enabled else 'was not disabled'}")
        if released:
            print(
                f"{released:,} held {'delivery is' if released == 1 else 'deliveries are'} sent now"
            )
        return 0

    return _with_store(args, action)


def cmd_echo(args: argparse.Namespace) -> int:
    import uvicorn

    from receiver.cli.echo import create_echo_app
    from receiver.forward_config import secret_bytes

    raw = [s.strip() for s in (args.secret or "").split(",") if s.strip()]
    try:
        keys = [secret_bytes(s) for s in raw]
    except ValueError as exc:
        print(f"error: --secret (or FORWARD_SECRET) {exc}", file=sys.stderr)
        return 2
    if not keys:
        print("error: give --secret or set FORWARD_SECRET (a whsec_ secret)", file=sys.stderr)
        return 2
    uvicorn.run(
        create_echo_app(keys), host=args.host, port=args.port, log_level="warning", lifespan="off"
    )
    return 0


def register(sub: Any) -> None:
    import os

    forward = sub.add_parser(
        "forward",
        help="forwarding to your services: secrets, deliveries, retry, replay",
        description="Forwarding of TikTok events to your own services as Standard Webhooks "
        "(docs/forwarding.md): secrets, destinations, deliveries and their attempts.",
    )
    actions = forward.add_subparsers(dest="forward_command", required=True, metavar="ACTION")

    def add(name: str, func: Callable[[argparse.Namespace], int], text: str) -> Any:
        parser = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        parser.add_argument("--config", type=Path, help="TOML settings file (default: none)")
        parser.set_defaults(func=func)
        return parser

    destination_help = "only this destination (default: all)"
    add("keygen", cmd_keygen, "print a new whsec_ secret for a destination")
    add("destinations", cmd_destinations, "configured destinations, their state and counts")
    listing = add("list", cmd_list, "the newest deliveries")
    listing.add_argument("--destination", help=destination_help)
    listing.add_argument("--state", help="pending, succeeded, dead or held (default: any)")
    listing.add_argument("--limit", type=int, default=50, help="at most N (default 50)")
    show = add("show", cmd_show, "one delivery with every attempt and its payload")
    show.add_argument("id", nargs="+", help="delivery ids (msg_…)")
    retry = add("retry", cmd_retry, "send deliveries again now")
    retry.add_argument("id", nargs="+", help="delivery ids (msg_…)")
    replay = add("replay", cmd_replay, "send again every undelivered delivery in a time range")
    replay.add_argument("--since", required=True, help="ISO-8601 or unix seconds")
    replay.add_argument("--until", help="ISO-8601 or unix seconds (default: now)")
    replay.add_argument("--destination", help=destination_help)
    for name, text in (
        ("enable", "enable a disabled destination"),
        ("disable", "disable a destination"),
    ):
        toggle = add(name, cmd_enable, text)
        toggle.add_argument("name", help="the destination's name")
        toggle.set_defaults(action=name)
    echo = add("echo", cmd_echo, "a consumer that verifies forwarded requests and prints them")
    echo.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    echo.add_argument("--port", type=int, default=9400, help="port (default 9400)")
    echo.add_argument(
        "--secret",
        default=os.environ.get("FORWARD_SECRET"),
        help="the whsec_ secret requests are checked with (default: $FORWARD_SECRET)",
    )
