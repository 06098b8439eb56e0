"""Event store and read-model database wiring from one LIANXI_DATABASE_URL.

SQLite (default): WAL with synchronous=FULL so an acknowledged write survives power loss.
PostgreSQL: the eventsourcing postgres module with its default LOCK TABLE insert path.
POSTGRES_ENABLE_DB_FUNCTIONS is never set: its insert skips the lock and followers of the
log then miss events.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlparse

import orjson
import sqlalchemy as sa
from eventsourcing.persistence import StoredEvent, Transcoder
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
)

SQLITE_BUSY_TIMEOUT_S = 30


class OrjsonTranscoder(Transcoder):
    """Event state is JSON-native by design (events/base.py); only eventsourcing's own
    ``timestamp`` needs turning back into a datetime. orjson is several times faster than
    the stdlib json the default transcoder uses."""

    def encode(self, obj: Any) -> bytes:
        # orjson returns its (page-sized) write buffer shrunk in place, and the allocator
        # cannot reuse the freed tail: every event kept in memory (a batch waiting to be
        # inserted) held ~4 KiB and cost a page fault. A right-sized copy is 3x cheaper.
        return bytes(memoryview(orjson.dumps(obj)))

    def decode(self, data: bytes) -> Any:
        state = orjson.loads(data)
        ts = state.get("timestamp")
        if isinstance(ts, str):
            state["timestamp"] = dt.datetime.fromisoformat(ts)
        return state


class SQLiteWriteGate:
    """One per database file and process: this process's writers (group commit, bulk
    append, projections, audit, tokens) queue here for SQLite's single write lock.

    Without it they meet inside SQLite, whose busy handler polls with sleeps of 1, 2, 5,
    10 ... 100 ms, so a writer can sleep well past the moment the lock came free; a Python
    lock hands over at once. Other processes (the CLI, more workers) still meet the busy
    handler. A writer that cannot get the gate within the busy timeout goes ahead anyway and
    SQLite arbitrates, so a missed release can slow writers but never block them for good.
    """

    _gates: ClassVar[dict[str, SQLiteWriteGate]] = {}
    _gates_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def for_path(cls, path: str | Path) -> SQLiteWriteGate:
        key = os.path.realpath(path)
        with cls._gates_lock:
            gate = cls._gates.get(key)
            if gate is None:
                gate = cls._gates[key] = cls()
            return gate

    def acquire(self) -> bool:
        return self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_S)

    def release(self) -> None:
        self._lock.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        got = self.acquire()
        try:
            yield
        finally:
            if got:
                self.release()


class GatedSQLiteConnection(sqlite3.Connection):
    """A pysqlite connection for SQLAlchemy writer engines: BEGIN IMMEDIATE takes the
    process's write gate (see ``Database.sqlalchemy_engine``); the commit or rollback that
    ends the transaction gives it back."""

    lx_gate: SQLiteWriteGate | None = None
    lx_holds_gate: bool = False

    def lx_release(self) -> None:
        if self.lx_holds_gate and self.lx_gate is not None:
            self.lx_holds_gate = False
            self.lx_gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.lx_release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.lx_release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.lx_release()


class GatedSQLiteDatastore(SQLiteDatastore):
    """eventsourcing's SQLite datastore whose write transactions pass the write gate."""

    gate: SQLiteWriteGate

    @contextmanager
    def get_connection(self, *, commit: bool) -> Iterator[SQLiteConnection]:
        if not commit:
            with super().get_connection(commit=False) as conn:
                yield conn
            return
        with self.gate.held(), super().get_connection(commit=True) as conn:
            yield conn


class DurableSQLiteConnectionPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        conn = super()._create_connection()
        raw: sqlite3.Connection = conn._sqlite_conn  # the only handle on which to set pragmas
        raw.execute("PRAGMA synchronous=FULL")
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        return conn


# (table, columns, rows): rows for a table beside the log, written with a batch of events.
SideRows = tuple[str, tuple[str, ...], Sequence[tuple[Any, ...]]]


# Parameters per side-row INSERT: within SQLite's default limit (32,766) and PostgreSQL's (65,535).
SIDE_PARAMS_PER_STATEMENT = 16_000


def merge_side_rows(side: Sequence[SideRows]) -> list[SideRows]:
    """One entry per (table, columns), rows in the order given: a group commit hands each
    writer's audit row as an entry of its own, and one INSERT per entry cost the committer an
    ``execute`` (a GIL release) per writer. Ids come out as before: each table's rows keep
    their order."""
    merged: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = {}
    for table, columns, rows in side:
        merged.setdefault((table, columns), []).extend(rows)
    return [(table, columns, rows) for (table, columns), rows in merged.items()]


class SideRowsInTransaction:
    """Recorder mixin: ``Application.save(..., side_rows=[(table, columns, rows)])`` inserts
    those rows in the transaction that inserts the events (eventsourcing hands save's keyword
    arguments down to ``_insert_events``, as it does tracking records). The audit trail uses
    it so a group commit of events and audit rows costs one commit, not two."""

    param_mark = "?"

    def _insert_events(self, *args: Any, **kwargs: Any) -> Any:
        c = args[0]  # the transaction's cursor (sqlite3 or psycopg)
        side = merge_side_rows(kwargs.get("side_rows") or ())
        for table, columns, rows in side:
            one = "(" + ", ".join([self.param_mark] * len(columns)) + ")"
            # Multi-row VALUES, not executemany: sqlite3 releases the GIL once per executed
            # row, and the committer then waits for the event loop's thread to give it back.
            per = max(1, SIDE_PARAMS_PER_STATEMENT // len(columns))
            for i in range(0, len(rows), per):
                chunk = rows[i:i + per]
                c.execute(f"INSERT INTO {self._side_table(table)} ({', '.join(columns)}) VALUES "
                          + ", ".join([one] * len(chunk)), [value for row in chunk for value in row])
        return super()._insert_events(*args, **kwargs)  # type: ignore[misc]

    def _side_table(self, table: str) -> str:
        return table


# Rows per INSERT statement. sqlite3 binds a statement's parameters holding the GIL and
# releases it while SQLite runs; ``executemany`` does that once per row, so a writer
# competing with a busy Python thread (the bulk appender's mapper) waited for the GIL (up
# to the 5 ms switch interval) at every row, now once per 4,000. 16,000 parameters: within
# SQLite's default limit of 32,766.
ROWS_PER_STATEMENT = 4000
# A bulk load's connection (``SQLiteBulkWriter``): a page cache that holds a 20,000-event
# batch's dirty pages (~25 MiB: the rows plus the random-key primary-key index; SQLite's
# default 2 MiB spills them into the WAL before COMMIT and reads them back), and a WAL
# checkpointed every 64 MiB instead of 4 MiB (an index page rewritten by several batches
# is copied into the database once).
BULK_CACHE_KIB = 64 * 1024
BULK_WAL_PAGES = 16384


def sqlite_originator_id(originator_id: uuid.UUID | str) -> str:
    """How eventsourcing's SQLite recorder stores an originator id."""
    return originator_id.hex if isinstance(originator_id, uuid.UUID) else originator_id


class BatchSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """Inserts a transaction's events with multi-row ``INSERT ... VALUES`` statements
    (ROWS_PER_STATEMENT rows each) instead of one ``execute`` per row (eventsourcing does
    that to read each ``lastrowid``). Group-commit batches and bulk appends are several
    times faster; notification ids still come back.

    The ids are worked out, then checked: the transaction holds SQLite's write lock from
    its first insert, and SQLite gives a new row ``max(rowid) + 1`` (a multi-row VALUES in
    order), so the batch's rows are ``max - n + 1 .. max``. The first and last rows are
    looked up to confirm; if either differs (only possible once rowids reach 2**63 - 1),
    every row is looked up.
    """

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name)
        self._select_rowid = (
            f"SELECT rowid FROM {self.events_table_name} WHERE originator_id=? AND originator_version=?"
        )

    def bulk_writer(self) -> SQLiteBulkWriter:
        return SQLiteBulkWriter(self)

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any,
    ) -> Sequence[int] | None:
        if len(stored_events) <= 1:
            return super()._insert_events(c, stored_events, **kwargs)
        rows = [(sqlite_originator_id(s.originator_id), s.originator_version, s.topic, s.state) for s in stored_events]
        if len(rows) > ROWS_PER_STATEMENT:
            return self._insert_rows(c, rows)
        return self._insert_returning(c, rows)

    def _insert_returning(self, c: SQLiteCursor, rows: Sequence[tuple[str, int, str, bytes]]) -> list[int]:
        """A group commit's events in one statement that also answers their ids: each
        ``execute`` releases the GIL and the committer then waits for the event loop's thread
        to give it back, so the three look-ups of ``_insert_rows`` cost more than they run.
        RETURNING's order is unspecified, so rows are matched by (originator id, version)."""
        values = ",".join(["(?,?,?,?)"] * len(rows))
        c.execute(f"INSERT INTO {self.events_table_name} VALUES {values} "
                  "RETURNING originator_id, originator_version, rowid", list(chain.from_iterable(rows)))
        ids = {(r[0], r[1]): r[2] for r in c.fetchall()}
        return [ids[(r[0], r[1])] for r in rows]

    def _insert_rows(self, c: SQLiteCursor, rows: Sequence[tuple[str, int, str, bytes]]) -> list[int]:
        """Rows are (originator id, version, topic, state) as stored; returns their ids."""
        if not rows:
            return []
        for i in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[i:i + ROWS_PER_STATEMENT]
            values = ",".join(["(?,?,?,?)"] * len(chunk))
            c.execute(f"INSERT INTO {self.events_table_name} VALUES {values}", list(chain.from_iterable(chunk)))
        c.execute(self.select_max_notification_id_statement)
        last = int(c.fetchone()[0])
        first = last - len(rows) + 1
        if self._rowid(c, rows[0]) == first and self._rowid(c, rows[-1]) == last:
            return list(range(first, last + 1))
        return [self._rowid(c, r) for r in rows]

    def _rowid(self, c: SQLiteCursor, row: tuple[Any, ...]) -> int:
        c.execute(self._select_rowid, row[:2])
        return int(c.fetchone()[0])

    def position_of(self, originator_id: uuid.UUID, version: int) -> int | None:
        """Log position (rowid) of one stored event, or None."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._select_rowid, (sqlite_originator_id(originator_id), version))
            row = c.fetchone()
        return None if row is None else int(row[0])


def bulk_pragmas(raw: sqlite3.Connection) -> None:
    """A bulk loader's page cache and checkpoint interval (the appender here, the demo's
    read-model follower): SQLite's 2 MB cache and 4 MB checkpoints re-read and re-write a
    growing index page by page."""
    raw.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    raw.execute(f"PRAGMA wal_autocheckpoint={BULK_WAL_PAGES}")


class SQLiteBulkWriter:
    """The connection of one bulk load (services/store/bulk.py), its own so that its settings
    (BULK_CACHE_KIB, BULK_WAL_PAGES) end with it and every other writer keeps SQLite's
    defaults. Durability is unchanged: synchronous=FULL, one transaction per batch, through
    the process's write gate. Closing runs a passive checkpoint (it never waits for
    readers), so the WAL the load grew is copied back and is reused from its start by the
    next writer; it stays bounded by BULK_WAL_PAGES plus one batch."""

    key = staticmethod(sqlite_originator_id)

    def __init__(self, recorder: BatchSQLiteApplicationRecorder) -> None:
        self.recorder = recorder
        pool = recorder.datastore.pool
        self.gate = SQLiteWriteGate.for_path(pool.db_name)
        self.conn = pool._create_connection()
        bulk_pragmas(self.conn._sqlite_conn)

    def insert(self, rows: Sequence[tuple[str, int, str, bytes]]) -> list[int]:
        """One transaction; rows as ``BatchSQLiteApplicationRecorder._insert_rows`` takes them."""
        with self.gate.held(), self.conn.transaction(commit=True) as c:
            return self.recorder._insert_rows(c, rows)

    def close(self) -> None:
        try:
            self.conn._sqlite_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            self.conn.close()

    def __enter__(self) -> SQLiteBulkWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LianxiSQLiteRecorder(SideRowsInTransaction, BatchSQLiteApplicationRecorder):
    pass


class DurableSQLiteFactory(SQLiteFactory):
    """SQLiteFactory whose connections use synchronous=FULL (eventsourcing leaves it unset)
    and whose application recorder inserts batches with multi-row INSERTs."""

    application_recorder_class = LianxiSQLiteRecorder

    def __init__(self, env: Any):
        super().__init__(env)
        old = self.datastore
        self.datastore = GatedSQLiteDatastore(
            db_name=old.pool.db_name,
            lock_timeout=SQLITE_BUSY_TIMEOUT_S,
            single_row_tracking=old.single_row_tracking,
            originator_id_type=old.originator_id_type,
        )
        self.datastore.gate = SQLiteWriteGate.for_path(old.pool.db_name)
        self.datastore.pool = DurableSQLiteConnectionPool(
            db_name=old.pool.db_name, lock_timeout=SQLITE_BUSY_TIMEOUT_S, pool_size=5, max_overflow=10,
        )


# Processes starting together (several `lianxi serve`, workers, relay, scheduler) each run
# their CREATE ... IF NOT EXISTS / CREATE OR REPLACE steps; on PostgreSQL two of them at once
# fail ("tuple concurrently updated", duplicate pg_type). Every setup step takes this one
# session advisory lock. SQLite serialises DDL through its own file lock.
DDL_LOCK_KEY = 0x6C69616E7869  # "lianxi"


@contextmanager
def ddl_lock(engine: sa.Engine) -> Iterator[None]:
    """Hold the cross-process DDL lock while creating tables. Not re-entrant across
    connections: never nest two ``ddl_lock`` blocks."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_advisory_lock(%s)", (DDL_LOCK_KEY,))
        conn.commit()
        try:
            yield
        finally:
            conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (DDL_LOCK_KEY,))
            conn.commit()


@dataclass(frozen=True)
class Database:
    """Where the log and the read models live."""

    url: str
    kind: str  # "sqlite" | "postgres"
    sqlite_path: Path | None = None
    pg: dict[str, str] | None = None
    schema: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Database:
        parsed = urlparse(url)
        if parsed.scheme in ("sqlite", "sqlite3"):
            # sqlite:///relative/or/absolute ; sqlite:////abs
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if not path:
                raise ValueError(f"LIANXI_DATABASE_URL {url!r}: a SQLite URL needs a file path")
            return cls(url=url, kind="sqlite", sqlite_path=Path(path))
        if parsed.scheme in ("postgres", "postgresql", "postgresql+psycopg"):
            query = parse_qs(parsed.query)
            schema = query.get("schema", [None])[0]
            pg = {
                "POSTGRES_DBNAME": (parsed.path or "/").lstrip("/") or "postgres",
                "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(parsed.port or 5432),
                "POSTGRES_USER": unquote(parsed.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            }
            return cls(url=url, kind="postgres", pg=pg, schema=schema)
        raise ValueError(
            f"LIANXI_DATABASE_URL {url!r}: scheme must be sqlite:/// or postgresql://"
        )

    def eventsourcing_env(self) -> dict[str, str]:
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            return {
                "PERSISTENCE_MODULE": "services.store.database:DurableSQLiteFactory",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "SQLITE_LOCK_TIMEOUT": str(SQLITE_BUSY_TIMEOUT_S),
            }
        assert self.pg is not None
        env = {
            "PERSISTENCE_MODULE": "services.store.postgres:SerialisedPostgresFactory",
            **self.pg,
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        }
        if self.schema:
            env["POSTGRES_SCHEMA"] = self.schema
        return env

    def sqlalchemy_engine(self, *, writer: bool = True, **kw: Any) -> sa.Engine:
        """A writer engine takes SQLite's write lock at BEGIN (no lock-upgrade deadlocks);
        a reader engine does not, so reads never queue behind projection batches."""
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            gate = SQLiteWriteGate.for_path(self.sqlite_path)
            sqlite_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
            if writer:
                sqlite_args["factory"] = GatedSQLiteConnection
            engine = sa.create_engine(f"sqlite:///{self.sqlite_path}", connect_args=sqlite_args, **kw)

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
                # Let SQLAlchemy, not pysqlite, decide when transactions begin.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
                cur.close()
                if isinstance(dbapi_conn, GatedSQLiteConnection):
                    dbapi_conn.lx_gate = gate

            @sa.event.listens_for(engine, "begin")
            def _begin(conn: sa.Connection) -> None:
                if not writer:
                    conn.exec_driver_sql("BEGIN")
                    return
                dbapi_conn = conn.connection.dbapi_connection
                gated = isinstance(dbapi_conn, GatedSQLiteConnection) and not dbapi_conn.lx_holds_gate
                if gated:
                    assert isinstance(dbapi_conn, GatedSQLiteConnection)
                    dbapi_conn.lx_holds_gate = gate.acquire()
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                except BaseException:
                    if gated:
                        assert isinstance(dbapi_conn, GatedSQLiteConnection)
                        dbapi_conn.lx_release()
                    raise

            return engine
        assert self.pg is not None
        pg = self.pg
        auth = pg["POSTGRES_USER"] + (f":{pg['POSTGRES_PASSWORD']}" if pg["POSTGRES_PASSWORD"] else "")
        url = f"postgresql+psycopg://{auth}@{pg['POSTGRES_HOST']}:{pg['POSTGRES_PORT']}/{pg['POSTGRES_DBNAME']}"
        connect_args: dict[str, Any] = {}
        if self.schema:
            connect_args["options"] = f"-csearch_path={self.schema}"
        return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True, **kw)

    def ensure_schema(self) -> None:
        """Create the PostgreSQL schema named in the URL, if any."""
        if self.kind != "postgres" or not self.schema:
            return
        engine = Database(url=self.url, kind="postgres", pg=self.pg).sqlalchemy_engine()
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
        engine.dispose()
