"""Deliveries to destinations in Redis: one record per (event, destination), every attempt.

A delivery is created once per TikTok event and matching destination (its id is the
`webhook-id`, derived from the event's dedupe key and the destination, so an event job
that runs again creates nothing twice). A delivery is `pending` (waiting for its next
try), `succeeded`, `dead` (the last try failed) or `held` (its destination is disabled).

Sending is scheduled in Redis, not in arq: each destination has a `due:` sorted set
(delivery id by the time of its next try) and a `lease:` sorted set (deliveries a worker
is sending, by the time its lease runs out). A worker's dispatcher for the destination
(handlers/forwarding/dispatcher.py) claims due deliveries in batches with one script
call, which moves them to `lease:` and gives each a fresh claim token; the result of a
try is written by one script that first checks the token, so a replay or a claim after
a lost worker supersedes the old claim and its late result is ignored. A lease that
runs out (its worker died mid-send) makes the delivery due again: at least once, with
the same `webhook-id` for the consumer's dedupe.

Keys (all under `tiktok:fwd:`): `d:<id>` the record (hash), `a:<id>` its attempts (list
of JSON), `all` every delivery by creation time, and per destination `pending:`,
`dead:`, `held:` (sorted sets by creation time), `due:`, `lease:` (above) and `dest:`
(disabled, failing since). The claim script reads the records of the ids it claims
(`d:<id>`, built from the prefix): a single Redis or a sentinel-managed primary, not a
Redis Cluster.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal, cast

import msgspec
import redis.asyncio as aioredis

from handlers.forwarding.batching import Batcher
from receiver.keys import FORWARD_PREFIX

State = Literal["pending", "succeeded", "dead", "held"]
STATES: Final[tuple[State, ...]] = ("pending", "succeeded", "dead", "held")
ATTEMPTS_KEPT: Final = 50
SUCCEEDED_KEPT_SECONDS: Final = 7 * 24 * 3600
RESPONSE_KEPT_CHARS: Final = 1024
MAX_PER_CALL: Final = 100  # events per create call, results per finish call
# Group commits (handlers/forwarding/batching.py): an event job waits up to this long
# for others to share its create call, a finished send for others to share its write.
CREATE_LINGER_SECONDS: Final = 0.005
FINISH_LINGER_SECONDS: Final = 0.002

ALL_INDEX: Final = FORWARD_PREFIX + "all"
RECORD_PREFIX: Final = FORWARD_PREFIX + "d:"


def record_key(delivery_id: str) -> str:
    return RECORD_PREFIX + delivery_id


def attempts_key(delivery_id: str) -> str:
    return f"{FORWARD_PREFIX}a:{delivery_id}"


def state_index(state: str, destination: str) -> str:
    return f"{FORWARD_PREFIX}{state}:{destination}"


def due_key(destination: str) -> str:
    return f"{FORWARD_PREFIX}due:{destination}"


def lease_key(destination: str) -> str:
    return f"{FORWARD_PREFIX}lease:{destination}"


def destination_key(destination: str) -> str:
    return f"{FORWARD_PREFIX}dest:{destination}"


def delivery_id(dedupe_key: str, destination: str) -> str:
    """The `webhook-id`: the same for every try of one event to one destination."""
    digest = hashlib.sha256(f"{dedupe_key}\n{destination}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    at: float
    outcome: str
    status: int | None = None
    latency_ms: float = 0.0
    response: str = ""  # the first RESPONSE_KEPT_CHARS of the answer's body
    error: str | None = None
    next_attempt_at: float | None = None  # None: no further try is scheduled


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    destination: str
    event: str
    client_key: str
    created_at: float
    state: str
    attempts: int
    next_attempt_at: float | None
    note: str = ""


class Claim(msgspec.Struct, frozen=True):
    """A delivery a dispatcher claimed: what one try needs."""

    id: str
    destination: str
    token: str  # the claim's token: its result is written only if it is still current
    body: bytes
    attempts: int  # every attempt so far
    tries: int  # attempts since the delivery was (re)queued


_attempt_encoder: Final = msgspec.json.Encoder()
_attempt_decoder: Final = msgspec.json.Decoder(Attempt)

# One call for the events of concurrent jobs (group commit): for each event, read what
# the built-in handlers stored (the status record, the profile) and splice it into the
# body, then create each destination's delivery: due now, or held when the destination
# is disabled (read here, in the same atomic step, so an `enable` racing with it cannot
# leave a delivery held: enable clears the flag first, then releases what is held).
# The body built in Python ends with the `data` object and the outer object ("}}"): the
# stored JSON documents go in just before. Neither holds a numeric id (status records
# keep ids as text; profiles have none), so no id loses its digits.
# KEYS[1]: the listing index; then per event: status key, profile key, fetched publish
# status key, video key ('' for none of each), and per delivery: record, pending index,
# held index, due set, destination record.
# ARGV[1..3]: index horizon s, now s, now ms; then per event: body, event, client_key,
# deliveries; and per delivery: id, destination.
# Returns per delivery 0 (it existed), 1 (created, due) or 2 (created, held).
_CREATE: Final = """
local now = ARGV[2]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(now) - tonumber(ARGV[1]))
local out = {}
local k, a = 2, 4
while a <= #ARGV do
  local body, event, client, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  a = a + 4
  local extra = ''
  if KEYS[k] ~= '' then
    local status = redis.call('HGET', KEYS[k], 'record')
    if status then extra = extra .. ',"status":' .. status end
  end
  if KEYS[k + 1] ~= '' then
    local profile = redis.call('GET', KEYS[k + 1])
    if profile then extra = extra .. ',"profile":' .. profile end
  end
  if KEYS[k + 2] ~= '' then
    local publish = redis.call('GET', KEYS[k + 2])
    if publish then extra = extra .. ',"publish":' .. publish end
  end
  if KEYS[k + 3] ~= '' then
    local video = redis.call('HGET', KEYS[k + 3], 'details')
    if video then extra = extra .. ',"video":' .. video end
  end
  if extra ~= '' then body = string.sub(body, 1, -3) .. extra .. '}}' end
  k = k + 4
  for _ = 1, n do
    local rec, id = KEYS[k], ARGV[a]
    if redis.call('EXISTS', rec) == 1 then
      out[#out + 1] = 0
    else
      local held = redis.call('HEXISTS', KEYS[k + 4], 'disabled_at') == 1
      local state, note = 'pending', ''
      if held then state, note = 'held', 'destination disabled' end
      redis.call('HSET', rec, 'id', id, 'created_at', now, 'destination', ARGV[a + 1],
        'event', event, 'client_key', client, 'body', body, 'state', state, 'job', '',
        'jobs', 0, 'attempts', 0, 'base', 0, 'next_at', now, 'note', note)
      redis.call('ZADD', KEYS[1], now, id)
      if held then
        redis.call('ZADD', KEYS[k + 2], now, id)
        out[#out + 1] = 2
      else
        redis.call('ZADD', KEYS[k + 1], now, id)
        redis.call('ZADD', KEYS[k + 3], ARGV[3], id)
        out[#out + 1] = 1
      end
    end
    k = k + 5
    a = a + 2
  end
end
return out
"""

# Claim up to ARGV[3] due deliveries of one destination: each leaves `due:` for
# `lease:` (until now + lease) with a new token. Leases that ran out first go back to
# `due:` (their worker is gone). Returns id, token, body, attempts, base per claim.
# KEYS: due, lease. ARGV: now ms, lease ms, limit, record key prefix.
_CLAIM: Final = """
local now = tonumber(ARGV[1])
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[1], now, id)
end
local out = {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local rec = ARGV[4] .. id
  local f = redis.call('HMGET', rec, 'state', 'body', 'attempts', 'base')
  if f[1] == 'pending' and f[2] then
    local token = tostring(redis.call('HINCRBY', rec, 'jobs', 1))
    redis.call('HSET', rec, 'job', token)
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
    out[#out + 1] = id
    out[#out + 1] = token
    out[#out + 1] = f[2]
    out[#out + 1] = f[3] or '0'
    out[#out + 1] = f[4] or '0'
  end
end
return out
"""

# The results of tries (group commit, like creation). Per result:
# KEYS: record, attempts, pending, dead, held, due, lease, destination record.
# ARGV: token, attempt JSON or '', new state, next_at s, due ms, note; then (last three)
# attempts kept, succeeded ttl s, now s. A `held` result for a destination that is no
# longer disabled (enabled meanwhile) makes the delivery due now instead. Returns 1 per
# result written, 0 if superseded.
_FINISH: Final = """
local kept, ttl, now = ARGV[#ARGV - 2], ARGV[#ARGV - 1], ARGV[#ARGV]
local out = {}
local k, a = 1, 1
while a < #ARGV - 2 do
  local rec = KEYS[k]
  if redis.call('HGET', rec, 'job') ~= ARGV[a] then
    out[#out + 1] = 0
  else
    local id = redis.call('HGET', rec, 'id')
    local created = redis.call('HGET', rec, 'created_at')
    local state = ARGV[a + 2]
    local next_at, due, note = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
    if state == 'held' and redis.call('HEXISTS', KEYS[k + 7], 'disabled_at') == 0 then
      state, next_at, due, note = 'pending', now, math.floor(tonumber(now) * 1000), ''
    end
    if ARGV[a + 1] ~= '' then
      redis.call('RPUSH', KEYS[k + 1], ARGV[a + 1])
      redis.call('LTRIM', KEYS[k + 1], -tonumber(kept), -1)
      redis.call('HINCRBY', rec, 'attempts', 1)
    end
    redis.call('HSET', rec, 'state', state, 'next_at', next_at, 'note', note, 'job', '')
    redis.call('ZREM', KEYS[k + 2], id)
    redis.call('ZREM', KEYS[k + 3], id)
    redis.call('ZREM', KEYS[k + 4], id)
    redis.call('ZREM', KEYS[k + 6], id)
    if state == 'pending' then
      redis.call('ZADD', KEYS[k + 2], created, id)
      redis.call('ZADD', KEYS[k + 5], due, id)
    elseif state == 'dead' then
      redis.call('ZADD', KEYS[k + 3], created, id)
    elseif state == 'held' then
      redis.call('ZADD', KEYS[k + 4], created, id)
    elseif state == 'succeeded' then
      redis.call('EXPIRE', rec, ttl)
      redis.call('EXPIRE', KEYS[k + 1], ttl)
    end
    out[#out + 1] = 1
  end
  k = k + 8
  a = a + 6
end
return out
"""

# Send a delivery again now with a fresh retry schedule (replay, retry, enable): any
# claim in flight is superseded.
# KEYS: record, attempts, pending, dead, held, due, lease.
# ARGV: '1' to leave succeeded deliveries alone, now s, now ms.
_REQUEUE: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '1' and redis.call('HGET', KEYS[1], 'state') == 'succeeded' then return 0 end
local id = redis.call('HGET', KEYS[1], 'id')
local created = redis.call('HGET', KEYS[1], 'created_at')
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('ZREM', KEYS[7], id)
redis.call('ZADD', KEYS[3], created, id)
redis.call('ZADD', KEYS[6], ARGV[3], id)
redis.call('HSET', KEYS[1], 'state', 'pending', 'job', '', 'next_at', ARGV[2], 'note', '',
  'base', redis.call('HGET', KEYS[1], 'attempts'))
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
return 1
"""


# Make up to ARGV[3] held deliveries of a destination due now (after it is enabled);
# an index entry whose record expired is dropped. Returns how many were released.
# KEYS: held, pending, due. ARGV: now s, now ms, limit, record key prefix.
_RELEASE: Final = """
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
local released = 0
for i = 1, #ids, 2 do
  local id, created = ids[i], ids[i + 1]
  redis.call('ZREM', KEYS[1], id)
  local rec = ARGV[4] .. id
  if redis.call('HGET', rec, 'state') == 'held' then
    redis.call('HSET', rec, 'state', 'pending', 'job', '', 'next_at', ARGV[1], 'note', '',
      'base', redis.call('HGET', rec, 'attempts'))
    redis.call('ZADD', KEYS[2], created, id)
    redis.call('ZADD', KEYS[3], ARGV[2], id)
    released = released + 1
  end
end
return {released, redis.call('ZCARD', KEYS[1])}
"""
RELEASE_PER_CALL: Final = 500

# Make due every pending delivery of a destination that is neither due nor being sent
# (at its recorded next try): deliveries scheduled by a version that used an arq job per
# try, or by hand. Pages through the pending index by rank. Returns {made due, seen}.
# KEYS: pending, due, lease. ARGV: start rank, count, record key prefix, now ms.
_RECONCILE: Final = """
local ids = redis.call('ZRANGE', KEYS[1], tonumber(ARGV[1]),
  tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1)
local fixed = 0
for _, id in ipairs(ids) do
  if not redis.call('ZSCORE', KEYS[2], id) and not redis.call('ZSCORE', KEYS[3], id) then
    local f = redis.call('HMGET', ARGV[3] .. id, 'state', 'next_at')
    if f[1] == 'pending' then
      local at = tonumber(f[2])
      local due = tonumber(ARGV[4])
      if at then due = math.floor(at * 1000) end
      redis.call('ZADD', KEYS[2], due, id)
      fixed = fixed + 1
    end
  end
end
return {fixed, #ids}
"""
RECONCILE_PER_CALL: Final = 1000


def _text(value: bytes | None) -> str:
    return value.decode() if value is not None else ""


def _keys_of(delivery: str, destination: str) -> list[str]:
    """The keys a state change of `delivery` touches (finish, requeue)."""
    return [
        record_key(delivery),
        attempts_key(delivery),
        state_index("pending", destination),
        state_index("dead", destination),
        state_index("held", destination),
        due_key(destination),
        lease_key(destination),
        destination_key(destination),
    ]


Created = Literal["existed", "due", "held"]
_CREATED: Final[tuple[Created, ...]] = ("existed", "due", "held")


class _NewEvent(msgspec.Struct, frozen=True):
    keys: list[str]
    args: list[Any]
    count: int


class DeliveryStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._create_script = redis.register_script(_CREATE)
        self._claim_script = redis.register_script(_CLAIM)
        self._finish_script = redis.register_script(_FINISH)
        self._requeue_script = redis.register_script(_REQUEUE)
        self._release_script = redis.register_script(_RELEASE)
        self._reconcile_script = redis.register_script(_RECONCILE)
        self._creates: Batcher[_NewEvent, list[Created]] = Batcher(
            self._create_batch, max_batch=MAX_PER_CALL, linger=CREATE_LINGER_SECONDS
        )
        self._finishes: Batcher[tuple[list[str], list[Any]], bool] = Batcher(
            self._finish_batch, max_batch=MAX_PER_CALL, linger=FINISH_LINGER_SECONDS
        )

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

    async def aclose(self) -> None:
        """Write what waits for a group commit (at shutdown)."""
        await self._creates.aclose()
        await self._finishes.aclose()

    async def create(
        self,
        items: Sequence[tuple[str, str]],
        *,
        body: bytes,
        event: str,
        client_key: str,
        status_key: str = "",
        profile_key: str = "",
        publish_key: str = "",
        video_key: str = "",
    ) -> list[Created]:
        """Create deliveries `(id, destination)` of one event: due now, or held when the
        destination is disabled. `body` gets the stored status record, profile, fetched
        publish status and video details (keys of those, or '') spliced in. Returns once
        Redis confirmed the write; the events of jobs running together share one call."""
        if not items:
            return []
        keys: list[str] = [status_key, profile_key, publish_key, video_key]
        args: list[Any] = [body, event, client_key, len(items)]
        for delivery, destination in items:
            keys += [
                record_key(delivery),
                state_index("pending", destination),
                state_index("held", destination),
                due_key(destination),
                destination_key(destination),
            ]
            args += [delivery, destination]
        return await self._creates.submit(_NewEvent(keys, args, len(items)))

    async def _create_batch(self, batch: Sequence[_NewEvent]) -> list[list[Created]]:
        now = time.time()
        keys: list[str] = [ALL_INDEX]
        args: list[Any] = [SUCCEEDED_KEPT_SECONDS, now, int(now * 1000)]
        for new in batch:
            keys += new.keys
            args += new.args
        results = [_CREATED[int(r)] for r in await self._create_script(keys=keys, args=args)]
        out, offset = [], 0
        for new in batch:
            out.append(results[offset : offset + new.count])
            offset += new.count
        if offset != len(results):
            raise RuntimeError(f"create: {len(results)} results for {offset} deliveries")
        return out

    async def claim(self, destination: str, *, limit: int, lease_seconds: float) -> list[Claim]:
        """Up to `limit` due deliveries of `destination`, leased for `lease_seconds`."""
        raw = await self._claim_script(
            keys=[due_key(destination), lease_key(destination)],
            args=[int(time.time() * 1000), int(lease_seconds * 1000), limit, RECORD_PREFIX],
        )
        claims = []
        for i in range(0, len(raw), 5):
            attempts = int(raw[i + 3] or 0)
            claims.append(
                Claim(
                    id=_text(raw[i]),
                    destination=destination,
                    token=_text(raw[i + 1]),
                    body=raw[i + 2],
                    attempts=attempts,
                    tries=attempts - int(raw[i + 4] or 0),
                )
            )
        return claims

    async def finish(
        self,
        claim: Claim,
        *,
        attempt: Attempt | None,
        state: State,
        delay: float = 0.0,
        note: str = "",
    ) -> bool:
        """Record an attempt (if any) and the next state; `pending` makes the delivery due
        `delay` seconds from now. False when the claim was superseded. Results that
        finish together share one script call."""
        now = time.time()
        args = [
            claim.token,
            b"" if attempt is None else _attempt_encoder.encode(attempt),
            state,
            now + delay if state == "pending" else "",
            int((now + delay) * 1000),
            note,
        ]
        return await self._finishes.submit((_keys_of(claim.id, claim.destination), args))

    async def _finish_batch(self, batch: Sequence[tuple[list[str], list[Any]]]) -> list[bool]:
        keys: list[str] = []
        args: list[Any] = []
        for item_keys, item_args in batch:
            keys += item_keys
            args += item_args
        args += [ATTEMPTS_KEPT, SUCCEEDED_KEPT_SECONDS, time.time()]
        results = [bool(r) for r in await self._finish_script(keys=keys, args=args)]
        if len(results) != len(batch):
            raise RuntimeError(f"finish: {len(results)} results for {len(batch)} tries")
        return results

    async def requeue(self, delivery: str, *, only_unfinished: bool) -> bool:
        """Send a delivery again now, with a fresh retry schedule (replay, retry)."""
        destination = _text(await self._redis.hget(record_key(delivery), "destination"))  # type: ignore[misc]
        if not destination:
            return False
        now = time.time()
        written = await self._requeue_script(
            keys=_keys_of(delivery, destination),
            args=["1" if only_unfinished else "0", now, int(now * 1000)],
        )
        return bool(written)

    async def reconcile(self, destination: str) -> int:
        """Make due every pending delivery of `destination` that nothing schedules (see
        _RECONCILE); returns how many. Run by each dispatcher when it starts."""
        fixed, start = 0, 0
        while True:
            made_due, seen = await self._reconcile_script(
                keys=[
                    state_index("pending", destination),
                    due_key(destination),
                    lease_key(destination),
                ],
                args=[start, RECONCILE_PER_CALL, RECORD_PREFIX, int(time.time() * 1000)],
            )
            fixed += int(made_due)
            start += RECONCILE_PER_CALL
            if int(seen) < RECONCILE_PER_CALL:
                return fixed

    async def due_soon(self, destination: str, *, within_seconds: float) -> int:
        """Deliveries of `destination` being sent or due within `within_seconds`."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcount(due_key(destination), "-inf", (time.time() + within_seconds) * 1000)
            pipe.zcard(lease_key(destination))
            due, leased = await pipe.execute()
        return int(due) + int(leased)

    # ------------------------------------------------------------------ reading

    async def get(self, delivery: str) -> Delivery | None:
        raw = await cast(Awaitable[dict[bytes, bytes]], self._redis.hgetall(record_key(delivery)))
        if not raw or b"id" not in raw:
            return None
        fields = {k.decode(): v for k, v in raw.items() if k != b"body"}
        next_at = _text(fields.get("next_at"))
        return Delivery(
            id=_text(fields["id"]),
            destination=_text(fields.get("destination")),
            event=_text(fields.get("event")),
            client_key=_text(fields.get("client_key")),
            created_at=float(fields.get("created_at") or 0),
            state=_text(fields.get("state")),
            attempts=int(fields.get("attempts") or 0),
            next_attempt_at=float(next_at) if next_at and _text(fields["state"]) == "pending"
            else None,
            note=_text(fields.get("note")),
        )  # fmt: skip

    async def body(self, delivery: str) -> bytes | None:
        return cast(bytes | None, await self._redis.hget(record_key(delivery), "body"))  # type: ignore[misc]

    async def attempts(self, delivery: str) -> list[Attempt]:
        raws = await cast(Awaitable[list[bytes]], self._redis.lrange(attempts_key(delivery), 0, -1))
        return [_attempt_decoder.decode(raw) for raw in raws]

    async def ids_between(
        self, since: float, until: float, *, destination: str | None, unfinished: bool
    ) -> list[str]:
        """Delivery ids created in [since, until], oldest first; `unfinished`: only the
        ones not delivered yet (pending, dead, held)."""
        if not unfinished:
            raw = await self._redis.zrangebyscore(ALL_INDEX, since, until)
            ids = [_text(r) for r in raw]
            if destination is None:
                return ids
            found = [await self.get(i) for i in ids]
            return [d.id for d in found if d is not None and d.destination == destination]
        names = [destination] if destination else await self.destinations_seen()
        scored: list[tuple[float, str]] = []
        for name in names:
            for state in ("pending", "dead", "held"):
                rows = await self._redis.zrangebyscore(
                    state_index(state, name), since, until, withscores=True
                )
                scored.extend((score, _text(member)) for member, score in rows)
        return [member for _, member in sorted(scored)]

    async def recent(
        self, *, limit: int, destination: str | None = None, state: str | None = None
    ) -> list[Delivery]:
        """The newest deliveries first, optionally of one destination or state."""
        found: list[Delivery] = []
        start = 0
        batch = max(limit, 100)
        while len(found) < limit:
            raw = await self._redis.zrevrange(ALL_INDEX, start, start + batch - 1)
            if not raw:
                break
            start += batch
            for member in raw:
                record = await self.get(_text(member))
                if record is None:
                    await self._redis.zrem(ALL_INDEX, member)  # expired: drop from the index
                    continue
                if destination is not None and record.destination != destination:
                    continue
                if state is not None and record.state != state:
                    continue
                found.append(record)
                if len(found) >= limit:
                    break
        return found

    async def destinations_seen(self) -> list[str]:
        names: set[str] = set()
        for state in ("pending", "dead", "held"):
            async for key in self._redis.scan_iter(match=state_index(state, "*"), count=500):
                names.add(_text(key).rpartition(":")[2])
        return sorted(names)

    # ------------------------------------------------------------------ destinations

    async def destination_state(self, destination: str) -> dict[str, str]:
        raw = await cast(
            Awaitable[dict[bytes, bytes]], self._redis.hgetall(destination_key(destination))
        )
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def disable(self, destination: str, reason: str) -> bool:
        """Disable `destination`; False if it already was."""
        key = destination_key(destination)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "disabled_at", str(time.time()))
            pipe.hset(key, "disabled_reason", reason[:200])
            first, _ = await pipe.execute()
        return bool(first)

    async def enable(self, destination: str) -> bool:
        """Enable `destination` again; False if it was not disabled."""
        removed = await cast(
            Awaitable[int],
            self._redis.hdel(
                destination_key(destination), "disabled_at", "disabled_reason", "failing_since"
            ),
        )
        return removed > 0

    async def release_held(
        self, destination: str, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Make every held delivery of `destination` due now (after `enable`); returns
        how many. `progress(released so far, still held)` is called after each batch."""
        released = 0
        while True:
            now = time.time()
            moved, left = await self._release_script(
                keys=[
                    state_index("held", destination),
                    state_index("pending", destination),
                    due_key(destination),
                ],
                args=[now, int(now * 1000), RELEASE_PER_CALL, RECORD_PREFIX],
            )
            released += int(moved)
            if progress is not None:
                progress(released, int(left))
            if not int(left):
                return released

    async def note_failure(self, destination: str, *, disable_after: float) -> bool:
        """Remember when the destination started failing; True if it has failed for longer
        than `disable_after` seconds (and is now disabled)."""
        key = destination_key(destination)
        now = time.time()
        await self._redis.hsetnx(key, "failing_since", str(now))  # type: ignore[misc]
        since = await self._redis.hget(key, "failing_since")  # type: ignore[misc]
        if since is not None and now - float(since) >= disable_after:
            hours = (now - float(since)) / 3600
            return await self.disable(destination, f"failing for {hours:.1f} h")
        return False

    async def note_success(self, destination: str) -> None:
        await self._redis.hdel(destination_key(destination), "failing_since")  # type: ignore[misc]

    async def counts(self, destination: str) -> dict[str, Any]:
        """Pending, dead and held counts, the oldest pending creation time, disabled."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(state_index("pending", destination))
            pipe.zrange(state_index("pending", destination), 0, 0, withscores=True)
            pipe.zcard(state_index("dead", destination))
            pipe.zcard(state_index("held", destination))
            pipe.hget(destination_key(destination), "disabled_at")
            pending, oldest, dead, held, disabled = await pipe.execute()
        return {
            "pending": int(pending),
            "oldest_pending_at": float(oldest[0][1]) if oldest else None,
            "dead": int(dead),
            "held": int(held),
            "disabled": disabled is not None,
        }
