"""Our own catch-up loop (SQLite has no subscriptions, and one transaction per event is
too slow for rebuilds): read the log in batches, apply a batch, and commit rows plus
tracking position together.

Where the log lives in the read models' own database (the platform's one database), a
batch is read inside the batch's transaction as plain rows (no Notification or UUID per
event); any other log is read through the recorder's ``select_notifications``.

Every read model follows the log in ONE pass: a batch is read once (the union of the topics
its projections want), each stored event is decoded at most once, and every projection at the
batch's starting position applies its share, all in one transaction that advances every
tracking position with its rows. A projection that is behind the others (a rebuild, a new read
model) first catches up alone, then joins the shared pass when it reaches them.

A batch covers up to ``batch_size`` positions of the log and, while a projection has a
backlog, grows (up to ``max_batch_size``) towards ``batch_seconds`` of work: a rebuild
commits (and fsyncs) a few times instead of once per thousand events, and no batch of a
slow projection holds SQLite's write lock against the API much longer than a small batch
would.

An event a projection cannot apply (text its columns cannot hold, a bug in its code) does not
stop the read model: the batch is applied again one event at a time, each in a savepoint, and
the events that fail are recorded in ``projection_quarantine`` with their position and error
while the projection moves past them. ``/readyz`` reports such a projection degraded, and
``lianxi projections quarantine`` lists and retries them. A failure of the database itself
(connection lost, deadlock) is no event's fault: the batch is retried, nothing quarantined.

Several workers may run against one PostgreSQL database: each batch locks the
projection's tracking row (SELECT ... FOR UPDATE), so batches never interleave.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Protocol

import sqlalchemy as sa
from eventsourcing.sqlite import SQLiteApplicationRecorder

from projections.base import LoggedEvent, Projection, StoredRow, metadata, upsert_add, utc_text
from projections.collector import collector_paused

log = logging.getLogger(__name__)

tracking = sa.Table(
    "projection_tracking",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)


quarantine = sa.Table(
    "projection_quarantine",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("topic", sa.String(200), nullable=False),
    sa.Column("originator_id", sa.String(64), nullable=False),
    sa.Column("error", sa.String(1000), nullable=False),
    sa.Column("quarantined_at", sa.String(32), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
)

_SHARED = "*shared*"  # the one-pass batch's adaptive size, beside each projection's own

# The database failed, not the event: retry the batch rather than quarantine anything.
_NOT_THE_EVENTS_FAULT = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError)


def _error_text(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".replace("\x00", "\\x00")
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)[:1000]


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
    full: bool = False  # the batch stopped short of the head: more of the log follows


@dataclass(frozen=True)
class StoredLog:
    """The log's table as seen from the read models' database."""

    dialect: str
    table: str  # qualified, quoted
    position: str  # the position column

    def read(self, conn: sa.Connection, start: int, stop: int, topics: Sequence[str]) -> list[StoredRow]:
        """The rows of ``topics`` after ``start`` up to ``stop``, in log order, on ``conn``'s
        transaction. The originator id stays text: most projections never read it. No ORDER
        BY: with the statistics PostgreSQL has right after a bulk load it chose a bitmap scan
        plus an on-disk sort of the whole range; a position window and a sort here are
        cheap whatever the plan."""
        pg = self.dialect == "postgresql"
        mark = "%s" if pg else "?"
        params: list[Any] = [start, stop]
        where = f"{self.position} > {mark} AND {self.position} <= {mark}"
        if topics and pg:
            where += " AND topic = ANY(%s)"
            params.append(list(topics))
        elif topics:
            where += f" AND topic IN ({', '.join('?' * len(topics))})"
            params.extend(topics)
        oid = "originator_id::text" if pg else "originator_id"
        sql = f"SELECT {self.position}, {oid}, originator_version, topic, state FROM {self.table} WHERE {where}"
        driver: Any = conn.connection.driver_connection
        cur = driver.cursor()
        try:
            if pg:
                cur.execute(sql, params, binary=True)  # bytea as bytes, not hex text
            else:
                cur.execute(sql, params)
            rows: list[StoredRow] = cur.fetchall()
        finally:
            cur.close()
        rows.sort(key=itemgetter(0))
        return rows

    def head(self, conn: sa.Connection) -> int:
        return int(conn.exec_driver_sql(f"SELECT max({self.position}) FROM {self.table}").scalar() or 0)


def stored_log(reader: LogReader, engine: sa.Engine) -> StoredLog | None:
    """The reader's log table, when it lives in ``engine``'s database."""
    url = engine.url
    if isinstance(reader, SQLiteApplicationRecorder) and engine.dialect.name == "sqlite":
        pool: Any = reader.datastore.pool
        same = (not pool.is_sqlite_memory_mode and url.database is not None
                and os.path.realpath(pool.db_name) == os.path.realpath(url.database))
        return StoredLog("sqlite", f'"{reader.events_table_name}"', "rowid") if same else None
    if engine.dialect.name != "postgresql":
        return None
    # Imported here: psycopg is loaded only where the store is PostgreSQL (a SQLite rebuild
    # spent a tenth of its start-up importing it).
    from eventsourcing.postgres import PostgresApplicationRecorder

    if isinstance(reader, PostgresApplicationRecorder):
        kw: Any = reader.datastore.pool.kwargs
        same = (kw["dbname"], kw["host"], int(kw["port"])) == (url.database, url.host, url.port or 5432)
        table = f'"{reader.datastore.schema}"."{reader.events_table_name}"'
        return StoredLog("postgresql", table, "notification_id") if same else None
    return None


class ProjectionRunner:
    def __init__(
        self, reader: LogReader, engine: sa.Engine, projections: Sequence[Projection], batch_size: int = 1000,
        max_batch_size: int = 50_000, batch_seconds: float = 0.25,
    ) -> None:
        self.engine = engine
        self.reader = reader
        self.projections = {p.name: p for p in projections}
        self._topic_sets = {p.name: frozenset(p.topics) for p in projections}
        self.batch_size = batch_size
        self.max_batch_size = max_batch_size
        self.batch_seconds = batch_seconds
        self._limits: dict[str, int] = {}
        self._ready = False

    @property
    def reader(self) -> LogReader:
        return self._reader

    @reader.setter
    def reader(self, reader: LogReader) -> None:
        """Setting another reader (a test's capped log) also decides again how to read it."""
        self._reader = reader
        self.log = stored_log(reader, self.engine)

    # -- setup -----------------------------------------------------------------------------

    def setup(self) -> None:
        """Create tables and tracking rows; rebuild any projection whose version changed."""
        tracking.create(self.engine, checkfirst=True)
        quarantine.create(self.engine, checkfirst=True)
        # The versions and the existing tables in one query each, the missing tables and tracking
        # rows in one transaction: a transaction, a has-table query per table and a tracking
        # query per read model were ~70 round trips at every start of a process.
        with self.engine.connect() as conn:
            versions = {str(n): int(v) for n, v in conn.execute(sa.select(tracking.c.name, tracking.c.version))}
        rest = []
        for p in self.projections.values():
            if p.name in versions and versions[p.name] != p.version:
                log.info("projection %s changed version %s -> %s; rebuilding", p.name, versions[p.name], p.version)
                self.reset(p.name)
            else:
                rest.append(p)
        with self.engine.begin() as conn:
            existing = set(sa.inspect(conn).get_table_names())
            missing = [t for p in rest for t in p.tables if t.name not in existing]
            if missing:
                metadata.create_all(conn, tables=missing, checkfirst=False)
            new = [{"name": p.name, "position": 0, "version": p.version} for p in rest if p.name not in versions]
            if new:
                conn.execute(tracking.insert(), new)
        self._ready = True

    def _create(self, p: Projection, conn: sa.Connection | None = None) -> None:
        if conn is None:
            with self.engine.begin() as own:
                self._create(p, own)
            return
        metadata.create_all(conn, tables=list(p.tables), checkfirst=True)
        exists = conn.execute(sa.select(tracking.c.name).where(tracking.c.name == p.name)).first()
        if exists is None:
            conn.execute(tracking.insert().values(name=p.name, position=0, version=p.version))

    def reset(self, *names: str) -> None:
        """Drop read models' tables and positions; the next catch-up rebuilds them. All in one
        transaction (DDL is transactional on both stores): one commit, not four per model."""
        chosen = [self.projections[name] for name in names]
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                self._reset_postgres(conn, chosen)
                return
            for p in chosen:
                metadata.drop_all(conn, tables=list(p.tables), checkfirst=True)
                for retired in p.retired_tables:
                    conn.execute(sa.text(f'DROP TABLE IF EXISTS "{retired}"'))
                conn.execute(tracking.delete().where(tracking.c.name == p.name))
                conn.execute(quarantine.delete().where(quarantine.c.name == p.name))  # the rebuild finds them again
                self._create(p, conn)

    @staticmethod
    def _reset_postgres(conn: sa.Connection, chosen: Sequence[Projection]) -> None:
        """``reset`` on PostgreSQL: the same drops and creates sent as ONE batch of statements,
        and the tracking rows in three: a statement a round trip (a has-table check, a drop and
        a create per table and index) made the reset of every read model ~230 round trips,
        about a second on a busy machine."""
        dialect = conn.dialect
        quote = dialect.identifier_preparer
        ddl: list[str] = []
        for p in chosen:
            ddl.extend(f"DROP TABLE IF EXISTS {quote.format_table(t)}" for t in reversed(p.tables))
            ddl.extend(f'DROP TABLE IF EXISTS "{retired}"' for retired in p.retired_tables)
        for p in chosen:
            for t in p.tables:
                ddl.append(str(sa.schema.CreateTable(t).compile(dialect=dialect)).strip())
                ddl.extend(str(sa.schema.CreateIndex(i).compile(dialect=dialect)).strip() for i in t.indexes)
        if ddl:
            conn.exec_driver_sql(";\n".join(ddl))
        names = [p.name for p in chosen]
        conn.execute(tracking.delete().where(tracking.c.name.in_(names)))
        conn.execute(quarantine.delete().where(quarantine.c.name.in_(names)))  # the rebuild finds them again
        conn.execute(tracking.insert(), [{"name": p.name, "position": 0, "version": p.version} for p in chosen])

    # -- following the log -----------------------------------------------------------------

    def position(self, name: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(tracking.c.position).where(tracking.c.name == name)).scalar_one())

    def lag(self) -> dict[str, int]:
        head = self.reader.max_notification_id() or 0
        return {name: head - self.position(name) for name in self.projections}

    def step(self, name: str) -> BatchResult:
        """Apply at most one batch of one projection, atomically with its position: the
        projection's events among the next ``limit`` positions of the log. A batch that fails
        is applied again event by event, quarantining the events that fail."""
        try:
            return self._step(name, isolate=False)
        except _NOT_THE_EVENTS_FAULT:
            raise
        except Exception:
            if not self.projections[name].quarantines:
                raise
            log.warning("projection %s failed a batch; isolating the failing events", name, exc_info=True)
            return self._step(name, isolate=True)

    def _step(self, name: str, *, isolate: bool) -> BatchResult:
        p = self.projections[name]
        limit = self._limits.get(name, self.batch_size)
        started = time.perf_counter()
        with self.engine.begin() as conn:
            q = sa.select(tracking.c.position).where(tracking.c.name == name)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            position = int(conn.execute(q).scalar_one())
            head = self.log.head(conn) if self.log is not None else self.reader.max_notification_id() or 0
            if head <= position:
                return BatchResult(0, position, position)
            stop = min(head, position + limit)
            rows = self._read(conn, position, stop, p.topics)
            if rows and isolate:
                self._apply_isolated(conn, p, rows)
            elif rows:
                p.apply_stored(conn, rows)
            conn.execute(tracking.update().where(tracking.c.name == name).values(position=stop))
        full = stop < head
        if full:
            self._limits[name] = self._grown(limit, time.perf_counter() - started)
        else:
            self._limits.pop(name, None)  # caught up: the next backlog starts small again
        return BatchResult(len(rows), position, stop, full)

    def step_together(self, names: Sequence[str] | None = None) -> BatchResult:
        """One batch of the one-pass: the projections (of ``names``) that stand furthest
        behind apply the next window of the log together, atomically with their positions;
        a projection ahead of them waits until they reach it. If the shared batch fails, each
        of them steps alone (where failing events are isolated and quarantined)."""
        chosen = sorted(names or self.projections)
        try:
            return self._step_together(chosen)
        except _NOT_THE_EVENTS_FAULT:
            raise
        except Exception:
            # Each steps alone: the one whose failure is the finding raises it there.
            log.warning("the shared batch failed; stepping its projections one by one", exc_info=True)
            results = [self.step(name) for name in self._behind(chosen)]
            return BatchResult(sum(r.applied for r in results), min(r.start for r in results),
                               min(r.position for r in results), any(r.full for r in results))

    def _behind(self, names: Sequence[str]) -> list[str]:
        with self.engine.connect() as conn:
            positions = self._positions(conn, names, lock=False)
        low = min(positions.values())
        return [n for n in names if positions[n] == low]

    @staticmethod
    def _positions(conn: sa.Connection, names: Sequence[str], *, lock: bool) -> dict[str, int]:
        q = sa.select(tracking.c.name, tracking.c.position).where(tracking.c.name.in_(names)).order_by(tracking.c.name)
        if lock and conn.dialect.name == "postgresql":
            q = q.with_for_update()  # in name order: two workers never wait on each other crosswise
        return {str(n): int(p) for n, p in conn.execute(q)}

    def _step_together(self, names: Sequence[str]) -> BatchResult:
        limit = self._limits.get(_SHARED, self.batch_size)
        started = time.perf_counter()
        with self.engine.begin() as conn:
            positions = self._positions(conn, names, lock=True)
            start = min(positions.values())
            group = [self.projections[n] for n in names if positions[n] == start]
            head = self.log.head(conn) if self.log is not None else self.reader.max_notification_id() or 0
            if head <= start:
                return BatchResult(0, start, start)
            stop = min(head, start + limit)
            ahead = [positions[n] for n in names if positions[n] > start]
            if ahead:
                stop = min(stop, min(ahead))  # join the projections ahead exactly where they stand
            wanted = set() if any(not p.topics for p in group) else {t for p in group for t in p.topics}
            rows = self._read(conn, start, stop, sorted(wanted))
            decoded: dict[int, LoggedEvent] = {}

            def event(row: StoredRow) -> LoggedEvent:
                hit = decoded.get(row[0])
                if hit is None:
                    hit = decoded[row[0]] = LoggedEvent.from_row(row)
                return hit

            applied = 0
            shares = self._shares(group, rows)
            for p in group:
                mine = rows if not p.topics else shares[p.name]
                if mine:
                    if type(p).apply_stored is Projection.apply_stored:  # decoded once for all who decode
                        p.apply(conn, [event(r) for r in mine])
                    elif p.decoded_will_do and all(r[0] in decoded for r in mine):
                        p.apply(conn, [decoded[r[0]] for r in mine])  # another read model decoded them
                    else:
                        p.apply_stored(conn, mine)
                    applied += len(mine)
            conn.execute(tracking.update().where(tracking.c.name.in_([p.name for p in group])).values(position=stop))
        full = stop < head
        if full:
            self._limits[_SHARED] = self._grown(limit, time.perf_counter() - started)
        else:
            self._limits.pop(_SHARED, None)
        return BatchResult(applied, start, stop, full)

    def _shares(self, group: Sequence[Projection], rows: Sequence[StoredRow]) -> dict[str, list[StoredRow]]:
        """Each projection's rows of the batch (those of its topics), in one pass over the rows:
        a topic's projections are looked up once per row, not each projection's topics."""
        shares: dict[str, list[StoredRow]] = {p.name: [] for p in group if p.topics}
        takers: dict[str, list[list[StoredRow]]] = {}
        for row in rows:
            lists = takers.get(row[3])
            if lists is None:
                lists = takers[row[3]] = [shares[p.name] for p in group
                                          if p.topics and row[3] in self._topic_sets[p.name]]
            for share in lists:
                share.append(row)
        return shares

    def _apply_isolated(self, conn: sa.Connection, p: Projection, rows: Sequence[StoredRow]) -> None:
        for row in rows:
            try:
                with conn.begin_nested():
                    p.apply_stored(conn, [row])
            except _NOT_THE_EVENTS_FAULT:
                raise
            except Exception as e:
                log.error("projection %s quarantined the event at position %d (%s): %s", p.name, row[0], row[3],
                          _error_text(e))
                self._quarantine(conn, p.name, row, e)

    def _quarantine(self, conn: sa.Connection, name: str, row: StoredRow, e: BaseException) -> None:
        upsert_add(conn, quarantine, [{
            "name": name, "position": int(row[0]), "topic": str(row[3])[:200], "originator_id": str(row[1]),
            "error": _error_text(e), "quarantined_at": utc_text(datetime.now(UTC)), "attempts": 1}],
            keys=("name", "position"), add=("attempts",), replace=("error", "quarantined_at"))

    # -- quarantine ------------------------------------------------------------------------

    def quarantined(self, name: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(quarantine).order_by(quarantine.c.name, quarantine.c.position)
        if name:
            q = q.where(quarantine.c.name == name)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def degraded(self) -> dict[str, int]:
        """Projections with quarantined events, and how many each."""
        with self.engine.connect() as conn:
            return {str(n): int(c) for n, c in conn.execute(
                sa.select(quarantine.c.name, sa.func.count()).group_by(quarantine.c.name))}

    def retry_quarantined(self, name: str | None = None) -> tuple[int, int]:
        """Applies each quarantined event again (after a fix), oldest first; those that now
        apply leave the quarantine. Returns (applied, still failing). An event applied late
        may depend on order: where it does, ``projections rebuild`` is the exact remedy."""
        applied = failing = 0
        for entry in self.quarantined(name):
            p = self.projections.get(entry["name"])
            if p is None:
                continue
            with self.engine.begin() as conn:
                at = entry["position"]
                rows = [r for r in self._read(conn, at - 1, at, ()) if r[0] == at]
                try:
                    with conn.begin_nested():
                        if rows:
                            p.apply_stored(conn, rows)
                except _NOT_THE_EVENTS_FAULT:
                    raise
                except Exception as e:
                    failing += 1
                    self._quarantine(conn, p.name, rows[0], e)
                    continue
                conn.execute(quarantine.delete().where(quarantine.c.name == p.name,
                                                       quarantine.c.position == entry["position"]))
                applied += 1
        return applied, failing

    def _read(self, conn: sa.Connection, position: int, stop: int, topics: Sequence[str]) -> list[StoredRow]:
        if self.log is not None:
            return self.log.read(conn, position, stop, topics)
        notifications = self.reader.select_notifications(
            start=position, limit=stop - position, stop=stop, topics=topics, inclusive_of_start=False,
        )
        return [(int(n.id), n.originator_id, int(n.originator_version), n.topic, n.state) for n in notifications]

    def _grown(self, limit: int, seconds: float) -> int:
        """The next batch of a backlog: scaled towards ``batch_seconds`` (at most x4 a step)."""
        scaled = int(limit * min(4.0, self.batch_seconds / max(seconds, 1e-3)))
        return max(self.batch_size, min(self.max_batch_size, scaled))

    def catch_up(self, name: str | None = None, progress: Callable[[int], None] | None = None) -> int:
        """Apply everything up to the current head: one projection alone, or every projection
        in the one pass (``progress`` gets the positions each batch advanced). Returns events
        applied."""
        total = 0
        while True:
            with collector_paused():  # a batch's decoded events leave no cycles
                result = self.step(name) if name else self.step_together()
            total += result.applied
            if progress:
                progress(result.position - result.start)
            if result.position == result.start and not result.full:  # every projection is at the head
                return total
            if name and not result.full:
                return total

    def run_forever(self, stop: threading.Event, idle_sleep: float = 0.2) -> None:
        """Follow the log in the one pass. Once every read model stood at the head, a round
        whose head has not moved costs no transaction (positions only go back when another
        process resets a read model; forgetting that every 50 rounds notices it). Rounds run
        back to back only while some read model is behind; otherwise the next round waits
        ``idle_sleep``, so under a steady stream of API writes the read models commit a few
        times a second with many events, instead of once per event, holding SQLite's write
        lock (and an fsync) against the writers every time."""
        all_at = -1  # the head at which every read model was last seen
        rounds = 0
        while not stop.is_set():
            rounds += 1
            if rounds % 50 == 0:
                all_at = -1  # every ~10 s idle: notice a read model reset by another process
            try:
                head = self.reader.max_notification_id() or 0
            except Exception:  # keep following; the error is logged and the read retried
                log.exception("reading the head of the log failed; retrying")
                stop.wait(1.0)
                continue
            if head == all_at:
                stop.wait(idle_sleep)
                continue
            try:
                result = self.step_together()
            except Exception:  # keep following; the error is logged and the batch retried
                log.exception("the read models failed a batch; retrying")
                stop.wait(1.0)
                continue
            if result.position == result.start and not result.full:
                all_at = result.position
            behind = result.full or result.position < head
            if not behind:
                stop.wait(idle_sleep)
