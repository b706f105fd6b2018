"""Each destination's dispatcher: claims its due deliveries in batches and sends them.

Every worker process runs one dispatcher per configured destination, next to arq's
worker. A dispatcher keeps at most the destination's `concurrency` sends in flight: it
claims as many due deliveries as it has free slots with one script call
(`DeliveryStore.claim`), sends each in a task of its own and claims again when a send
finishes, when this process created a delivery for it, or every poll interval (for
deliveries made due by another process: a retry, a replay, another worker's event).
Several workers' dispatchers share a destination safely: a claim is exclusive, and
`concurrency` holds per worker process.

A slow or dead destination therefore holds only its own dispatcher's slots: the
built-in handlers and the other destinations never wait for it. The built-in handlers
go first: while the main queue has ready jobs that the main worker has not started yet
(a backlog), dispatchers claim nothing new; they carry on as soon as the main worker
keeps up. Under a sustained backlog forwarding waits (the TikTokForwardBacklog alert
says so) rather than slowing the built-in handlers.

A burst-mode worker (tests, `worker --burst`) waits, before it stops them, for the
deliveries due within BURST_HORIZON_SECONDS; later retries are left for the next worker.
A send cut short at shutdown is not lost: its lease runs out and another claim sends it
again, with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Final

from arq.constants import in_progress_key_prefix

from handlers.forwarding.store import Claim
from receiver.forward_config import ForwardDestination

if TYPE_CHECKING:
    from handlers.forwarding.forwarder import Forwarder

logger = logging.getLogger("tiktok_webhooks.forward")

BURST_HORIZON_SECONDS: Final = 60.0
# A claim's lease: the send's timeout, the rate limiter's longest wait, and a margin.
# Only a worker that died mid-send lets a lease run out.
LEASE_MARGIN_SECONDS: Final = 30.0
RATE_WAIT_SECONDS: Final = 2.0
REDIS_PAUSE_SECONDS: Final = 1.0
# Claimed deliveries per send slot, sending or recording their result: a slot sends the
# next one while Redis records the last (group commits linger a little), and a slow
# Redis cannot pile up more than this.
RECORDING_SLOTS: Final = 3


# Whether the main queue has a ready job that no worker has started (arq keeps running
# jobs in the queue, with an in-progress key): looks at the first ARGV[2] ready jobs.
# KEYS: the main queue. ARGV: now ms, limit, arq's in-progress key prefix.
_BACKLOG: Final = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0,
  tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[3] .. id) == 0 then return 1 end
end
return 0
"""
BACKLOG_LOOKS_AT: Final = 1000


class Dispatcher:
    def __init__(
        self,
        forwarder: Forwarder,
        dest: ForwardDestination,
        *,
        poll_delay: float,
        main_queue: str | None,
    ) -> None:
        """`main_queue`: the arq queue whose backlog goes first (None: never wait)."""
        self._forwarder = forwarder
        self._dest = dest
        self._poll_delay = poll_delay
        self.main_queue = main_queue
        self._backlog_script = forwarder.store.redis.register_script(_BACKLOG)
        self._lease_seconds = dest.timeout_seconds + RATE_WAIT_SECONDS + LEASE_MARGIN_SECONDS
        self._wake = asyncio.Event()
        # Tasks of claimed deliveries (sending, or recording the result), and how many
        # of them are sending: at most `concurrency` requests are in flight.
        self._inflight: set[asyncio.Task[None]] = set()
        self._sending = 0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._backlog = False
        self._backlog_checked = float("-inf")
        self._redis_failing = False

    @property
    def name(self) -> str:
        return self._dest.name

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        self._task.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and not self._stopping:
            logger.error(
                "forward dispatcher %s stopped: %s", self.name, type(task.exception()).__name__
            )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        concurrency = self._dest.concurrency
        # With sends in flight, claim once half the slots are free: one claim for
        # several deliveries instead of one per finished send.
        batch = max(1, concurrency // 2)
        reconciled = False
        while not self._stopping:
            self._wake.clear()
            try:
                if not reconciled:
                    fixed = await self._forwarder.store.reconcile(self.name)
                    if fixed:
                        logger.info(
                            "forward dispatcher %s: %d pending deliveries scheduled again",
                            self.name, fixed,
                        )  # fmt: skip
                    reconciled = True
                free = min(
                    concurrency - self._sending,
                    concurrency * RECORDING_SLOTS - len(self._inflight),
                )
                if (free >= batch or free == concurrency) and not await self.main_has_backlog():
                    claims = await self._forwarder.store.claim(
                        self.name, limit=free, lease_seconds=self._lease_seconds
                    )
                    for claim in claims:
                        self._sending += 1
                        task = asyncio.ensure_future(self._send(claim))
                        self._inflight.add(task)
                        task.add_done_callback(self._inflight.discard)
                self._redis_failing = False
            except Exception as exc:  # Redis unreachable (or a bug): try again after a pause
                if not self._redis_failing:
                    logger.warning(
                        "forward dispatcher %s cannot claim deliveries: %s",
                        self.name, type(exc).__name__,
                    )  # fmt: skip
                self._redis_failing = True
                await asyncio.sleep(max(self._poll_delay, REDIS_PAUSE_SECONDS))
                continue
            timer = loop.call_later(self._poll_delay, self._wake.set)
            await self._wake.wait()
            timer.cancel()

    async def _send(self, claim: Claim) -> None:
        sending = True

        def sent() -> None:
            # The answer is read: the slot takes the next delivery while this one's
            # result is recorded. `deliver` calls this once; the `finally` below covers
            # a task cancelled before it got there.
            nonlocal sending
            if sending:
                sending = False
                self._sending -= 1
                self._wake.set()

        try:
            await self._forwarder.deliver(self._dest, claim, sent)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis lost mid-try: the lease runs out, it is sent again
            logger.warning(
                "forward delivery %s to %s not recorded (%s): it is sent again when its "
                "claim runs out",
                claim.id, self.name, type(exc).__name__,
            )  # fmt: skip
        finally:
            sent()
            self._wake.set()

    async def main_has_backlog(self) -> bool:
        """True while the main queue has ready jobs no worker has started (read from
        Redis at most once per poll interval)."""
        if self.main_queue is None:
            return False
        now = time.monotonic()
        if now - self._backlog_checked >= self._poll_delay:
            self._backlog_checked = now
            waiting = await self._backlog_script(
                keys=[self.main_queue],
                args=[int(time.time() * 1000), BACKLOG_LOOKS_AT, in_progress_key_prefix],
            )
            self._backlog = bool(waiting)
        return self._backlog

    async def idle(self) -> bool:
        """Nothing in flight here, and nothing of this destination due within the burst
        horizon or being sent by anyone."""
        if self._inflight:
            return False
        due = await self._forwarder.store.due_soon(self.name, within_seconds=BURST_HORIZON_SECONDS)
        return due == 0

    async def stop(self, *, wait_seconds: float) -> None:
        """Claim nothing more; let sends in flight finish (up to `wait_seconds`), then
        stop. A send cut short is sent again once its lease runs out."""
        self._stopping = True
        self._wake.set()
        deadline = time.monotonic() + wait_seconds
        # The claim loop first: a claim it is making now still starts its sends, which
        # are then waited for like the others.
        if self._task is not None:
            await asyncio.wait([self._task], timeout=wait_seconds)
        pending = [*self._inflight, *([self._task] if self._task is not None else [])]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Dispatchers:
    """The dispatchers of one worker process, one per configured destination."""

    def __init__(self, forwarder: Forwarder, *, poll_delay: float, main_queue: str | None) -> None:
        self._forwarder = forwarder
        self._poll_delay = poll_delay
        self._by_name = {
            dest.name: Dispatcher(forwarder, dest, poll_delay=poll_delay, main_queue=main_queue)
            for dest in forwarder.destinations.values()
        }

    def start(self) -> None:
        for dispatcher in self._by_name.values():
            dispatcher.start()
        self._forwarder.on_due = self.wake

    def wake(self, name: str) -> None:
        dispatcher = self._by_name.get(name)
        if dispatcher is not None:
            dispatcher.wake()

    async def drain(self) -> None:
        """Wait until no delivery is in flight or due within the burst horizon (a burst
        worker, once its queue is done: jobs enqueued meanwhile no longer go first)."""
        for dispatcher in self._by_name.values():
            dispatcher.main_queue = None
            dispatcher.wake()
        while True:
            idle = [await d.idle() for d in self._by_name.values()]
            if all(idle):
                return
            await asyncio.sleep(self._poll_delay)

    async def stop(self, *, wait_seconds: float) -> None:
        self._forwarder.on_due = None
        await asyncio.gather(*(d.stop(wait_seconds=wait_seconds) for d in self._by_name.values()))
