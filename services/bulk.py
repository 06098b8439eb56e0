"""Bulk append: the path for imports, the demo generator and Kafka ingest.

``Application.save`` is built for one request: it maps, inserts and notifies per call.
Here a stream of aggregates (or their pending events) is cut into large batches and each
batch is appended in one transaction (one fsync), through the application's own mapper and
recorder, so what lands in the log is byte-for-byte what ``save`` would have written and
every store keeps its ordering guarantees (SQLite's single writer; PostgreSQL's
``LOCK TABLE``). On SQLite the recorder inserts a batch with one ``executemany``
(services/store.py).

Optimistic concurrency is unchanged: an event whose (originator id, version) is already
stored fails its batch with ``IntegrityError``, unless ``skip_existing`` is set, in which
case the batch is retried without the events already stored (what an idempotent consumer
with deterministic ids wants).

Mapping (orjson encoding) and inserting overlap: a writer thread inserts batch k while the
caller's thread maps batch k + 1 (sqlite3 and psycopg release the GIL while the database
works). At most two batches are in memory; batches commit in stream order.

Nothing here reads the clock; the events carry their own timestamps.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError

DEFAULT_BATCH = 5000


@dataclass
class BulkResult:
    appended: int = 0
    skipped: int = 0
    batches: int = 0
    # Log positions of the first and last appended events (None when nothing appended).
    first_position: int | None = None
    last_position: int | None = None
    positions: list[int] = field(default_factory=list)  # only with keep_positions=True


class BulkAppender:
    def __init__(
        self, app: Application[Any], *, batch_size: int = DEFAULT_BATCH, skip_existing: bool = False,
        keep_positions: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.app = app
        self.batch_size = batch_size
        self.skip_existing = skip_existing
        self.keep_positions = keep_positions

    def append(
        self, items: Iterable[Any], *, progress: Callable[[int], None] | None = None,
    ) -> BulkResult:
        """Appends aggregates' pending events (or bare domain events) in the order of the
        stream, ``batch_size`` events per transaction. If a batch fails, the batches before
        it stay committed, none after it is written, and the error is raised here."""
        result = BulkResult()
        batches: queue.Queue[list[Any] | None] = queue.Queue(maxsize=1)
        failure: list[BaseException] = []

        def writer() -> None:
            while True:
                stored = batches.get()
                if stored is None:
                    return
                if failure:
                    continue  # drain, so the producer never blocks on a dead writer
                try:
                    self._flush(stored, result, progress)
                except BaseException as e:  # re-raised in the caller's thread
                    failure.append(e)

        thread = threading.Thread(target=writer, name="bulk-append", daemon=True)
        thread.start()
        to_stored = self.app.mapper.to_stored_event
        pending: list[Any] = []
        try:
            for item in items:
                collect = getattr(item, "collect_events", None)
                if collect is not None:
                    pending.extend(map(to_stored, collect()))
                else:
                    pending.append(to_stored(item))
                if len(pending) >= self.batch_size:
                    if failure:
                        break
                    batches.put(pending)
                    pending = []
            if pending and not failure:
                batches.put(pending)
        finally:
            batches.put(None)
            thread.join()
        if failure:
            raise failure[0]
        return result

    def append_batch(self, events: Sequence[Any]) -> list[int]:
        """One transaction; returns the notification ids (log positions) of the events
        stored (without those skipped as already stored)."""
        return self._insert([self.app.mapper.to_stored_event(e) for e in events])

    # -- internals -----------------------------------------------------------------------

    def _insert(self, stored: list[Any]) -> list[int]:
        try:
            ids = self.app.recorder.insert_events(stored)
        except IntegrityError:
            if not self.skip_existing:
                raise
            fresh = self._not_yet_stored(stored)
            if len(fresh) == len(stored):
                raise
            ids = self.app.recorder.insert_events(fresh) if fresh else []
        return list(ids or [])

    def _flush(self, stored: list[Any], result: BulkResult, progress: Callable[[int], None] | None) -> None:
        ids = self._insert(stored)
        result.batches += 1
        result.appended += len(ids)
        result.skipped += len(stored) - len(ids)
        if ids:
            if result.first_position is None:
                result.first_position = ids[0]
            result.last_position = ids[-1]
            if self.keep_positions:
                result.positions.extend(ids)
        if progress is not None:
            progress(len(stored))

    def _not_yet_stored(self, stored: Sequence[Any]) -> list[Any]:
        """Drops events already in the store and repeats within the batch."""
        seen: set[tuple[uuid.UUID, int]] = set()
        fresh = []
        recorder: Any = self.app.recorder
        for s in stored:
            key = (s.originator_id, s.originator_version)
            if key in seen:
                continue
            seen.add(key)
            existing = recorder.select_events(s.originator_id, gt=s.originator_version - 1,
                                              lte=s.originator_version, limit=1)
            if not existing:
                fresh.append(s)
        return fresh
