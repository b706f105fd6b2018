"""Calls made in the same event-loop turn, sent to Redis as one script call.

Forwarding writes to Redis from many concurrent tasks (event jobs creating deliveries,
sends finishing). Each call queues its item and waits; the queued items go out together,
at most `max_batch` per call, `linger` seconds after the first one was queued (0: at
the next loop turn) or as soon as `max_batch` are queued, and every caller gets its own
result back (or the call's exception). Callers return only once Redis confirmed the
write, exactly as if each had made its own call: a group commit, trading a few
milliseconds of a caller's wait for one Redis call instead of many.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Out = TypeVar("Out")


class Batcher(Generic[Item, Out]):
    def __init__(
        self,
        run: Callable[[Sequence[Item]], Awaitable[Sequence[Out]]],
        *,
        max_batch: int,
        linger: float = 0.0,
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._linger = linger
        self._timer: asyncio.TimerHandle | None = None
        self._queued: list[tuple[Item, asyncio.Future[Out]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Out:
        """`item`'s result, once written."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._queued.append((item, future))
        if len(self._queued) >= self._max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            if self._linger > 0:
                self._timer = loop.call_later(self._linger, self._flush)
            else:
                loop.call_soon(self._flush)
        return await future

    async def aclose(self) -> None:
        """Send what is queued and wait for every call in flight (at shutdown)."""
        self._flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _flush(self) -> None:
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queued, self._queued = self._queued, []
        for start in range(0, len(queued), self._max_batch):
            task = asyncio.ensure_future(self._send(queued[start : start + self._max_batch]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[Item, asyncio.Future[Out]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for {len(batch)} calls")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
