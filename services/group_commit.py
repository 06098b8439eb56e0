"""Group commit: many concurrent writers, one transaction.

Every commit waits on fsync, so one commit per request caps a durable write path at a few
hundred per second. Here request threads hand their pending aggregates to one committer
thread, which saves everything queued in a single ``Application.save`` and then wakes each
request with its own recordings. A request is answered only after the commit that holds
its events, so durability is unchanged.

If the batch fails (say one aggregate hits an optimistic-concurrency conflict) each item is
retried alone, so one bad item never fails its neighbours.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)

SaveFn = Callable[..., Sequence[Any]]


class GroupCommitter:
    def __init__(self, save: SaveFn, max_batch: int = 500) -> None:
        self._save = save
        self._max_batch = max_batch
        self._queue: queue.Queue[tuple[tuple[Any, ...], Future[Sequence[Any]]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._closed = False
        self._thread.start()

    def save(self, *aggregates: Any) -> Sequence[Any]:
        """Blocks until the aggregates' events are committed; returns their recordings."""
        if self._closed:
            raise RuntimeError("group committer is closed")
        # Collect here, once: a retry after a failed batch must still have the events.
        events = tuple(e for a in aggregates for e in a.collect_events())
        fut: Future[Sequence[Any]] = Future()
        self._queue.put((events, fut))
        return fut.result()

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
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[tuple[Any, ...], Future[Sequence[Any]]]]) -> None:
        if len(batch) > 1:
            try:
                recordings = self._save(*[e for events, _ in batch for e in events])
            except Exception:  # isolate the culprit below
                log.debug("group commit of %d failed; retrying one by one", len(batch))
            else:
                by_event = {id(r.domain_event): r for r in recordings}
                for events, fut in batch:
                    fut.set_result([by_event[id(e)] for e in events])
                return
        for events, fut in batch:
            try:
                fut.set_result(self._save(*events))
            except Exception as e:  # handed to the waiting request
                fut.set_exception(e)
