"""Bulk append: the path for imports, the demo generator and Kafka ingest.

``Application.save`` is built for one request: it maps, inserts and notifies per call.
Here a stream of aggregates (or their pending events) is cut into large batches and each
batch is appended in one transaction (one fsync), with the application's own transcoder,
so what lands in the log is byte-for-byte what ``save`` would have written and every
store keeps its ordering guarantees (SQLite's single writer; PostgreSQL's ``LOCK TABLE``).

A recorder with a ``bulk_writer()`` (services/store/database.py) writes the whole load through a
writer of its own, set up for big transactions (SQLite: its own connection with a big page
cache and deferred checkpoints, restored when the load ends); any other recorder gets its
``insert_events`` called per batch.

Optimistic concurrency is unchanged: an event whose (originator id, version) is already
stored fails its batch with ``IntegrityError``, unless ``skip_existing`` is set, in which
case the batch is retried without the events already stored (what an idempotent consumer
with deterministic ids wants).

Mapping (orjson encoding) and inserting overlap: a writer thread inserts batch k while the
caller's thread maps batch k + 1 straight into the rows the store binds (sqlite3 and psycopg
release the GIL while the database works). At most ``ahead`` + 2 batches are in memory (3 by
default); batches commit in stream order.

A producer that makes many events of one shape (the demo's duty and compliance records) may
hand in ``EncodedEvent`` rows instead, built with ``state_encoder`` of the same mapper: they
are stored as they are, their originator id turned into the store's key.

Nothing here reads the clock; the events carry their own timestamps.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Mapper, Recorder, StoredEvent
from eventsourcing.utils import get_topic

from services.store.group_commit import pending_events

# 20,000 events per transaction: against 5,000, a quarter of the commits (fsyncs) and of
# the WAL writes of the primary-key index pages every batch dirties (bench/RESULTS.md §2).
DEFAULT_BATCH = 20_000

# (originator id as the store binds it, originator version, topic, state)
Row = tuple[Any, int, str, bytes]


class EncodedEvent(NamedTuple):
    """An event already in the form the store keeps, its state encoded with ``state_encoder``
    of the appending application's mapper (services/demo/created.py makes these)."""

    originator_id: uuid.UUID
    originator_version: int
    topic: str
    state: bytes


class BulkWriter(Protocol):
    def key(self, originator_id: Any) -> Any: ...

    def insert(self, rows: Sequence[Row]) -> list[int]: ...

    def close(self) -> None: ...


@dataclass
class BulkResult:
    appended: int = 0
    skipped: int = 0
    batches: int = 0
    # Log positions of the first and last appended events (None when nothing appended).
    first_position: int | None = None
    last_position: int | None = None
    positions: list[int] = field(default_factory=list)  # only with keep_positions=True


class RecorderWriter:
    """A recorder without a bulk writer of its own: ``insert_events`` per batch."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder: Any = recorder

    def key(self, originator_id: Any) -> Any:
        return originator_id

    def insert(self, rows: Sequence[Row]) -> list[int]:
        return list(self.recorder.insert_events([StoredEvent(*r) for r in rows]) or [])

    def close(self) -> None:
        pass


def state_encoder(mapper: Mapper[Any]) -> Callable[[dict[str, Any]], bytes] | None:
    """What ``row_encoder`` turns an event's state into bytes with, for ``EncodedEvent``; None
    when the mapper compresses or encrypts (then hand in events)."""
    if mapper.compressor is not None or mapper.cipher is not None:
        return None
    return mapper.transcoder.encode


def row_encoder(mapper: Mapper[Any], key: Callable[[Any], Any]) -> Callable[[Any], Row]:
    """``mapper.to_stored_event`` straight to a row, without the ``StoredEvent`` in between
    (a frozen dataclass: a quarter of the mapping time): the same steps in the same order
    with the same transcoder, so the state bytes are those ``save`` writes (compared in
    tests/test_bulk_append.py). A mapper that compresses or encrypts is used as it is.
    An ``EncodedEvent`` passes through (only its originator id made the store's key)."""
    if mapper.compressor is not None or mapper.cipher is not None:
        def via_mapper(event: Any) -> Row:
            if type(event) is EncodedEvent:
                raise TypeError("an EncodedEvent bypasses this mapper's compression or encryption")
            s = mapper.to_stored_event(event)
            return key(s.originator_id), s.originator_version, s.topic, s.state

        return via_mapper
    encode = mapper.transcoder.encode
    # Per event class: its topic and its class version (1 adds nothing to the state).
    classes: dict[type, tuple[str, int]] = {}

    def row(event: Any) -> Row:
        cls = type(event)
        if cls is EncodedEvent:
            return key(event[0]), event[1], event[2], event[3]
        known = classes.get(cls)
        if known is None:
            known = classes[cls] = (get_topic(cls), getattr(cls, "class_version", 1))
        topic, class_version = known
        state = dict(vars(event))
        originator_id = state.pop("originator_id")
        version = state.pop("originator_version")
        if class_version > 1:
            state["class_version"] = class_version
        return key(originator_id), version, topic, encode(state)

    return row


class BulkAppender:
    def __init__(
        self, app: Application[Any], *, batch_size: int = DEFAULT_BATCH, skip_existing: bool = False,
        keep_positions: bool = False, ahead: int = 1,
    ) -> None:
        if batch_size < 1 or ahead < 1:
            raise ValueError("batch_size and ahead must be at least 1")
        self.app = app
        self.batch_size = batch_size
        self.skip_existing = skip_existing
        self.keep_positions = keep_positions
        self.ahead = ahead  # batches mapped and waiting for the writer thread

    def append(
        self, items: Iterable[Any], *, progress: Callable[[int], None] | None = None,
    ) -> BulkResult:
        """Appends aggregates' pending events (or bare domain events) in the order of the
        stream, ``batch_size`` events per transaction. If a batch fails, the batches before
        it stay committed, none after it is written, and the error is raised here."""
        result = BulkResult()
        batches: queue.Queue[list[Row] | None] = queue.Queue(maxsize=self.ahead)
        failure: list[BaseException] = []
        sink = self._writer()

        def writer() -> None:
            while True:
                rows = batches.get()
                if rows is None:
                    return
                if failure:
                    continue  # drain, so the producer never blocks on a dead writer
                try:
                    self._flush(sink, rows, result, progress)
                except BaseException as e:  # re-raised in the caller's thread
                    failure.append(e)

        thread = threading.Thread(target=writer, name="bulk-append", daemon=True)
        try:
            thread.start()
            encode = row_encoder(self.app.mapper, sink.key)
            pending: list[Row] = []
            try:
                for event in pending_events(items):
                    pending.append(encode(event))
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
        finally:
            sink.close()
        if failure:
            raise failure[0]
        return result

    def append_batch(self, events: Sequence[Any]) -> list[int]:
        """One transaction; returns the notification ids (log positions) of the events
        stored (without those skipped as already stored)."""
        sink = self._writer()
        try:
            encode = row_encoder(self.app.mapper, sink.key)
            return self._insert(sink, [encode(e) for e in events])
        finally:
            sink.close()

    # -- internals -----------------------------------------------------------------------

    def _writer(self) -> BulkWriter:
        open_writer = getattr(self.app.recorder, "bulk_writer", None)
        writer: BulkWriter = open_writer() if open_writer is not None else RecorderWriter(self.app.recorder)
        return writer

    def _insert(self, sink: BulkWriter, rows: list[Row]) -> list[int]:
        try:
            return sink.insert(rows)
        except IntegrityError:
            if not self.skip_existing:
                raise
            fresh = self._not_yet_stored(rows)
            if len(fresh) == len(rows):
                raise
            return sink.insert(fresh) if fresh else []

    def _flush(
        self, sink: BulkWriter, rows: list[Row], result: BulkResult, progress: Callable[[int], None] | None,
    ) -> None:
        ids = self._insert(sink, rows)
        result.batches += 1
        result.appended += len(ids)
        result.skipped += len(rows) - len(ids)
        if ids:
            if result.first_position is None:
                result.first_position = ids[0]
            result.last_position = ids[-1]
            if self.keep_positions:
                result.positions.extend(ids)
        if progress is not None:
            progress(len(rows))

    def _not_yet_stored(self, rows: Sequence[Row]) -> list[Row]:
        """Drops events already in the store and repeats within the batch."""
        seen: set[tuple[Any, int]] = set()
        fresh = []
        recorder: Any = self.app.recorder
        for r in rows:
            key = (r[0], r[1])
            if key in seen:
                continue
            seen.add(key)
            if not recorder.select_events(r[0], gt=r[1] - 1, lte=r[1], limit=1):
                fresh.append(r)
        return fresh
