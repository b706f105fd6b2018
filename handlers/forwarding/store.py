"""Deliveries to destinations in Redis: one record per (event, destination), every attempt.

A delivery is created once per TikTok event and matching destination (its id is the
`webhook-id`, derived from the event's dedupe key and the destination, so a retried job
creates nothing twice) together with its first arq job, in one script call. A delivery
is `pending` (a job will send it), `succeeded`, `dead` (the last try failed) or `held`
(its destination is disabled). Every change of state and the job that follows it are
written by one script, which first checks that the job reporting is the delivery's
current one: a replay supersedes a scheduled retry, and the retry then does nothing.

Keys (all under `tiktok:fwd:`): `d:<id>` the record (hash), `a:<id>` its attempts (list
of JSON), `all` every delivery by creation time, and per destination `pending:`,
`dead:`, `held:` (sorted sets by creation time) and `dest:` (disabled, failing since).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Awaitable, Sequence
from typing import Any, Final, Literal, cast

import msgspec
import redis.asyncio as aioredis

from receiver.ingest.jobs import encode_job
from receiver.keys import ARQ_JOB_PREFIX, FORWARD_PREFIX

FORWARD_DELIVERY: Final = "forward_delivery"  # the arq job function
State = Literal["pending", "succeeded", "dead", "held"]
STATES: Final[tuple[State, ...]] = ("pending", "succeeded", "dead", "held")
ATTEMPTS_KEPT: Final = 50
SUCCEEDED_KEPT_SECONDS: Final = 7 * 24 * 3600
RESPONSE_KEPT_CHARS: Final = 1024

ALL_INDEX: Final = FORWARD_PREFIX + "all"


def record_key(delivery_id: str) -> str:
    return f"{FORWARD_PREFIX}d:{delivery_id}"


def attempts_key(delivery_id: str) -> str:
    return f"{FORWARD_PREFIX}a:{delivery_id}"


def state_index(state: str, destination: str) -> str:
    return f"{FORWARD_PREFIX}{state}:{destination}"


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


_attempt_encoder: Final = msgspec.json.Encoder()
_attempt_decoder: Final = msgspec.json.Decoder(Attempt)

# One call for the events of concurrent jobs (coalesced per event-loop turn): for each
# event, read what the built-in handlers stored (the status record, the profile) and
# splice it into the body, then create each destination's delivery and its first job.
# The body built in Python ends with the `data` object and the outer object ("}}"): the
# stored JSON documents go in just before. Neither holds a numeric id (status records
# keep ids as text; profiles have none), so no id loses its digits.
# KEYS[1]: the listing index; then per event: status key, profile key, fetched publish
# status key, video key ('' for none of each), and per delivery: record, state index, job
# key, its destination's queue.
# ARGV[1..4]: index horizon s, now, job ttl ms, score ms; then per event: body, event,
# client_key, deliveries; and per delivery: id, destination, state, job id, payload, note.
_CREATE: Final = """
local now = ARGV[2]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(now) - tonumber(ARGV[1]))
local out = {}
local k, a = 2, 5
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
    local rec, index, jobkey, queue = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
    local id, state, job = ARGV[a], ARGV[a + 2], ARGV[a + 3]
    if redis.call('EXISTS', rec) == 1 then
      out[#out + 1] = 0
    else
      redis.call('HSET', rec, 'id', id, 'created_at', now, 'destination', ARGV[a + 1],
        'event', event, 'client_key', client, 'body', body, 'state', state, 'job', job,
        'jobs', 1, 'attempts', 0, 'base', 0, 'next_at', now, 'note', ARGV[a + 5])
      redis.call('ZADD', KEYS[1], now, id)
      redis.call('ZADD', index, now, id)
      if state == 'pending' then
        redis.call('SET', jobkey, ARGV[a + 4], 'PX', ARGV[3])
        redis.call('ZADD', queue, ARGV[4], job)
      end
      out[#out + 1] = 1
    end
    k = k + 4
    a = a + 6
  end
end
return out
"""
MAX_EVENTS_PER_CREATE: Final = 100

# KEYS: record, attempts, pending, dead, held, next job key, queue.
# ARGV: current job id, attempt JSON or '', new state, next_at, next job id, next job
# payload, job ttl ms, score ms, attempts kept, succeeded ttl s, note.
_FINISH: Final = """
if redis.call('HGET', KEYS[1], 'job') ~= ARGV[1] then return 0 end
local id = redis.call('HGET', KEYS[1], 'id')
local created = redis.call('HGET', KEYS[1], 'created_at')
if ARGV[2] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[9]), -1)
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'next_at', ARGV[4], 'note', ARGV[11])
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
if ARGV[3] == 'pending' then
  redis.call('ZADD', KEYS[3], created, id)
  redis.call('SET', KEYS[6], ARGV[6], 'PX', ARGV[7])
  redis.call('ZADD', KEYS[7], ARGV[8], ARGV[5])
  redis.call('HSET', KEYS[1], 'job', ARGV[5])
  redis.call('HINCRBY', KEYS[1], 'jobs', 1)
else
  redis.call('HSET', KEYS[1], 'job', '')
  if ARGV[3] == 'dead' then redis.call('ZADD', KEYS[4], created, id) end
  if ARGV[3] == 'held' then redis.call('ZADD', KEYS[5], created, id) end
  if ARGV[3] == 'succeeded' then
    redis.call('EXPIRE', KEYS[1], ARGV[10])
    redis.call('EXPIRE', KEYS[2], ARGV[10])
  end
end
return 1
"""

# KEYS: record, attempts, pending, dead, held, job key, queue.
# ARGV: job id, payload, ttl ms, score ms, '1' to leave succeeded deliveries alone, now.
_REQUEUE: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[5] == '1' and redis.call('HGET', KEYS[1], 'state') == 'succeeded' then return 0 end
local id = redis.call('HGET', KEYS[1], 'id')
local created = redis.call('HGET', KEYS[1], 'created_at')
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('ZADD', KEYS[3], created, id)
redis.call('HSET', KEYS[1], 'state', 'pending', 'job', ARGV[1], 'next_at', ARGV[6], 'note', '',
  'base', redis.call('HGET', KEYS[1], 'attempts'))
redis.call('HINCRBY', KEYS[1], 'jobs', 1)
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
redis.call('SET', KEYS[6], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[7], ARGV[4], ARGV[1])
return 1
"""


class Job(msgspec.Struct, frozen=True):
    """What a running job needs of its delivery (one read)."""

    job: str
    state: str
    destination: str
    body: bytes
    jobs: int
    attempts: int  # every attempt so far
    tries: int  # attempts since the delivery was (re)queued


def _text(value: bytes | None) -> str:
    return value.decode() if value is not None else ""


class DeliveryStore:
    def __init__(self, redis: aioredis.Redis, *, queue_name: str, job_expires_seconds: int):
        self._redis = redis
        self._queue_prefix = queue_name + ":forward:"
        self._job_ttl_ms = job_expires_seconds * 1000
        self._create = redis.register_script(_CREATE)
        self._pending_creates: list[tuple[list[str], list[Any], asyncio.Future[list[bool]]]] = []
        self._create_scheduled = False
        self._create_tasks: set[asyncio.Task[None]] = set()
        self._finish = redis.register_script(_FINISH)
        self._requeue = redis.register_script(_REQUEUE)

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

    def queue_of(self, destination: str) -> str:
        """The arq queue of a destination's delivery jobs (its own worker lane)."""
        return self._queue_prefix + destination

    def _job(self, job_id: str, delivery: str, delay: float) -> tuple[bytes, int, int]:
        now_ms = int(time.time() * 1000)
        payload = encode_job(FORWARD_DELIVERY, [delivery], {}, enqueue_time_ms=now_ms)
        delay_ms = int(delay * 1000)
        return payload, self._job_ttl_ms + delay_ms, now_ms + delay_ms

    async def create(
        self,
        items: Sequence[tuple[str, str, bool]],
        *,
        body: bytes,
        event: str,
        client_key: str,
        status_key: str = "",
        profile_key: str = "",
        publish_key: str = "",
        video_key: str = "",
    ) -> list[bool]:
        """Create deliveries `(id, destination, held)` of one event with their first jobs;
        True for each that is new. `body` gets the stored status record, profile, fetched
        publish status and video details (keys of those, or '') spliced in. Returns once
        Redis confirmed the write; the events of jobs running together share one script
        call."""
        if not items:
            return []
        keys: list[str] = [status_key, profile_key, publish_key, video_key]
        args: list[Any] = [body, event, client_key, len(items)]
        for delivery, destination, held in items:
            job_id = f"fwd:{delivery}:1"
            state = "held" if held else "pending"
            keys += [
                record_key(delivery),
                state_index(state, destination),
                ARQ_JOB_PREFIX + job_id,
                self.queue_of(destination),
            ]
            payload = encode_job(
                FORWARD_DELIVERY, [delivery], {}, enqueue_time_ms=int(time.time() * 1000)
            )
            args += [delivery, destination, state, "" if held else job_id, payload,
                     "destination disabled" if held else ""]  # fmt: skip
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        self._pending_creates.append((keys, args, future))
        if not self._create_scheduled:
            self._create_scheduled = True
            loop.call_soon(self._start_creates)
        return await future

    def _start_creates(self) -> None:
        self._create_scheduled = False
        batch, self._pending_creates = self._pending_creates, []
        for start in range(0, len(batch), MAX_EVENTS_PER_CREATE):
            task = asyncio.ensure_future(
                self._create_batch(batch[start : start + MAX_EVENTS_PER_CREATE])
            )
            self._create_tasks.add(task)
            task.add_done_callback(self._create_tasks.discard)

    async def _create_batch(
        self, batch: list[tuple[list[str], list[Any], asyncio.Future[list[bool]]]]
    ) -> None:
        now_ms = int(time.time() * 1000)
        keys: list[str] = [ALL_INDEX]
        args: list[Any] = [SUCCEEDED_KEPT_SECONDS, now_ms / 1000, self._job_ttl_ms, now_ms]
        for group_keys, group_args, _ in batch:
            keys += group_keys
            args += group_args
        try:
            results = [bool(r) for r in await self._create(keys=keys, args=args)]
        except asyncio.CancelledError:
            for _, _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        offset = 0
        for _, group_args, future in batch:
            count = int(group_args[3])
            if not future.done():
                future.set_result(results[offset : offset + count])
            offset += count

    async def load_job(self, delivery: str) -> Job | None:
        raw = await cast(
            Awaitable[list[bytes | None]],
            self._redis.hmget(
                record_key(delivery), ["job", "state", "destination", "body", "jobs", "attempts",
                                       "base"]
            ),
        )  # fmt: skip
        job, state, destination, body, jobs, attempts, base = raw
        if state is None or body is None:
            return None
        return Job(
            job=_text(job),
            state=_text(state),
            destination=_text(destination),
            body=body,
            jobs=int(jobs or 0),
            attempts=int(attempts or 0),
            tries=int(attempts or 0) - int(base or 0),
        )

    async def finish(
        self,
        delivery: str,
        job: Job,
        *,
        attempt: Attempt | None,
        state: State,
        delay: float = 0.0,
        note: str = "",
    ) -> bool:
        """Record an attempt (if any) and the next state; for `pending`, schedule the next
        job `delay` seconds from now. False when another job has taken over."""
        next_job = f"fwd:{delivery}:{job.jobs + 1}"
        payload, ttl, score = self._job(next_job, delivery, delay)
        next_at = time.time() + delay if state == "pending" else ""
        written = await self._finish(
            keys=[
                record_key(delivery),
                attempts_key(delivery),
                state_index("pending", job.destination),
                state_index("dead", job.destination),
                state_index("held", job.destination),
                ARQ_JOB_PREFIX + next_job,
                self.queue_of(job.destination),
            ],
            args=[job.job, b"" if attempt is None else _attempt_encoder.encode(attempt), state,
                  next_at, next_job, payload, ttl, score, ATTEMPTS_KEPT, SUCCEEDED_KEPT_SECONDS,
                  note],
        )  # fmt: skip
        return bool(written)

    async def requeue(self, delivery: str, *, only_unfinished: bool) -> bool:
        """Send a delivery again now, with a fresh retry schedule (replay, retry)."""
        destination = _text(await self._redis.hget(record_key(delivery), "destination"))  # type: ignore[misc]
        if not destination:
            return False
        job_id = f"fwd:{delivery}:r{secrets.token_hex(4)}"
        payload, ttl, score = self._job(job_id, delivery, 0.0)
        written = await self._requeue(
            keys=[
                record_key(delivery),
                attempts_key(delivery),
                state_index("pending", destination),
                state_index("dead", destination),
                state_index("held", destination),
                ARQ_JOB_PREFIX + job_id,
                self.queue_of(destination),
            ],
            args=[job_id, payload, ttl, score, "1" if only_unfinished else "0", time.time()],
        )
        return bool(written)

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
