"""Key rotation for tokens at rest: re-encrypt every record under the current key.

Rotation: put the new key first in TOKEN_ENCRYPTION_KEYS (keep the old one listed),
restart, run this, then drop the old key. It needs no TikTok client, so a CLI can call it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Final, cast

import redis.asyncio as aioredis

from receiver.keys import TOKEN_EXPIRY_INDEX, TOKEN_PREFIX
from receiver.vault.crypto import TokenCipher, TokenDecryptError, UnknownKey
from receiver.vault.record import MARK_CORRUPT, as_text, glob_escape, reseal

# Swap the blob only if nobody rewrote it since we read it.
_SWAP_TOKENS: Final = """
if redis.call('HGET', KEYS[1], 'tokens') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'tokens', ARGV[2])
return 1
"""


@dataclass
class Reencryption:
    """What a re-encryption run did: records moved to the current key, and the skipped."""

    reencrypted: int = 0
    # Tampered with or damaged: marked `corrupt` and taken out of the refresh sweep.
    corrupt: list[str] = field(default_factory=list)
    # Sealed with a key that is not configured: left as they are (add the key back).
    unknown_key: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.corrupt and not self.unknown_key


async def reencrypt_records(redis: aioredis.Redis, cipher: TokenCipher) -> Reencryption:
    """Re-encrypt every token record (all apps) not under the current key.

    A record rewritten meanwhile (a refresh) already uses the new key and is left alone.
    A record that cannot be opened does not stop the run: it is skipped and reported.
    """
    swap = redis.register_script(_SWAP_TOKENS)
    mark_corrupt = redis.register_script(MARK_CORRUPT)
    result = Reencryption()
    async for key in redis.scan_iter(match=glob_escape(TOKEN_PREFIX) + "*", count=500):
        key_text = as_text(key)
        # redis-py types hash commands as sync-or-async; this client is async.
        raw = await cast(Awaitable[bytes | str | None], redis.hget(key_text, "tokens"))
        if raw is None:
            continue
        name = key_text[len(TOKEN_PREFIX) :]
        try:
            resealed = reseal(cipher, name, as_text(raw))
        except UnknownKey:
            result.unknown_key.append(name)
            continue
        except TokenDecryptError:
            await mark_corrupt(keys=[key_text, TOKEN_EXPIRY_INDEX], args=[repr(time.time()), name])
            result.corrupt.append(name)
            continue
        if resealed is not None and await swap(keys=[key_text], args=[as_text(raw), resealed]):
            result.reencrypted += 1
    return result
