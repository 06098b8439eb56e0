"""Group commit: many concurrent writers, one transaction.

Every commit waits on fsync, so one commit per request caps a durable write path at a few
hundred per second. Here writers hand their items to one committer thread, which commits
everything queued in a single transaction and then completes each writer's future with its
own result. A writer is answered only after the commit that holds its item, so durability
is unchanged.

Writers wait either blocking (``commit``, from a worker thread) or on the event loop
(``commit_async``: no thread-pool hop per request, the committer wakes the loop itself).

If a batch fails (say one aggregate hits an optimistic-concurrency conflict) each item is
retried alone, so one bad item never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Commits a batch of items in one transaction; returns one result per item, in order.
CommitBatch = Callable[[Sequence[T]], Sequence[R]]


class _LoopWaiter(Generic[R]):
    """A writer waiting on an event loop: its asyncio future, settled from the committer
    thread in one ``call_soon_threadsafe`` per batch and loop (``_deliver``), instead of a
    ``concurrent.futures.Future`` chained to an asyncio one per request (its lock, its
    callbacks and a wake-up of the loop each)."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[R] = loop.create_future()

    def set_running_or_notify_cancel(self) -> bool:
        # A writer cancelled before its commit began is not committed (as a cancelled
        # concurrent future is not); one cancelled later loses only its answer.
        return not self.future.cancelled()


Waiter = Future[R] | _LoopWaiter[R]


class GroupCommitter(Generic[T, R]):
    def __init__(self, commit_batch: CommitBatch[T, R], *, max_batch: int = 500, name: str = "group-commit") -> None:
        self._commit_batch = commit_batch
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[T, Waiter[R]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, item: T) -> Future[R]:
        """Queues ``item``; the future completes once the commit holding it is durable."""
        if self._closed:
            raise RuntimeError("group committer is closed")
        fut: Future[R] = Future()
        self._queue.put((item, fut))
        return fut

    def commit(self, item: T) -> R:
        return self.submit(item).result()

    async def commit_async(self, item: T) -> R:
        if self._closed:
            raise RuntimeError("group committer is closed")
        waiter: _LoopWaiter[R] = _LoopWaiter(asyncio.get_running_loop())
        self._queue.put((item, waiter))
        return await waiter.future

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            taken = [first]
            stop = False
            while len(taken) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                taken.append(item)
            # A writer that gave up before its commit began (a cancelled request) is not
            # committed; once running, a future can no longer be cancelled.
            batch = [entry for entry in taken if entry[1].set_running_or_notify_cancel()]
            if batch:
                _deliver([(waiter, outcome) for (_, waiter), outcome in zip(batch, self._commit(batch), strict=True)])
            if stop:
                return

    def _commit(self, batch: list[tuple[T, Waiter[R]]]) -> list[tuple[bool, Any]]:
        """(True, result) or (False, exception) for each item, in order."""
        if len(batch) > 1:
            try:
                results = self._commit_batch([item for item, _ in batch])
            except Exception:  # isolate the culprit below
                log.debug("group commit of %d failed; retrying one by one", len(batch))
            else:
                return [(True, result) for result in results]
        outcomes: list[tuple[bool, Any]] = []
        for item, _ in batch:
            try:
                outcomes.append((True, self._commit_batch([item])[0]))
            except Exception as e:  # handed to the waiting writer
                outcomes.append((False, e))
        return outcomes


def _deliver(outcomes: list[tuple[Waiter[Any], tuple[bool, Any]]]) -> None:
    """Completes each writer's wait: concurrent futures at once, each event loop's writers
    in one callback on that loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], tuple[bool, Any]]]] = {}
    for waiter, outcome in outcomes:
        if isinstance(waiter, _LoopWaiter):
            by_loop.setdefault(waiter.loop, []).append((waiter.future, outcome))
        elif outcome[0]:
            waiter.set_result(outcome[1])
        else:
            waiter.set_exception(outcome[1])
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, pairs)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.debug("group commit: %d answers for a closed event loop", len(pairs))


def _settle(pairs: list[tuple[asyncio.Future[Any], tuple[bool, Any]]]) -> None:
    for fut, (ok, value) in pairs:
        if fut.done():  # cancelled while its commit ran
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


def pending_events(items: Iterable[Any]) -> Iterator[Any]:
    """Aggregates' pending events, or the items themselves when they are events."""
    for item in items:
        collect = getattr(item, "collect_events", None)
        if collect is None:
            yield item
        else:
            yield from collect()
