"""CLI commands around users' tokens: `keygen`, `tokens ...` (and `doctor`, in .doctor).

None of them prints a token value: `show` prints the same view as the internal API, and
`revoke` prints only what happened.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Heavy imports (redis, httpx, the vault) happen inside the commands, so that
# `tiktok-webhooks --help` and unrelated commands stay fast.
if TYPE_CHECKING:
    from receiver.settings import Settings
    from receiver.vault.services import TokenServices
    from receiver.vault.vault import TokenVault

Action = Callable[["TokenServices", "TokenVault"], Awaitable[int]]


def _settings(args: argparse.Namespace) -> Settings:
    from receiver.settings import ConfigError, load_settings_from_env

    settings = load_settings_from_env(getattr(args, "config", None))
    problems = []
    if not settings.apps:
        problems.append("TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET are required")
    if not settings.token_encryption_keys:
        problems.append(
            "TOKEN_ENCRYPTION_KEYS is not set: the tokens are encrypted with it "
            "(the same keys the receiver and the worker use)"
        )
    if problems:
        raise ConfigError(problems)
    return settings


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _with_vault(args: argparse.Namespace, action: Action) -> int:
    from redis.exceptions import RedisError

    from receiver.cli.failures import unreachable_redis
    from receiver.redis_conn import create_redis
    from receiver.vault.services import TokenServices
    from receiver.vault.vault import VaultError

    settings = _settings(args)

    async def run() -> int:
        redis = create_redis(settings)
        services = TokenServices.open(settings, redis)
        try:
            vault = services.vault(args.client_key)
            if vault is None:
                print(f"error: no app with client key {args.client_key!r}", file=sys.stderr)
                return 2
            return await action(services, vault)
        except (RedisError, OSError) as exc:
            raise unreachable_redis(settings, exc) from None
        except VaultError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            await services.aclose()
            await redis.aclose()

    return asyncio.run(run())


def cmd_keygen(args: argparse.Namespace) -> int:
    from receiver.vault.crypto import generate_key

    print(generate_key())
    return 0


async def _list(services: TokenServices, vault: TokenVault) -> int:
    records = await vault.list_records()
    if not records:
        print("no users have tokens stored")
        return 0
    rows = [("OPEN_ID", "STATUS", "ACCESS EXPIRES", "REFRESH EXPIRES", "SCOPES")]
    rows += [
        (
            r.open_id,
            r.status.value,
            _when(r.expires_at),
            _when(r.refresh_expires_at),
            ",".join(r.scopes),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)), row[4])
    return 0


async def _show(services: TokenServices, vault: TokenVault, open_id: str) -> int:
    import msgspec

    from receiver.api.user_view import describe_user

    view = await describe_user(services.redis, vault, open_id)
    if view is None:
        print(f"{open_id}: not connected", file=sys.stderr)
        return 1
    print(msgspec.json.format(msgspec.json.encode(view)).decode())
    return 0


async def _refresh(services: TokenServices, vault: TokenVault, open_id: str) -> int:
    from receiver.tiktok.errors import TikTokError
    from receiver.vault.vault import TokenNotFound, VaultError

    try:
        record = await vault.refresh(open_id)
    except TokenNotFound:
        print(f"{open_id}: not connected", file=sys.stderr)
        return 1
    except (TikTokError, VaultError) as exc:
        print(f"{open_id}: refresh failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"{open_id}: refreshed; access token valid until {_when(record.expires_at)}, "
        f"refresh token until {_when(record.refresh_expires_at)}"
    )
    return 0


async def _revoke(services: TokenServices, vault: TokenVault, open_id: str) -> int:
    from receiver.tiktok.errors import InvalidGrant, TikTokError
    from receiver.vault.vault import ReauthorizationRequired, TokenStatus

    client = services.client(vault.client_key)
    assert client is not None
    record = await vault.get(open_id)
    if record is None:
        print(f"{open_id}: not connected", file=sys.stderr)
        return 1
    if record.status is TokenStatus.REVOKED:
        print(f"{open_id}: already revoked")
        return 0
    try:
        token = await vault.get_valid_access_token(open_id, margin_seconds=60)
        await client.revoke(token)
    except (ReauthorizationRequired, InvalidGrant):
        # The grant is already dead at TikTok: nothing to revoke there.
        await vault.mark_revoked(open_id)
        print(f"{open_id}: the grant was no longer valid at TikTok; marked revoked")
        return 0
    except TikTokError as exc:
        print(f"{open_id}: revoke failed, nothing changed: {exc}", file=sys.stderr)
        return 1
    await vault.mark_revoked(open_id)
    print(f"{open_id}: revoked at TikTok and marked revoked (tokens deleted)")
    return 0


async def _reencrypt(services: TokenServices, vault: TokenVault) -> int:
    result = await vault.reencrypt_all()
    print(f"re-encrypted {result.reencrypted} token record(s) with the current key")
    for name in result.corrupt:
        print(f"corrupt (marked corrupt, the user must connect again): {name}", file=sys.stderr)
    for name in result.unknown_key:
        print(f"skipped, sealed with a key not in TOKEN_ENCRYPTION_KEYS: {name}", file=sys.stderr)
    if result.complete:
        return 0
    print(
        f"error: {len(result.corrupt) + len(result.unknown_key)} record(s) were not "
        "re-encrypted (listed above): keep the old key until they are dealt with",
        file=sys.stderr,
    )
    return 1


def cmd_tokens(args: argparse.Namespace) -> int:
    action: str = args.action
    if action in ("show", "refresh", "revoke") and not args.open_id:
        print(f"error: `tokens {action}` needs an OPEN_ID", file=sys.stderr)
        return 2
    handlers: dict[str, Action] = {
        "list": _list,
        "reencrypt": _reencrypt,
        "show": lambda s, v: _show(s, v, args.open_id),
        "refresh": lambda s, v: _refresh(s, v, args.open_id),
        "revoke": lambda s, v: _revoke(s, v, args.open_id),
    }
    return _with_vault(args, handlers[action])


def register(sub: Any) -> None:
    keygen = sub.add_parser(
        "keygen",
        help="print a new key for TOKEN_ENCRYPTION_KEYS",
        description="Print a new random key for TOKEN_ENCRYPTION_KEYS (or ADMIN_TOKEN).",
    )
    keygen.set_defaults(func=cmd_keygen)

    tokens = sub.add_parser(
        "tokens",
        help="list, show, refresh, revoke or re-encrypt users' tokens (never printed)",
        description="Users' tokens in the vault; token values are never printed.",
    )
    tokens.add_argument(
        "action",
        choices=["list", "show", "refresh", "revoke", "reencrypt"],
        help="list users, show one, refresh or revoke one's tokens, re-encrypt all with "
        "the current key",
    )
    tokens.add_argument("open_id", nargs="?", help="the user (for show, refresh, revoke)")
    tokens.add_argument("--client-key", help="the app (default: the first configured)")
    tokens.add_argument("--config", type=Path, help="TOML settings file (default: none)")
    tokens.set_defaults(func=cmd_tokens)

    doctor = sub.add_parser(
        "doctor",
        help="check the configuration, Redis, TikTok access and forwarding destinations",
        description="Check the configuration as `serve` and `worker` would, then Redis, "
        "TikTok's token endpoint and each forwarding destination (its state, and whether it "
        "accepts a connection); one line per check, what to fix, exit status 1 if any failed.",
    )
    doctor.add_argument("--config", type=Path, help="TOML settings file (default: none)")
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from receiver.cli.doctor import run_checks

    checks = run_checks(os.environ, args.config)
    for check in checks:
        print(check.line())
    failed = sum(not c.ok for c in checks)
    warned = sum(c.ok and c.warning for c in checks)
    skipped = sum(c.skipped for c in checks)
    done = len(checks) - skipped
    tail = f" ({warned} warning{'s' if warned != 1 else ''})" if warned else ""
    tail += f", {skipped} skipped" if skipped else ""
    print(f"{failed} of {done} checks failed{tail}" if failed else f"all {done} checks OK{tail}")
    return 1 if failed else 0
