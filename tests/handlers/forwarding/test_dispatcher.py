"""The dispatchers: a destination that hangs holds back nothing else; claims are
exclusive, leases of dead workers run out, replays supersede claims in flight."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from arq.constants import in_progress_key_prefix

from handlers.forwarding.admin import enable
from handlers.forwarding.dispatcher import Dispatcher
from handlers.forwarding.forwarder import Forwarder
from handlers.forwarding.store import Created, DeliveryStore
from receiver.settings import load_settings
from tests.factories import CLIENT_KEY, CLIENT_SECRET, delivery
from tests.handlers.forwarding.consumer import Consumer, running
from tests.handlers.forwarding.support import SECRET, forward_settings
from tests.worker_support import TEST_ENCRYPTION_KEY, deliver, drain, wait_for, worker_running

EVENTS = 6
PING = b'{"type":"tiktok.ping","timestamp":"2026-12-02T00:00:00Z","data":{}}'


async def create(store: DeliveryStore, *ids: str) -> list[Created]:
    """Deliveries of one ping to the destination `default`, as the handler creates them."""
    items = [(delivery, "default") for delivery in ids]
    return await store.create(items, body=PING, event="tiktok.ping", client_key="c")


async def test_a_hanging_destination_holds_back_nothing_else(
    redis_url: str, tmp_path: Path
) -> None:
    gate = threading.Event()
    hanging, healthy = Consumer(SECRET, gate=gate), Consumer(SECRET)
    with running(hanging) as slow_url, running(healthy) as fast_url:
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
[[forward]]
name = "hanging"
url = "{slow_url}"
secrets = ["{SECRET}"]
concurrency = 2
timeout_seconds = 60

[[forward]]
name = "healthy"
url = "{fast_url}"
secrets = ["{SECRET}"]
"""
        )
        settings = load_settings(
            {
                "TIKTOK_CLIENT_KEY": CLIENT_KEY,
                "TIKTOK_CLIENT_SECRET": CLIENT_SECRET,
                "REDIS_URL": redis_url,
                "TOKEN_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
                "TIKTOK_WEBHOOKS_ENV": "development",
                "WORKER_POLL_DELAY_SECONDS": "0.01",
            },
            config,
        )
        try:
            async with worker_running(settings):
                await deliver(
                    settings,
                    [delivery("tiktok.ping", {"reason": f"r{n}"}) for n in range(EVENTS)],
                )
                await wait_for("the healthy destination", lambda: len(healthy.handled) == EVENTS)
                # Meanwhile the hanging one has answered nothing, and holds at most its
                # concurrency in requests.
                assert hanging.handled == {}
                assert hanging.arrived <= 2
                gate.set()
                await wait_for("the hanging destination", lambda: len(hanging.handled) == EVENTS)
        finally:
            gate.set()
    assert healthy.handled_twice == []
    assert hanging.handled_twice == []


async def test_a_claim_whose_worker_died_is_sent_again_and_its_late_result_ignored(
    redis_url: str, redis_client: object
) -> None:
    consumer = Consumer(SECRET)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url)
        store = DeliveryStore(redis_client)  # type: ignore[arg-type]
        delivery_id = "msg_lost"
        assert await create(store, delivery_id) == ["due"]
        # Another worker claims it, then dies mid-send: its lease (short here) runs out.
        [lost] = await store.claim("default", limit=10, lease_seconds=0.05)
        assert lost.id == delivery_id
        assert await store.claim("default", limit=10, lease_seconds=60) == []  # exclusive
        await asyncio.sleep(0.1)
        await drain(settings)
        assert list(consumer.handled) == [delivery_id]
        # The dead worker's result, arriving late, changes nothing.
        assert not await store.finish(lost, attempt=None, state="dead", note="late")
        record = await store.get(delivery_id)
        assert record is not None
        assert (record.state, record.attempts) == ("succeeded", 1)


async def test_a_replay_supersedes_a_claim_in_flight(redis_client: object) -> None:
    store = DeliveryStore(redis_client)  # type: ignore[arg-type]
    assert await create(store, "msg_1") == ["due"]
    [claim] = await store.claim("default", limit=5, lease_seconds=60)
    assert (claim.body, claim.tries) == (PING, 0)
    assert await store.requeue("msg_1", only_unfinished=True)
    assert not await store.finish(claim, attempt=None, state="dead")
    [again] = await store.claim("default", limit=5, lease_seconds=60)
    assert again.token != claim.token
    assert await store.finish(again, attempt=None, state="pending", delay=30)
    assert await store.claim("default", limit=5, lease_seconds=60) == []  # due in 30 s
    record = await store.get("msg_1")
    assert record is not None
    assert record.state == "pending"
    assert record.next_attempt_at is not None


async def test_two_workers_share_a_destination_and_send_each_event_once(
    redis_url: str, redis_client: object
) -> None:
    consumer = Consumer(SECRET)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url)
        await deliver(settings, [delivery("tiktok.ping", {"reason": f"r{n}"}) for n in range(40)])
        async with worker_running(settings), worker_running(settings):
            await wait_for("every event", lambda: len(consumer.handled) == 40)
            await asyncio.sleep(0.2)  # time for a duplicate to show
    assert len(consumer.received) == 40
    assert consumer.handled_twice == []
    # Every result was written: all succeeded, nothing left scheduled or claimed.
    store = DeliveryStore(redis_client)  # type: ignore[arg-type]
    found = [await store.get(i) for i in consumer.handled]
    assert {d.state for d in found if d is not None} == {"succeeded"}
    assert len([d for d in found if d is not None and d.attempts == 1]) == 40
    assert await store.due_soon("default", within_seconds=3600) == 0


async def test_releasing_held_deliveries_skips_records_gone_meanwhile(
    redis_client: object,
) -> None:
    store = DeliveryStore(redis_client)  # type: ignore[arg-type]
    assert await store.disable("default", "by hand")
    assert await create(store, "msg_0", "msg_1", "msg_2") == ["held"] * 3
    assert await store.enable("default")
    await redis_client.delete("tiktok:fwd:d:msg_1")  # type: ignore[attr-defined]
    seen: list[tuple[int, int]] = []
    assert await store.release_held("default", lambda done, left: seen.append((done, left))) == 2
    assert seen == [(2, 0)]
    assert (await store.counts("default"))["held"] == 0
    claimed = await store.claim("default", limit=10, lease_seconds=60)
    assert sorted(c.id for c in claimed) == ["msg_0", "msg_2"]


async def test_the_disabled_flag_is_read_where_deliveries_are_written(
    redis_client: object,
) -> None:
    """`enable` clears the flag, then releases what is held: a worker that still thinks
    the destination disabled cannot hold a delivery after that."""
    store = DeliveryStore(redis_client)  # type: ignore[arg-type]
    assert await create(store, "msg_a") == ["due"]
    [claim] = await store.claim("default", limit=5, lease_seconds=60)
    # The worker saw the destination disabled (its cache), but it was enabled since.
    assert await store.finish(claim, attempt=None, state="held", note="destination disabled")
    record = await store.get("msg_a")
    assert record is not None
    assert (record.state, record.note) == ("pending", "")
    assert [c.id for c in await store.claim("default", limit=5, lease_seconds=60)] == ["msg_a"]
    # Disabled for real: held, and released by enable.
    assert await store.disable("default", "by hand")
    assert await create(store, "msg_b") == ["held"]
    assert await enable(store, "default") == (True, 1)
    assert [c.id for c in await store.claim("default", limit=5, lease_seconds=60)] == ["msg_b"]


async def test_pending_deliveries_nothing_schedules_are_scheduled_at_start(
    redis_url: str, redis_client: object
) -> None:
    consumer = Consumer(SECRET)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url)
        store = DeliveryStore(redis_client)  # type: ignore[arg-type]
        assert await create(store, "msg_old0", "msg_old1", "msg_old2") == ["due"] * 3
        # As an earlier version left them: pending, but in no schedule of ours.
        await redis_client.delete("tiktok:fwd:due:default")  # type: ignore[attr-defined]
        assert await store.due_soon("default", within_seconds=3600) == 0
        await drain(settings)
    assert sorted(consumer.handled) == ["msg_old0", "msg_old1", "msg_old2"]


async def test_the_main_queue_backlog_goes_first(redis_url: str, redis_client: object) -> None:
    settings = forward_settings(redis_url, "http://127.0.0.1:9/hook")
    forwarder = Forwarder(settings, redis_client)  # type: ignore[arg-type]
    [dest] = settings.forward_destinations
    dispatcher = Dispatcher(forwarder, dest, poll_delay=0.0, main_queue="bench:queue")
    try:
        assert not await dispatcher.main_has_backlog()  # empty
        now_ms = int(time.time() * 1000)
        await redis_client.zadd("bench:queue", {"job-1": now_ms, "job-2": now_ms})  # type: ignore[attr-defined]
        assert await dispatcher.main_has_backlog()
        # Both started by some worker (maybe another process): no backlog.
        for job in ("job-1", "job-2"):
            await redis_client.set(f"{in_progress_key_prefix}{job}", b"1")  # type: ignore[attr-defined]
        assert not await dispatcher.main_has_backlog()
        # A job due later is no backlog either.
        await redis_client.zadd("bench:queue", {"job-3": now_ms + 60_000})  # type: ignore[attr-defined]
        assert not await dispatcher.main_has_backlog()
    finally:
        await forwarder.aclose()


async def test_a_claim_under_way_when_the_dispatcher_stops_is_sent_before_stop_returns(
    redis_url: str, redis_client: object
) -> None:
    consumer = Consumer(SECRET)
    with running(consumer) as url:
        settings = forward_settings(redis_url, url)
        forwarder = Forwarder(settings, redis_client)  # type: ignore[arg-type]
        [dest] = settings.forward_destinations
        dispatcher = Dispatcher(forwarder, dest, poll_delay=60.0, main_queue=None)
        store = forwarder.store
        try:
            dispatcher.start()
            await asyncio.sleep(0.2)  # reconciled, then waiting for work
            assert await create(store, "msg_s0", "msg_s1") == ["due", "due"]
            # Redis holds writes back for a while: the claim the wake-up starts is under
            # way when stop() is called.
            await redis_client.execute_command("CLIENT", "PAUSE", "400", "WRITE")  # type: ignore[attr-defined]
            dispatcher.wake()
            await asyncio.sleep(0.1)
            await dispatcher.stop(wait_seconds=10)
            assert sorted(consumer.handled) == ["msg_s0", "msg_s1"]
            for delivery_id in ("msg_s0", "msg_s1"):
                record = await store.get(delivery_id)
                assert record is not None
                assert record.state == "succeeded"
        finally:
            await forwarder.aclose()
