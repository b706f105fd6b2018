"""What the console reads, as small functions over Redis: every read is bounded.

Each function takes the Redis client and plain arguments and returns plain structs, so the
pages never touch keys themselves and a new data source (forwarding, publishes) is wired
by adding one function here. Limits: the recent-delivery index is bounded by its own
settings; dead letters are read newest first, at most `DEAD_LETTER_WINDOW`; users are read
one SCAN page at a time; status records are looked at up to `STATUS_SCAN_LIMIT` keys;
forward deliveries newest first, at most `FORWARD_PAGE`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis

from handlers.deadletter import DeadLetter
from handlers.forwarding import admin
from handlers.forwarding.store import ALL_INDEX as FORWARD_INDEX
from handlers.forwarding.store import Attempt, DeliveryStore
from handlers.forwarding.store import Delivery as FwdDelivery
from receiver import fetched, keys, users
from receiver.ingest.events import MalformedEvent, decode_envelope
from receiver.settings import Settings
from receiver.status_store import StatusRecord
from receiver.vault.record import TokenStatus, as_text, glob_escape, parse_record

CHART_MINUTES: Final = 60
OUTCOMES: Final = ("accepted", "duplicate", "malformed", "unavailable")
DELIVERY_PAGE: Final = 50
DELIVERY_SCAN_BATCH: Final = 250
DEAD_LETTER_WINDOW: Final = 1000
USER_PAGE: Final = 50
USER_COUNT_LIMIT: Final = 10_000
STATUS_SCAN_LIMIT: Final = 5000
FORWARD_PAGE: Final = 50
FORWARD_SCAN_LIMIT: Final = 1000
USER_FETCHED_LIMIT: Final = 200


# -- overview ------------------------------------------------------------------------------


class MinuteCounts(msgspec.Struct, frozen=True):
    minute: int  # minutes since the epoch
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def deliveries_per_minute(
    redis: aioredis.Redis, *, now: float | None = None, minutes: int = CHART_MINUTES
) -> list[MinuteCounts]:
    """Deliveries by outcome for each of the last `minutes` minutes, oldest first."""
    current = int((now or time.time()) // 60)
    wanted = list(range(current - minutes + 1, current + 1))
    async with redis.pipeline(transaction=False) as pipe:
        for minute in wanted:
            pipe.hgetall(f"{keys.RECENT_MINUTE_PREFIX}{minute}")
        replies = await pipe.execute()
    result = []
    for minute, reply in zip(wanted, replies, strict=True):
        counts = {as_text(k): int(v) for k, v in cast(Mapping[Any, Any], reply).items()}
        result.append(MinuteCounts(minute, counts))
    return result


class QueueState(msgspec.Struct, frozen=True):
    depth: int
    oldest_ready_age_seconds: float
    dead_letters: int
    worker_heartbeat: str | None  # arq's health-check line; None when no worker reported


async def queue_state(redis: aioredis.Redis, queue_name: str) -> QueueState:
    now_ms = time.time() * 1000
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(queue_name)
        pipe.zrangebyscore(queue_name, "-inf", now_ms, start=0, num=1, withscores=True)
        pipe.zcard(keys.DEAD_LETTER_INDEX)
        pipe.get(f"{queue_name}:health-check")
        depth, oldest, dead, heartbeat = await pipe.execute()
    age = max(0.0, (now_ms - oldest[0][1]) / 1000) if oldest else 0.0
    return QueueState(
        depth=int(depth),
        oldest_ready_age_seconds=age,
        dead_letters=int(dead),
        worker_heartbeat=None if heartbeat is None else as_text(heartbeat),
    )


# -- deliveries ----------------------------------------------------------------------------


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # the stream entry id
    received_at: float
    outcome: str
    event: str
    client_key: str
    user_openid: str | None
    create_time: int | None
    body: bytes

    @property
    def duplicate(self) -> bool:
        return self.outcome == "duplicate"


class DeliveryFilter(msgspec.Struct, frozen=True):
    event: str = ""
    user: str = ""
    app: str = ""

    def matches(self, delivery: Delivery) -> bool:
        return (
            (not self.event or delivery.event == self.event)
            and (not self.user or delivery.user_openid == self.user)
            and (not self.app or delivery.client_key == self.app)
        )

    @property
    def active(self) -> bool:
        return bool(self.event or self.user or self.app)


def _delivery(entry_id: bytes | str, fields: Mapping[Any, Any]) -> Delivery:
    values = {as_text(k): v for k, v in fields.items()}
    body = values.get("body", b"")
    body = body if isinstance(body, bytes) else str(body).encode()
    try:
        envelope = decode_envelope(body)
        event, client_key = envelope.event, envelope.client_key
        user, created = envelope.user_openid, envelope.create_time
    except MalformedEvent:
        event, client_key, user, created = "(unreadable)", "", None, None
    received = values.get("received_at", b"0")
    return Delivery(
        id=as_text(entry_id),
        received_at=int(as_text(received) or "0") / 1000,
        outcome=as_text(values.get("outcome", b"")),
        event=event,
        client_key=client_key,
        user_openid=user,
        create_time=created,
        body=body,
    )


async def recent_deliveries(
    redis: aioredis.Redis,
    filters: DeliveryFilter,
    *,
    before: str | None = None,
    limit: int = DELIVERY_PAGE,
) -> tuple[list[Delivery], str | None]:
    """Newest first, matching `filters`, older than entry `before`; and the next cursor.

    Reads the bounded index in batches, so a filter that matches nothing reads the index
    once and stops.
    """
    found: list[Delivery] = []
    high: str = "(" + before if before else "+"
    while len(found) < limit:
        entries = await redis.xrevrange(
            keys.RECENT_STREAM, max=high, min="-", count=DELIVERY_SCAN_BATCH
        )
        for entry_id, fields in entries:
            delivery = _delivery(entry_id, fields)
            if filters.matches(delivery):
                found.append(delivery)
                if len(found) == limit:
                    break
        if len(entries) < DELIVERY_SCAN_BATCH:
            return found, None
        if len(found) < limit:
            high = "(" + as_text(entries[-1][0])
    return found, found[-1].id


async def delivery(redis: aioredis.Redis, entry_id: str) -> Delivery | None:
    if not _is_stream_id(entry_id):
        return None
    entries = await redis.xrange(keys.RECENT_STREAM, min=entry_id, max=entry_id, count=1)
    return _delivery(*entries[0]) if entries else None


def _is_stream_id(text: str) -> bool:
    ms, dash, seq = text.partition("-")
    return bool(dash) and ms.isdigit() and seq.isdigit() and len(text) < 48


def decoded_content(body: bytes) -> Any:
    """The envelope with its `content` string decoded, for display; None if unreadable."""
    try:
        envelope = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if isinstance(envelope, dict) and isinstance(envelope.get("content"), str):
        with contextlib.suppress(msgspec.DecodeError):
            envelope["content"] = msgspec.json.decode(envelope["content"])
    return envelope


# -- users ---------------------------------------------------------------------------------


class UserRow(msgspec.Struct, frozen=True, kw_only=True):
    client_key: str
    open_id: str
    status: str  # active, expiring, needs_reauth, revoked, corrupt
    scopes: tuple[str, ...] = ()
    expires_at: float | None = None
    refresh_expires_at: float | None = None
    updated_at: float | None = None


def token_state(
    client_key: str, open_id: str, fields: Mapping[str, str], *, warn_before: float, now: float
) -> UserRow:
    """One user's token status as the console names it (never the tokens)."""
    try:
        record = parse_record(client_key, open_id, fields)
    except (KeyError, ValueError):
        return UserRow(client_key=client_key, open_id=open_id, status="corrupt")
    status = record.status.value
    if record.status is TokenStatus.ACTIVE and "tokens" not in fields:
        status = "corrupt"
    elif record.status is TokenStatus.ACTIVE and record.refresh_expires_at - now < warn_before:
        status = "expiring"
    return UserRow(
        client_key=client_key,
        open_id=open_id,
        status=status,
        scopes=record.scopes,
        expires_at=record.expires_at,
        refresh_expires_at=record.refresh_expires_at,
        updated_at=record.updated_at,
    )


async def _read_users(
    redis: aioredis.Redis, names: list[str], *, warn_before: float
) -> list[UserRow]:
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.TOKEN_PREFIX + name)
        replies = await pipe.execute()
    now = time.time()
    rows = []
    for name, reply in zip(names, replies, strict=True):
        if not reply:
            continue  # deleted meanwhile
        client_key, _, open_id = name.partition(":")
        fields = {as_text(k): as_text(v) for k, v in reply.items()}
        rows.append(token_state(client_key, open_id, fields, warn_before=warn_before, now=now))
    return rows


async def users_page(
    redis: aioredis.Redis,
    client_key: str,
    *,
    cursor: int = 0,
    warn_before: float,
    limit: int = USER_PAGE,
) -> tuple[list[UserRow], int]:
    """About `limit` users of one app from SCAN position `cursor`; the next cursor (0: done)."""
    prefix = keys.TOKEN_PREFIX + client_key + ":"
    names: list[str] = []
    while True:
        cursor, found = await redis.scan(
            cursor, match=glob_escape(prefix) + "*", count=max(100, limit * 4)
        )
        names += [as_text(k)[len(keys.TOKEN_PREFIX) :] for k in found]
        if cursor == 0 or len(names) >= limit:
            break
    rows = await _read_users(redis, names, warn_before=warn_before)
    return sorted(rows, key=lambda r: r.open_id), int(cursor)


async def users_by_status(
    redis: aioredis.Redis, *, warn_before: float, limit: int = USER_COUNT_LIMIT
) -> tuple[dict[str, int], bool]:
    """Counts per token status over at most `limit` users; True if the limit cut it short."""
    counts: dict[str, int] = {}
    seen = 0
    cursor = 0
    while True:
        cursor, found = await redis.scan(
            cursor, match=glob_escape(keys.TOKEN_PREFIX) + "*", count=500
        )
        names = [as_text(k)[len(keys.TOKEN_PREFIX) :] for k in found]
        for row in await _read_users(redis, names, warn_before=warn_before):
            counts[row.status] = counts.get(row.status, 0) + 1
        seen += len(names)
        if cursor == 0:
            return counts, False
        if seen >= limit:
            return counts, True


async def user_statuses(
    redis: aioredis.Redis, client_key: str, open_id: str, *, limit: int = STATUS_SCAN_LIMIT
) -> tuple[list[StatusRecord], bool]:
    """Shares, publishes and data downloads TikTok reported for this user (status_store).

    The records are not indexed by user, so this looks at up to `limit` of them; True if
    there were more.
    """
    decoder = msgspec.json.Decoder(StatusRecord)
    found: list[StatusRecord] = []
    seen = 0
    cursor = 0
    while True:
        cursor, batch = await redis.scan(
            cursor, match=glob_escape(keys.STATUS_PREFIX) + "*", count=500
        )
        async with redis.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.hget(key, "record")
            raws = await pipe.execute()
        for raw in raws:
            if raw is None:
                continue
            try:
                record = decoder.decode(raw)
            except msgspec.DecodeError:
                continue
            if record.client_key == client_key and record.user_openid == open_id:
                found.append(record)
        seen += len(batch)
        if cursor == 0 or seen >= limit:
            found.sort(key=lambda r: r.updated_at, reverse=True)
            return found, cursor != 0


async def profile(redis: aioredis.Redis, client_key: str, open_id: str) -> users.Profile | None:
    return await users.get_profile(redis, client_key, open_id)


# -- dead letters --------------------------------------------------------------------------

_letter_decoder: Final = msgspec.msgpack.Decoder(DeadLetter)


class LetterFilter(msgspec.Struct, frozen=True):
    event: str = ""
    function: str = ""
    error: str = ""

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (not self.event or letter.event == self.event)
            and (not self.function or letter.function == self.function)
            and (not self.error or letter.error_type == self.error)
        )

    @property
    def active(self) -> bool:
        return bool(self.event or self.function or self.error)


async def dead_letters(
    redis: aioredis.Redis, filters: LetterFilter, *, window: int = DEAD_LETTER_WINDOW
) -> tuple[list[DeadLetter], int]:
    """The newest `window` dead letters that match, newest first; and the list's size."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrevrange(keys.DEAD_LETTER_INDEX, 0, window - 1)
        pipe.zcard(keys.DEAD_LETTER_INDEX)
        ids, size = await pipe.execute()
    if not ids:
        return [], int(size)
    raws = await cast(Awaitable[list[bytes | None]], redis.hmget(keys.DEAD_LETTER_HASH, ids))
    letters = []
    for raw in raws:
        if raw is None:
            continue
        try:
            letter = _letter_decoder.decode(raw)
        except msgspec.DecodeError:
            continue
        if filters.matches(letter):
            letters.append(letter)
    return letters, int(size)


async def dead_letter(redis: aioredis.Redis, letter_id: str) -> DeadLetter | None:
    raw = await cast(Awaitable[bytes | None], redis.hget(keys.DEAD_LETTER_HASH, letter_id))
    if raw is None:
        return None
    try:
        return _letter_decoder.decode(raw)
    except msgspec.DecodeError:
        return None


def letter_body(letter: DeadLetter) -> bytes | None:
    """The delivery a dead-lettered event job carried (its first bytes argument)."""
    for arg in letter.args:
        if isinstance(arg, bytes):
            return arg
    return None


class JobState(msgspec.Struct, frozen=True):
    job_id: str
    state: str  # queued, running, done, failed again


async def job_states(
    redis: aioredis.Redis, job_ids: list[str], queue_name: str
) -> dict[str, JobState]:
    """What became of replayed jobs: still queued or running, dead-lettered again, or done
    (gone from the queue and not in the dead-letter list: arq keeps no results here)."""
    if not job_ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.exists(keys.ARQ_JOB_PREFIX + job_id)
            pipe.exists(f"arq:in-progress:{job_id}")
        flags = await pipe.execute()
    letters, _ = await dead_letters(redis, LetterFilter())
    failed = {letter.job_id for letter in letters}
    states = {}
    for index, job_id in enumerate(job_ids):
        queued, running = flags[2 * index], flags[2 * index + 1]
        if running:
            state = "running"
        elif queued:
            state = "queued"
        elif job_id in failed:
            state = "failed again"
        else:
            state = "done"
        states[job_id] = JobState(job_id, state)
    return states


# -- actions log ---------------------------------------------------------------------------


class ActionRecord(msgspec.Struct, frozen=True, kw_only=True):
    at: float
    who: str
    what: str
    target: str
    result: str
    job_ids: list[str] = []


_action_decoder: Final = msgspec.json.Decoder(ActionRecord)


async def recent_actions(redis: aioredis.Redis, limit: int = 20) -> list[ActionRecord]:
    raws = await cast(Awaitable[list[bytes]], redis.lrange(keys.CONSOLE_ACTIONS_LIST, 0, limit - 1))
    actions = []
    for raw in raws:
        try:
            actions.append(_action_decoder.decode(raw))
        except msgspec.DecodeError:
            continue
    return actions


# -- forwarding ------------------------------------------------------------------------------


class DestinationRow(msgspec.Struct, frozen=True, kw_only=True):
    """A configured forward destination: its state (enabled, failing, disabled) and counts."""

    name: str
    state: str
    events: list[str]
    pending: int
    dead: int
    held: int
    oldest_pending_age_seconds: float | None
    disabled_reason: str | None
    failing_since: float | None


class ForwardDelivery(msgspec.Struct, frozen=True, kw_only=True):
    delivery: FwdDelivery
    attempts: list[Attempt]

    @property
    def last_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


async def forward_destinations(settings: Settings, redis: aioredis.Redis) -> list[DestinationRow]:
    """Every configured destination (a few), as `tiktok-webhooks forward destinations`."""
    rows = []
    for view in await admin.destinations_view(settings, DeliveryStore(redis)):
        if view["disabled"]:
            state = "disabled"
        elif view["failing_since"] is not None:
            state = "failing"
        else:
            state = "enabled"
        rows.append(
            DestinationRow(
                name=view["name"],
                state=state,
                events=view["events"],
                pending=view["pending"],
                dead=view["dead"],
                held=view["held"],
                oldest_pending_age_seconds=view["oldest_pending_age_seconds"],
                disabled_reason=view["disabled_reason"],
                failing_since=view["failing_since"],
            )
        )
    return rows


async def forward_deliveries(
    settings: Settings,
    redis: aioredis.Redis,
    *,
    destination: str | None = None,
    state: str | None = None,
    limit: int = FORWARD_PAGE,
) -> list[ForwardDelivery]:
    """The newest forward deliveries (at most `limit`) with their attempts; with a filter,
    only the newest `FORWARD_SCAN_LIMIT` deliveries are looked at."""
    store = DeliveryStore(redis)
    if destination is None and state is None:
        found = await store.recent(limit=limit)
    else:
        found = []
        for member in await redis.zrevrange(FORWARD_INDEX, 0, FORWARD_SCAN_LIMIT - 1):
            record = await store.get(as_text(member))
            if record is None or destination not in (None, record.destination):
                continue
            if state not in (None, record.state):
                continue
            found.append(record)
            if len(found) >= limit:
                break
    return [ForwardDelivery(delivery=d, attempts=await store.attempts(d.id)) for d in found]


async def forward_delivery(
    settings: Settings, redis: aioredis.Redis, delivery_id: str
) -> ForwardDelivery | None:
    store = DeliveryStore(redis)
    found = await store.get(delivery_id)
    if found is None:
        return None
    return ForwardDelivery(delivery=found, attempts=await store.attempts(delivery_id))


# -- a user's videos and data requests ---------------------------------------------------------


async def user_videos(
    redis: aioredis.Redis, client_key: str, open_id: str
) -> list[fetched.VideoRecord]:
    """The user's known public posts, newest first (at most `USER_FETCHED_LIMIT`)."""
    return (await fetched.list_videos(redis, client_key, open_id))[:USER_FETCHED_LIMIT]


async def user_data_requests(
    redis: aioredis.Redis, client_key: str, open_id: str
) -> list[fetched.DataRequest]:
    """The user's data requests, newest first (at most `USER_FETCHED_LIMIT`)."""
    return (await fetched.list_data_requests(redis, client_key, open_id))[:USER_FETCHED_LIMIT]
