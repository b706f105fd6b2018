"""`status` and `data-request`: what the worker recorded and fetched, and data requests.

    tiktok-webhooks status publish|video|data-request|share|portability ID [--client-key K]
    tiktok-webhooks data-request start OPEN_ID --category all_data [--format json]
    tiktok-webhooks data-request list OPEN_ID

The answers are the JSON the internal API gives, ids as strings. With several apps
configured, --client-key is required (ids are unique within one app only).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from receiver.cli.failures import EXIT_CONFIG, CommandFailed

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from receiver.settings import Settings

STATUS_KINDS = ("publish", "video", "data-request", "share", "portability")


def _settings(args: argparse.Namespace) -> Settings:
    from receiver.settings import load_settings_from_env

    return load_settings_from_env(getattr(args, "config", None))


def _print(data: Any) -> None:
    print(msgspec.json.format(msgspec.json.encode(data)).decode())


def _client_key(settings: Settings, given: str | None) -> str:
    from receiver.apps import AppChoiceError, choose_app

    try:
        return choose_app([app.client_key for app in settings.apps], given)
    except AppChoiceError as exc:
        hint = "pass --client-key" if not given else "check --client-key"
        raise CommandFailed(f"{exc}: {hint}", EXIT_CONFIG) from None


def _run(settings: Settings, action: Any) -> int:
    from receiver.cli.failures import reaching_redis
    from receiver.redis_conn import create_redis

    async def run() -> int:
        redis = create_redis(settings)
        try:
            return int(await action(redis))
        finally:
            await redis.aclose()

    with reaching_redis(settings):
        return asyncio.run(run())


async def _lookup(redis: aioredis.Redis, kind: str, client_key: str, object_id: str) -> Any:
    from receiver import fetched
    from receiver.status_store import get_status

    if kind == "publish":
        return await fetched.publish_view(redis, client_key, object_id)
    if kind == "video":
        return await fetched.get_video(redis, client_key, object_id)
    if kind == "data-request":
        return await fetched.get_data_request(redis, client_key, object_id)
    return await get_status(
        redis, "share" if kind == "share" else "portability", client_key, object_id
    )


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    client_key = _client_key(settings, args.client_key)

    async def action(redis: aioredis.Redis) -> int:
        found = await _lookup(redis, args.kind, client_key, args.id)
        if found is None:
            print(f"nothing recorded for {args.kind} {args.id}", file=sys.stderr)
            return 1
        _print(found)
        return 0

    return _run(settings, action)


def cmd_data_request(args: argparse.Namespace) -> int:
    settings = _settings(args)
    client_key = _client_key(settings, args.client_key)
    if args.action == "list":

        async def listing(redis: aioredis.Redis) -> int:
            from receiver import fetched

            _print(await fetched.list_data_requests(redis, client_key, args.open_id))
            return 0

        return _run(settings, listing)
    if not args.category:
        raise CommandFailed(
            "name what to request with --category (all_data, video, profile, activity, "
            "direct_message)",
            EXIT_CONFIG,
        )
    if not settings.token_encryption_keys:
        raise CommandFailed("TOKEN_ENCRYPTION_KEYS is not set (the worker's keys)", EXIT_CONFIG)
    return _run(settings, lambda redis: _start(settings, redis, client_key, args))


async def _start(
    settings: Settings, redis: aioredis.Redis, client_key: str, args: argparse.Namespace
) -> int:
    from receiver import fetched
    from receiver.tiktok.errors import TikTokError
    from receiver.tiktok.portability import add_data_request
    from receiver.vault.services import TokenServices
    from receiver.vault.vault import TokenNotFound, VaultError

    services = TokenServices.open(settings, redis)
    try:
        vault = services.vault(client_key)
        client = services.client(client_key)
        assert vault is not None
        assert client is not None
        categories = list(dict.fromkeys(args.category))
        try:
            token = await vault.get_valid_access_token(args.open_id)
            request_id = await add_data_request(client, token, categories, args.format)
        except TokenNotFound:
            print(f"{args.open_id}: not connected", file=sys.stderr)
            return 1
        except (TikTokError, VaultError) as exc:
            print(f"{args.open_id}: the data request failed: {exc}", file=sys.stderr)
            return 1
        record = await fetched.save_data_request(
            redis,
            fetched.DataRequest(
                client_key=client_key,
                request_id=request_id,
                open_id=args.open_id,
                categories=categories,
                data_format=args.format,
                status="requested",
                requested_at=time.time(),
            ),
        )
        _print(record)
        return 0
    finally:
        await services.aclose()


def register(sub: Any) -> None:
    from receiver.tiktok.portability import CATEGORIES, FORMATS

    status = sub.add_parser(
        "status",
        help="what was recorded and fetched for a publish, video, data request, ...",
        description="The latest status the worker recorded for a share, publish or data "
        "download, and what it fetched for a publish, a video or a data request (JSON).",
    )
    status.add_argument("kind", choices=STATUS_KINDS, help="what the id names")
    status.add_argument("id", help="publish_id, post id, request_id or share_id")
    status.add_argument(
        "--client-key",
        help="the app (default: the only one; required when several are configured)",
    )
    status.add_argument("--config", type=Path, help="TOML settings file (default: none)")
    status.set_defaults(func=cmd_status)

    data = sub.add_parser(
        "data-request",
        help="start or list a user's Data Portability requests",
        description="Start a Data Portability request for a connected user (TikTok sends "
        "portability.download.ready when the archive is ready), or list the user's requests.",
    )
    data.add_argument("action", choices=["start", "list"], help="start one, or list them")
    data.add_argument("open_id", help="the user (a leading '-' is fine)")
    data.add_argument(
        "--category",
        action="append",
        choices=CATEGORIES,
        help="a data category, repeat for several (required by start; no default)",
    )
    data.add_argument(
        "--format", choices=FORMATS, default="json", help="archive content format (default json)"
    )
    data.add_argument(
        "--client-key",
        help="the app (default: the only one; required when several are configured)",
    )
    data.add_argument("--config", type=Path, help="TOML settings file (default: none)")
    data.set_defaults(func=cmd_data_request)
