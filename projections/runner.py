"""Our own catch-up loop (SQLite has no subscriptions, and one transaction per event is
too slow for rebuilds): read the log in batches with ``select_notifications``, apply a
batch, and commit rows plus tracking position together.

Several workers may run against one PostgreSQL database: each batch locks the
projection's tracking row (SELECT ... FOR UPDATE), so batches never interleave.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from projections.base import LoggedEvent, Projection, metadata

log = logging.getLogger(__name__)

tracking = sa.Table(
    "projection_tracking",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)


class LogReader(Protocol):
    """The slice of an eventsourcing ApplicationRecorder the runner needs."""

    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = (),
        *, inclusive_of_start: bool = True,
    ) -> Sequence[Any]: ...

    def max_notification_id(self) -> int | None: ...


@dataclass
class BatchResult:
    applied: int
    start: int
    position: int


class ProjectionRunner:
    def __init__(
        self, reader: LogReader, engine: sa.Engine, projections: Sequence[Projection], batch_size: int = 1000,
    ) -> None:
        self.reader = reader
        self.engine = engine
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        self._ready = False

    # -- setup -----------------------------------------------------------------------------

    def setup(self) -> None:
        """Create tables and tracking rows; rebuild any projection whose version changed."""
        tracking.create(self.engine, checkfirst=True)
        for p in self.projections.values():
            with self.engine.begin() as conn:
                row = conn.execute(sa.select(tracking.c.version).where(tracking.c.name == p.name)).first()
            if row is not None and row.version != p.version:
                log.info("projection %s changed version %s -> %s; rebuilding", p.name, row.version, p.version)
                self.reset(p.name)
            else:
                self._create(p)
        self._ready = True

    def _create(self, p: Projection) -> None:
        metadata.create_all(self.engine, tables=list(p.tables), checkfirst=True)
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(tracking.c.name).where(tracking.c.name == p.name)).first()
            if exists is None:
                conn.execute(tracking.insert().values(name=p.name, position=0, version=p.version))

    def reset(self, name: str) -> None:
        """Drop a read model's tables and position; the next catch-up rebuilds it."""
        p = self.projections[name]
        metadata.drop_all(self.engine, tables=list(p.tables), checkfirst=True)
        with self.engine.begin() as conn:
            conn.execute(tracking.delete().where(tracking.c.name == name))
        self._create(p)

    # -- following the log -----------------------------------------------------------------

    def position(self, name: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(tracking.c.position).where(tracking.c.name == name)).scalar_one())

    def lag(self) -> dict[str, int]:
        head = self.reader.max_notification_id() or 0
        return {name: head - self.position(name) for name in self.projections}

    def step(self, name: str) -> BatchResult:
        """Apply at most one batch of one projection, atomically with its position."""
        p = self.projections[name]
        with self.engine.begin() as conn:
            q = sa.select(tracking.c.position).where(tracking.c.name == name)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            position = int(conn.execute(q).scalar_one())
            head = self.reader.max_notification_id() or 0
            if head <= position:
                return BatchResult(0, position, position)
            notifications = self.reader.select_notifications(
                start=position, limit=self.batch_size, stop=head, topics=p.topics, inclusive_of_start=False,
            )
            events = [LoggedEvent.from_notification(n) for n in notifications]
            if events:
                p.apply(conn, events)
            # A short batch means nothing of ours lies between the last event and head.
            new_position = events[-1].position if len(events) == self.batch_size else head
            conn.execute(tracking.update().where(tracking.c.name == name).values(position=new_position))
        return BatchResult(len(events), position, new_position)

    def catch_up(self, name: str | None = None, progress: Callable[[int], None] | None = None) -> int:
        """Apply everything up to the current head. Returns events applied."""
        names = [name] if name else list(self.projections)
        total = 0
        for n in names:
            while True:
                result = self.step(n)
                total += result.applied
                if progress:
                    progress(result.position - result.start)
                if result.applied < self.batch_size:  # a short batch reached the head
                    break
        return total

    def run_forever(self, stop: threading.Event, idle_sleep: float = 0.2) -> None:
        """Follow the log. A round steps only the projections behind the head: one the
        runner has seen at or past the head has nothing to do and costs no transaction
        (positions only go back when another process resets a read model; forgetting what
        was seen every 50 rounds notices that). Rounds run back to back only while a projection has a
        backlog (a full batch); otherwise the next round waits ``idle_sleep``, so under a
        steady stream of API writes each projection commits a few times a second with many
        events, instead of once per event, holding SQLite's write lock (and an fsync)
        against the writers every time."""
        seen: dict[str, int] = {}
        rounds = 0
        while not stop.is_set():
            backlog = False
            rounds += 1
            if rounds % 50 == 0:
                seen.clear()  # every ~10 s idle: notice a read model reset by another process
            try:
                head = self.reader.max_notification_id() or 0
            except Exception:  # keep following; the error is logged and the read retried
                log.exception("reading the head of the log failed; retrying")
                stop.wait(1.0)
                continue
            for name in self.projections:
                if seen.get(name, -1) >= head:
                    continue
                try:
                    result = self.step(name)
                except Exception:  # keep following; the error is logged and the batch retried
                    log.exception("projection %s failed a batch; retrying", name)
                    stop.wait(1.0)
                    continue
                seen[name] = result.position
                backlog |= result.applied >= self.batch_size
            if not backlog:
                stop.wait(idle_sleep)
