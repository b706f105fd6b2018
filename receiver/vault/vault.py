"""The token vault: users' OAuth tokens in Redis, encrypted, refreshed once at a time.

One Redis hash per (client_key, open_id) under ``TOKEN_PREFIX`` (layout in
`receiver.vault.record`); ``TOKEN_EXPIRY_INDEX`` holds active records by access-token
expiry (ms) for the refresh sweep.

TikTok rotates refresh tokens: a refresh invalidates the token it used. Two processes
refreshing the same user at once would therefore log the user out, so refreshes take a
per-user Redis lock, and whoever does not get it waits and then uses the winner's result.

Every write a refresh makes is fenced by the record version it read: a refresh whose answer
arrives after someone else stored newer tokens (the user connected again, or a stalled lock
holder lost its lock) neither overwrites them nor marks the user `needs_reauth`. A refresh
that got no answer (a timeout: TikTok may or may not have rotated) leaves the record
`refresh_uncertain`; the next attempt waits out a short backoff and then tries once more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, NamedTuple, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from receiver.keys import PROFILE_PREFIX, REFRESH_LOCK_PREFIX, TOKEN_EXPIRY_INDEX, TOKEN_PREFIX
from receiver.secrets import Secret
from receiver.tiktok.client import TikTokClient, TokenGrant
from receiver.tiktok.errors import InvalidGrant, TransientError
from receiver.vault.crypto import TokenCipher, TokenDecryptError, UnknownKey
from receiver.vault.errors import (
    CorruptRecord,
    ReauthorizationRequired,
    RefreshTimeout,
    TokenNotFound,
    VaultError,
)
from receiver.vault.record import (
    MARK_CORRUPT,
    TokenRecord,
    TokenStatus,
    as_text,
    corrupt_placeholder,
    glob_escape,
    open_tokens,
    parse_record,
    profile_key,
    record_name,
    seal_tokens,
    token_key,
)
from receiver.vault.refresh_lock import RedisLock
from receiver.vault.rotation import Reencryption, reencrypt_records

__all__ = [
    "CorruptRecord",
    "ReauthorizationRequired",
    "RefreshTimeout",
    "TokenNotFound",
    "TokenRecord",
    "TokenStatus",
    "TokenVault",
    "VaultError",
    "profile_key",
    "record_name",
    "reencrypt_records",
    "token_key",
]

logger = logging.getLogger("tiktok_webhooks.vault")

DEFAULT_MARGIN_SECONDS: Final = 300.0
_SAVE_RETRY_DELAYS: Final = (0.1, 0.5, 2.0)
# After a refresh without an answer: how long the next attempt waits before trying again.
UNCERTAIN_BACKOFF_SECONDS: Final = 2.0
_UNCERTAIN_FIELD: Final = "refresh_uncertain_at"
# TikTok gave no answer, so it may have rotated the refresh token.
_NO_ANSWER: Final = frozenset({"timeout", "connection_error"})


class _Loaded(NamedTuple):
    record: TokenRecord
    access_token: Secret
    refresh_token: Secret
    uncertain_at: float | None = None


# Store a refresh's result only over the version it was made from (fencing).
# ARGV: expected version, expiry-index member, index score, then field/value pairs.
_SAVE_IF_VERSION: Final = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[1], 'status') ~= 'active' then return -1 end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HDEL', KEYS[1], 'refresh_uncertain_at')
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'version', 1)
"""

# needs_reauth only if the record is still the version whose refresh token was refused.
_NEEDS_REAUTH_IF_VERSION: Final = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'needs_reauth', 'updated_at', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('ZREM', KEYS[2], ARGV[3])
return 1
"""

# Note a refresh without an answer (the version stays: the tokens did not change).
_UNCERTAIN_IF_VERSION: Final = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'refresh_uncertain_at', ARGV[2])
return 1
"""


# Status change on an existing record only (never resurrect a deleted one).
_SET_STATUS: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated_at', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'version', 1)
if ARGV[3] == '1' then redis.call('HDEL', KEYS[1], 'tokens') end
redis.call('ZREM', KEYS[2], ARGV[4])
return 1
"""


class TokenVault:
    """Stores, reads and refreshes one app's user tokens; see the module docstring."""

    def __init__(
        self,
        redis: aioredis.Redis,
        cipher: TokenCipher,
        client: TikTokClient,
        client_key: str,
        clock: Callable[[], float] = time.time,
        *,
        lock_ttl_seconds: float | None = None,
        poll_interval_seconds: float = 0.05,
        uncertain_backoff_seconds: float = UNCERTAIN_BACKOFF_SECONDS,
    ) -> None:
        self._redis = redis
        self._cipher = cipher
        self._client = client
        self.client_key = client_key
        self._clock = clock
        # Long enough for a slow TikTok answer, so the lock never lapses mid-refresh.
        ttl = lock_ttl_seconds or max(30.0, client.timeout_seconds * 3)
        self._lock = RedisLock(redis, ttl_seconds=ttl, poll_seconds=poll_interval_seconds)
        self._set_status = redis.register_script(_SET_STATUS)
        self._mark_corrupt = redis.register_script(MARK_CORRUPT)
        self._save_if_version_script = redis.register_script(_SAVE_IF_VERSION)
        self._needs_reauth_if_version = redis.register_script(_NEEDS_REAUTH_IF_VERSION)
        self._uncertain_if_version = redis.register_script(_UNCERTAIN_IF_VERSION)
        self.uncertain_backoff_seconds = uncertain_backoff_seconds

    def __repr__(self) -> str:
        return f"TokenVault(client_key={self.client_key!r})"

    async def save_grant(self, grant: TokenGrant) -> TokenRecord:
        """Store a fresh grant (code exchange or refresh) as the active tokens, atomically."""
        if not grant.open_id:
            raise ValueError("the grant has no open_id")
        name = record_name(self.client_key, grant.open_id)
        now = self._clock()
        expires_at = now + grant.expires_in
        refresh_expires_at = now + grant.refresh_expires_in
        fields = {
            "status": TokenStatus.ACTIVE.value,
            "scopes": ",".join(grant.scope),
            "expires_at": repr(expires_at),
            "refresh_expires_at": repr(refresh_expires_at),
            "updated_at": repr(now),
            "tokens": seal_tokens(self._cipher, name, grant.access_token, grant.refresh_token),
        }
        key = TOKEN_PREFIX + name
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.hdel(key, _UNCERTAIN_FIELD)
            pipe.hincrby(key, "version", 1)
            pipe.zadd(TOKEN_EXPIRY_INDEX, {name: int(expires_at * 1000)})
            _, _, version, _ = await pipe.execute()
        return TokenRecord(
            client_key=self.client_key,
            open_id=grant.open_id,
            status=TokenStatus.ACTIVE,
            scopes=grant.scope,
            expires_at=expires_at,
            refresh_expires_at=refresh_expires_at,
            updated_at=now,
            version=int(version),
        )

    async def get(self, open_id: str) -> TokenRecord | None:
        """The record's metadata; a damaged one is marked and shown as `corrupt`."""
        fields = await self._fields(open_id)
        if not fields:
            return None
        try:
            return self._parse(open_id, fields)
        except CorruptRecord:
            await self._mark_as_corrupt(open_id)
            return corrupt_placeholder(self.client_key, open_id, fields)

    async def get_valid_access_token(
        self, open_id: str, margin_seconds: float = DEFAULT_MARGIN_SECONDS
    ) -> Secret:
        """An access token good for at least `margin_seconds`, refreshing it if needed."""
        loaded = await self._load_usable(open_id)
        if loaded.record.expires_at - self._clock() > margin_seconds:
            return loaded.access_token
        return (await self._refresh_once(loaded.record.version, open_id)).access_token

    async def refresh(self, open_id: str) -> TokenRecord:
        """Refresh now (single-flight across processes); concurrent callers share one refresh.

        Raises InvalidGrant (after marking the user needs_reauth) when TikTok rejects the
        refresh token, ReauthorizationRequired when the record is already unusable.
        """
        loaded = await self._load_usable(open_id)
        return (await self._refresh_once(loaded.record.version, open_id)).record

    async def mark_revoked(self, open_id: str) -> bool:
        """Mark the user revoked and drop the tokens; False if there was no record."""
        return await self._mark(open_id, TokenStatus.REVOKED, drop_tokens=True)

    async def mark_needs_reauth(self, open_id: str) -> bool:
        return await self._mark(open_id, TokenStatus.NEEDS_REAUTH, drop_tokens=False)

    async def delete(self, open_id: str) -> None:
        """Forget the user: tokens, index entry and stored profile."""
        name = record_name(self.client_key, open_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(TOKEN_PREFIX + name, PROFILE_PREFIX + name)
            pipe.zrem(TOKEN_EXPIRY_INDEX, name)
            await pipe.execute()

    async def list_records(self) -> list[TokenRecord]:
        """Every record of this app, sorted by open_id."""
        prefix = TOKEN_PREFIX + record_name(self.client_key, "")
        records = []
        async for key in self._redis.scan_iter(match=glob_escape(prefix) + "*", count=500):
            record = await self.get(as_text(key)[len(prefix) :])
            if record is not None:
                records.append(record)
        return sorted(records, key=lambda r: r.open_id)

    async def due_for_refresh(self, within_seconds: float) -> list[str]:
        """open_ids of active users whose access token expires within `within_seconds`."""
        limit = int((self._clock() + within_seconds) * 1000)
        members = await self._redis.zrangebyscore(TOKEN_EXPIRY_INDEX, "-inf", limit)
        prefix = record_name(self.client_key, "")
        return [m[len(prefix) :] for m in map(as_text, members) if m.startswith(prefix)]

    async def reencrypt_all(self) -> Reencryption:
        """Re-encrypt every record (of every app) under the current key; see key_rotation."""
        return await reencrypt_records(self._redis, self._cipher)

    # -- internals ---------------------------------------------------------------------

    async def _fields(self, open_id: str) -> dict[str, str]:
        key = token_key(self.client_key, open_id)
        raw = await cast(Awaitable[dict[bytes | str, bytes | str]], self._redis.hgetall(key))
        return {as_text(k): as_text(v) for k, v in raw.items()}

    def _parse(self, open_id: str, fields: dict[str, str]) -> TokenRecord:
        try:
            return parse_record(self.client_key, open_id, fields)
        except (KeyError, ValueError) as exc:
            if fields.get("status") == TokenStatus.CORRUPT.value:
                return corrupt_placeholder(self.client_key, open_id, fields)
            raise CorruptRecord(f"token record of user {open_id} is malformed ({exc!r})") from None

    async def _mark_as_corrupt(self, open_id: str) -> None:
        """Mark the record `corrupt` and out of the refresh sweep, so no job keeps failing
        on it; its blob stays for inspection."""
        name = record_name(self.client_key, open_id)
        await self._mark_corrupt(
            keys=[TOKEN_PREFIX + name, TOKEN_EXPIRY_INDEX], args=[repr(self._clock()), name]
        )
        logger.error("token record %s cannot be opened: marked corrupt", name)

    async def _load_usable(self, open_id: str) -> _Loaded:
        """The record with its tokens, or the VaultError saying why it cannot be used."""
        fields = await self._fields(open_id)
        if not fields:
            raise TokenNotFound(f"no tokens stored for user {open_id}")
        try:
            record = self._parse(open_id, fields)
        except CorruptRecord:
            await self._mark_as_corrupt(open_id)
            raise
        if record.status is TokenStatus.CORRUPT:
            raise CorruptRecord(f"token record of user {open_id} is marked corrupt: connect again")
        if record.status is not TokenStatus.ACTIVE:
            raise ReauthorizationRequired(f"user {open_id} is {record.status.value}: connect again")
        name = record_name(self.client_key, open_id)
        if "tokens" not in fields:
            await self._mark_as_corrupt(open_id)
            raise CorruptRecord(f"token record of user {open_id} has no tokens")
        try:
            access, refresh = open_tokens(self._cipher, name, fields["tokens"])
        except UnknownKey as exc:
            # A settings problem (a key missing from TOKEN_ENCRYPTION_KEYS), not the record's.
            raise CorruptRecord(f"token record {name}: {exc}") from None
        except TokenDecryptError as exc:
            await self._mark_as_corrupt(open_id)
            raise CorruptRecord(f"token record {name}: {exc}") from None
        if record.refresh_expires_at <= self._clock():
            # TikTok would answer invalid_grant; save the call.
            await self.mark_needs_reauth(open_id)
            raise ReauthorizationRequired(f"the refresh token of user {open_id} has expired")
        uncertain = fields.get(_UNCERTAIN_FIELD)
        try:
            uncertain_at = float(uncertain) if uncertain else None
        except ValueError:
            uncertain_at = None
        return _Loaded(record, access, refresh, uncertain_at)

    async def _refresh_once(self, seen_version: int, open_id: str) -> _Loaded:
        """Refresh unless someone else did since `seen_version`; waits for a concurrent one."""
        lock_key = REFRESH_LOCK_PREFIX + record_name(self.client_key, open_id)
        deadline = time.monotonic() + 2 * self._lock.ttl_seconds
        while True:
            lock_token = await self._lock.acquire(lock_key)
            if lock_token is not None:
                try:
                    current = await self._load_usable(open_id)
                    if current.record.version != seen_version:
                        return current  # refreshed by someone else while we got the lock
                    return await self._do_refresh(open_id, current)
                finally:
                    await self._lock.release(lock_key, lock_token)
            if not await self._lock.wait_released(lock_key, deadline=deadline):
                raise RefreshTimeout(f"refresh of user {open_id} is still running elsewhere")
            current = await self._load_usable(open_id)
            if current.record.version != seen_version:
                return current
            # The holder failed without changing the record (e.g. a timeout): try ourselves.
            if time.monotonic() > deadline:
                raise RefreshTimeout(f"refresh of user {open_id} did not complete")

    async def _do_refresh(self, open_id: str, current: _Loaded) -> _Loaded:
        version = current.record.version
        name = record_name(self.client_key, open_id)
        if current.uncertain_at is not None:
            # The last refresh got no answer: let a request TikTok may still be working on
            # finish first, then try once more (with the token we have).
            wait = current.uncertain_at + self.uncertain_backoff_seconds - self._clock()
            await asyncio.sleep(max(0.0, min(wait, self.uncertain_backoff_seconds)))
            logger.info("retrying the refresh of user %s after one without an answer", open_id)
        try:
            # Bound the whole call, so the lock cannot lapse while TikTok is still answering.
            async with asyncio.timeout(self._lock.ttl_seconds / 2):
                grant = await self._client.refresh(current.refresh_token)
        except (TimeoutError, TransientError) as exc:
            if isinstance(exc, TransientError) and exc.code not in _NO_ANSWER:
                raise
            await self._uncertain_if_version(
                keys=[TOKEN_PREFIX + name], args=[version, repr(self._clock())]
            )
            logger.warning("refresh of user %s got no answer: marked refresh_uncertain", open_id)
            if isinstance(exc, TransientError):
                raise
            raise TransientError("timeout", "refresh took too long", endpoint="token") from None
        except InvalidGrant:
            marked = await self._needs_reauth_if_version(
                keys=[TOKEN_PREFIX + name, TOKEN_EXPIRY_INDEX],
                args=[version, repr(self._clock()), name],
            )
            if not marked:
                # Newer tokens were stored meanwhile (a new connect, another refresh).
                logger.info("refresh of user %s refused, but newer tokens are stored", open_id)
                return await self._load_usable(open_id)
            logger.warning("refresh token of user %s rejected: marked needs_reauth", open_id)
            raise
        if grant.open_id != open_id:
            logger.error("TikTok refreshed user %s but answered for another user", open_id)
            raise TransientError("invalid_response", "refresh answered for another open_id")
        record = await self._save_rotated(grant, version)
        if record is None:
            logger.warning(
                "refreshed tokens of user %s not stored: newer tokens were stored meanwhile",
                open_id,
            )
            return await self._load_usable(open_id)
        logger.info("refreshed tokens of user %s", open_id)
        return _Loaded(record, grant.access_token, grant.refresh_token)

    async def _save_if_version(self, grant: TokenGrant, version: int) -> TokenRecord | None:
        """Store a refresh's grant over `version` only; None when the record moved on."""
        name = record_name(self.client_key, grant.open_id)
        now = self._clock()
        expires_at = now + grant.expires_in
        refresh_expires_at = now + grant.refresh_expires_in
        fields = {
            "scopes": ",".join(grant.scope),
            "expires_at": repr(expires_at),
            "refresh_expires_at": repr(refresh_expires_at),
            "updated_at": repr(now),
            "tokens": seal_tokens(self._cipher, name, grant.access_token, grant.refresh_token),
        }
        pairs = [item for field in fields.items() for item in field]
        new_version = await self._save_if_version_script(
            keys=[TOKEN_PREFIX + name, TOKEN_EXPIRY_INDEX],
            args=[version, name, int(expires_at * 1000), *pairs],
        )
        if int(new_version) < 0:
            return None
        return TokenRecord(
            client_key=self.client_key,
            open_id=grant.open_id,
            status=TokenStatus.ACTIVE,
            scopes=grant.scope,
            expires_at=expires_at,
            refresh_expires_at=refresh_expires_at,
            updated_at=now,
            version=int(new_version),
        )

    async def _save_rotated(self, grant: TokenGrant, version: int) -> TokenRecord | None:
        """Save a refresh's result, retrying briefly: TikTok has already retired the old
        refresh token, so losing this write means the user must connect again. None when
        newer tokens were stored since `version` (they win)."""
        for delay in _SAVE_RETRY_DELAYS:
            try:
                return await self._save_if_version(grant, version)
            except RedisError:
                logger.warning("saving refreshed tokens of user %s failed; retrying", grant.open_id)
                await asyncio.sleep(delay)
        try:
            return await self._save_if_version(grant, version)
        except RedisError:
            logger.error(
                "refreshed tokens of user %s could not be saved: the user must connect again",
                grant.open_id,
            )
            raise

    async def _mark(self, open_id: str, status: TokenStatus, *, drop_tokens: bool) -> bool:
        name = record_name(self.client_key, open_id)
        done = await self._set_status(
            keys=[TOKEN_PREFIX + name, TOKEN_EXPIRY_INDEX],
            args=[status.value, repr(self._clock()), "1" if drop_tokens else "0", name],
        )
        return bool(done)
