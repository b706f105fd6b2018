"""The recent-delivery index the operator console reads: bounded, written after the answer.

On while ``CONSOLE_ENABLED`` is set. For every verified delivery the endpoint calls
`RecentIndex.record` with the raw body, the outcome it answered with (``accepted``,
``duplicate``, ``malformed``, ``unavailable``) and the arrival time. Like capture
(`receiver.ingest.capture`, whose buffer this reuses) the call only appends to memory; a
few milliseconds later, after the answer went out, one Lua call per batch writes:

- the stream ``tiktok:console:recent`` (`keys.RECENT_STREAM`), one entry per delivery with
  ``body``, ``outcome`` and ``received_at`` (ms), trimmed on every write to
  ``CONSOLE_RECENT_MAX_ENTRIES`` entries and ``CONSOLE_RECENT_MAX_AGE_SECONDS``;
- one small hash per minute, ``tiktok:console:minute:<minute>`` (`keys.RECENT_MINUTE_PREFIX`),
  counting deliveries by outcome for the overview's chart; each expires after two hours.

Nothing else is stored: no signature, no header. A write Redis refuses is dropped and
counted as ``failed`` in ``tiktok_console_recent_deliveries_total``; a delivery is never
failed or delayed by it.
"""

from __future__ import annotations

from typing import Any, Final

import redis.asyncio as aioredis
from prometheus_client import Counter

from receiver import keys
from receiver.ingest.capture import APPROXIMATE_FROM, Capture, CaptureConfig

MINUTE_TTL_SECONDS: Final = 2 * 3600

RECENT_WRITES = Counter(
    "tiktok_console_recent_deliveries_total",
    "Verified deliveries written to the console's recent-delivery index (ok) or dropped "
    "(failed: Redis refused or was unreachable, or the buffer was full). Never fails a "
    "delivery.",
    ["outcome"],
)

# KEYS[1] the stream, KEYS[2] the per-minute hash prefix. ARGV[1] MAXLEN, ARGV[2] the trim
# operator, ARGV[3] MINID, ARGV[4] the minute hashes' TTL; then per entry body, outcome,
# received_at (ms). Returns how many entries were added.
RECENT_SCRIPT: Final = """
local n = 0
for i = 5, #ARGV, 3 do
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], ARGV[1], '*',
             'body', ARGV[i], 'outcome', ARGV[i + 1], 'received_at', ARGV[i + 2])
  local minute = KEYS[2] .. math.floor(tonumber(ARGV[i + 2]) / 60000)
  redis.call('HINCRBY', minute, ARGV[i + 1], 1)
  redis.call('EXPIRE', minute, ARGV[4])
  n = n + 1
end
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[2], ARGV[3])
return n
"""

_OUTCOMES: Final = {
    name: name.encode() for name in ("accepted", "duplicate", "malformed", "unavailable")
}


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class RecentIndex(Capture):
    """Capture's buffer and batching, with this index's fields, trims and counters."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_entries: int,
        max_age_seconds: int,
        stream: str = keys.RECENT_STREAM,
        minute_prefix: str = keys.RECENT_MINUTE_PREFIX,
    ) -> None:
        config = CaptureConfig(
            enabled=True, max_entries=max_entries, max_age_seconds=max_age_seconds
        )
        super().__init__(
            redis,
            config,
            stream=stream,
            name="recent-delivery index",
            counter=RECENT_WRITES,
            counter_name="tiktok_console_recent_deliveries_total",
        )
        self._recent_head = (
            _bulk(b"EVAL")
            + _bulk(RECENT_SCRIPT.encode())
            + _bulk(b"2")
            + _bulk(stream.encode())
            + _bulk(minute_prefix.encode())
            + _bulk(str(max_entries).encode())
            + _bulk(b"~" if max_entries >= APPROXIMATE_FROM else b"=")
        )
        self._ttl = _bulk(str(MINUTE_TTL_SECONDS).encode())

    def note(self, body: bytes, outcome: str, received_at: float) -> None:
        """The endpoint's hook: buffer one verified delivery and its outcome."""
        self.record(body, _OUTCOMES.get(outcome) or outcome.encode(), received_at)

    async def _roundtrip(self, chunk: list[tuple[bytes, bytes | None, float]]) -> Any:
        min_id = max(0, int(self._clock() * 1000) - self._max_age_ms)
        parts = [b"*%d\r\n" % (9 + 3 * len(chunk)), self._recent_head]
        parts += (_bulk(b"%d" % min_id), self._ttl)
        for body, outcome, received_at in chunk:
            parts += (
                _bulk(body),
                _bulk(outcome or b""),
                _bulk(b"%d" % int(received_at * 1000)),
            )
        connection = await self._pool.get_connection()
        try:
            await connection.send_packed_command(b"".join(parts), check_health=False)
            return await connection.read_response()
        finally:
            await self._pool.release(connection)
