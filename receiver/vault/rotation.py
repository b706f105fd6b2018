"""Key rotation for tokens at rest: re-encrypt every record under the current key.

Rotation: put the new key first in TOKEN_ENCRYPTION_KEYS (keep the old one listed),
restart, run this, then drop the old key. It needs no TikTok client, so a CLI can call it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Final, cast

import redis.asyncio as aioredis

from receiver.keys import TOKEN_PREFIX
from receiver.vault.crypto import TokenCipher, TokenDecryptError
from receiver.vault.errors import CorruptRecord
from receiver.vault.record import as_text, glob_escape, reseal

# Swap the blob only if nobody rewrote it since we read it.
_SWAP_TOKENS: Final = """
if redis.call('HGET', KEYS[1], 'tokens') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'tokens', ARGV[2])
return 1
"""


async def reencrypt_records(redis: aioredis.Redis, cipher: TokenCipher) -> int:
    """Re-encrypt every token record (all apps) not under the current key; returns the count.

    A record rewritten meanwhile (a refresh) already uses the new key and is left alone.
    """
    swap = redis.register_script(_SWAP_TOKENS)
    count = 0
    async for key in redis.scan_iter(match=glob_escape(TOKEN_PREFIX) + "*", count=500):
        key_text = as_text(key)
        # redis-py types hash commands as sync-or-async; this client is async.
        raw = await cast(Awaitable[bytes | str | None], redis.hget(key_text, "tokens"))
        if raw is None:
            continue
        name = key_text[len(TOKEN_PREFIX) :]
        try:
            resealed = reseal(cipher, name, as_text(raw))
        except TokenDecryptError as exc:
            raise CorruptRecord(f"token record {name}: {exc}") from None
        if resealed is not None and await swap(keys=[key_text], args=[as_text(raw), resealed]):
            count += 1
    return count
