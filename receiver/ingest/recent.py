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
# operator, ARGV[3] MINID, ARGV[4] the minute hashes' TTL, ARGV[5] how many entries; then
# per entry body, outcome, received_at (ms); then per (minute, outcome) of the batch the
# minute, the outcome and the count. Returns how many entries were added.
RECENT_SCRIPT: Final = """
local last = 5 + 3 * tonumber(ARGV[5])
for i = 6, last, 3 do
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], ARGV[1], '*',
             'body', ARGV[i], 'outcome', ARGV[i + 1], 'received_at', ARGV[i + 2])
end
for i = last + 1, #ARGV, 3 do
  local minute = KEYS[2] .. ARGV[i]
  redis.call('HINCRBY', minute, ARGV[i + 1], ARGV[i + 2])
  redis.call('EXPIRE', minute, ARGV[4])
end
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[2], ARGV[3])
return tonumber(ARGV[5])
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
        parts = [b"", self._recent_head, _bulk(b"%d" % min_id), self._ttl]
        parts.append(_bulk(b"%d" % len(chunk)))
        counts: dict[tuple[int, bytes], int] = {}
        for body, outcome, received_at in chunk:
            ms = int(received_at * 1000)
            parts += (_bulk(body), _bulk(outcome or b""), _bulk(b"%d" % ms))
            key = (ms // 60_000, outcome or b"")
            counts[key] = counts.get(key, 0) + 1
        for (minute, outcome), count in counts.items():
            parts += (_bulk(b"%d" % minute), _bulk(outcome), _bulk(b"%d" % count))
        parts[0] = b"*%d\r\n" % (len(parts) - 2 + 7)
        connection = await self._pool.get_connection()
        try:
            await connection.send_packed_command(b"".join(parts), check_health=False)
            return await connection.read_response()
        finally:
            await self._pool.release(connection)
