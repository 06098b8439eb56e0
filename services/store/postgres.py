"""The PostgreSQL side of the event store: eventsourcing's recorder with our DDL lock, side
rows in the events' transaction, and the bulk writer. A module of its own so that psycopg is
imported only where the store is PostgreSQL (eventsourcing loads it by the
``PERSISTENCE_MODULE`` topic): a SQLite command (a rebuild) never pays for it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import retry
from psycopg.adapt import Transformer
from psycopg.sql import SQL, Composable, Identifier

from services.store.database import DDL_LOCK_KEY, SideRows, SideRowsInTransaction, merge_side_rows

# Events of one transaction sent as one query string (``insert_events``); a larger save (a
# catalogue, an import) keeps eventsourcing's insert, whose composite-array parameter costs
# less to build than literals.
ONE_TRIP_MAX_EVENTS = 1000


class SerialisedPostgresApplicationRecorder(SideRowsInTransaction, PostgresApplicationRecorder):
    """eventsourcing re-runs its DDL at every start; the same lock as ``ddl_lock``."""

    param_mark = "%s"
    _one_trip_lock: bytes = b""

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """One round trip per transaction: BEGIN, the side rows, the table lock, the events
        and COMMIT go to the server as one simple-protocol query string, values bound
        client-side as literals. eventsourcing's pipeline waited on the socket three times (the
        side rows' flush, its sync for the ids, COMMIT), and in this process each wait meant
        taking the GIL back from the event loop; under the table lock nothing now waits on the
        client. The lock, the NOTIFY and the gap-free notification ids in commit order are
        eventsourcing's, unchanged."""
        if len(stored_events) > ONE_TRIP_MAX_EVENTS or self.datastore.enable_db_functions:
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return ids
        one_trip: list[int] | None = self._insert_in_one_trip(stored_events, kwargs.get("side_rows") or ())
        return one_trip

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_in_one_trip(self, stored_events: Sequence[StoredEvent], side: Sequence[SideRows]) -> list[int] | None:
        with self.datastore.get_connection() as conn:
            query = self._one_trip_query(conn, stored_events, side)
            cur = conn.cursor()
            try:
                cur.execute(query)
                ids: list[int] | None = None
                while True:
                    if cur.description is not None:  # the events' INSERT ... RETURNING
                        ids = [row["notification_id"] for row in cur.fetchall()]
                    if not cur.nextset():
                        break
            except BaseException:
                # A failed statement skips the rest, COMMIT included: end the aborted
                # transaction here rather than hand it back to the pool.
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
                raise
        if stored_events and (ids is None or len(ids) != len(stored_events)):
            raise AssertionError(f"{len(stored_events)} events inserted, {ids!r} notification ids returned")
        return ids

    def _one_trip_query(self, conn: psycopg.Connection[Any], stored_events: Sequence[StoredEvent],
                        side: Sequence[SideRows]) -> bytes:
        literal = Transformer(conn).as_literal
        parts = [b"BEGIN"]
        # Side rows first, as SideRowsInTransaction inserts them: before the lock, not under it.
        for table, columns, rows in merge_side_rows(side):
            if rows:
                parts.append(f"INSERT INTO {self._side_table(table)} ({', '.join(columns)}) VALUES ".encode()
                             + b",".join([b"(" + b",".join([literal(v) for v in row]) + b")" for row in rows]))
        if stored_events:
            if not self._one_trip_lock:
                statements = [*self.lock_table_statements, SQL("NOTIFY {0}").format(Identifier(self.channel_name))]
                self._one_trip_lock = b";".join(
                    (st.as_string(conn) if isinstance(st, Composable) else str(st)).encode() for st in statements)
            parts.append(self._one_trip_lock)
            # VALUES in row order draw notification ids in row order, as unnest(...) does.
            parts.append(
                f"INSERT INTO {self.qualified_events_table} (originator_id, originator_version, topic, state) "
                "VALUES ".encode()
                + b",".join([b"(" + literal(e.originator_id) + b"," + literal(e.originator_version) + b","
                             + literal(e.topic) + b"," + literal(e.state) + b")" for e in stored_events])
                + b" RETURNING notification_id")
        parts.append(b"COMMIT")
        return b";".join(parts)

    def bulk_writer(self) -> PostgresBulkWriter:
        return PostgresBulkWriter(self)

    @property
    def qualified_events_table(self) -> str:
        schema = self.datastore.schema
        return f'"{schema}"."{self.events_table_name}"' if schema else f'"{self.events_table_name}"'

    @property
    def select_position_statement(self) -> str:
        return (f"SELECT notification_id AS id FROM {self.qualified_events_table} "
                "WHERE originator_id=%s AND originator_version=%s")

    def position_of(self, originator_id: uuid.UUID, version: int) -> int | None:
        """Log position (notification id) of one stored event, or None."""
        with self.datastore.transaction(commit=False) as cur:
            cur.execute(self.select_position_statement, (originator_id, version))
            row = cur.fetchone()
        return None if row is None else int(row["id"])

    def _side_table(self, table: str) -> str:
        return f'"{self.datastore.schema}"."{table}"' if self.datastore.schema else table

    def create_table(self) -> None:
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (DDL_LOCK_KEY,))
            conn.commit()
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (DDL_LOCK_KEY,))
                conn.commit()


class PostgresBulkWriter:
    """Bulk loads (services/store/bulk.py) on PostgreSQL: a batch is one transaction that takes
    the same ``LOCK TABLE ... EXCLUSIVE`` and NOTIFY as eventsourcing's insert, then
    streams the rows with binary COPY. eventsourcing's own insert sends a batch as one
    composite-array parameter in pipeline mode, which with psycopg 3.3 hangs for good from
    ~15,000 events (the server waits for the rest of the message, the client for the sync).

    Notification ids stay exact: under the lock no other transaction draws from the
    ``notification_id`` sequence, and COPY draws in row order, so the batch's ids are
    ``currval - n + 1 .. currval``. The first and last rows are looked up to confirm; if
    either differs, every row is looked up."""

    def __init__(self, recorder: SerialisedPostgresApplicationRecorder) -> None:
        self.recorder = recorder
        ds = recorder.datastore
        table = recorder.qualified_events_table
        self._types = [ds.originator_id_type, "int8", "text", "bytea"]
        self._copy = f"COPY {table} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
        self._last_id = f"SELECT currval(pg_get_serial_sequence('{table}', 'notification_id')) AS id"
        self._select_id = recorder.select_position_statement

    @staticmethod
    def key(originator_id: Any) -> Any:
        return originator_id

    def insert(self, rows: Sequence[tuple[Any, int, str, bytes]]) -> list[int]:
        if not rows:
            return []
        with self.recorder.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cur:
            self.recorder._lock_table(cur)
            self.recorder._notify_channel(cur)
            with cur.copy(self._copy) as copy:
                copy.set_types(self._types)
                for row in rows:
                    copy.write_row(row)
            last = int(self._one(cur, self._last_id))
            first = last - len(rows) + 1
            if self._id(cur, rows[0]) == first and self._id(cur, rows[-1]) == last:
                return list(range(first, last + 1))
            return [self._id(cur, r) for r in rows]

    def _id(self, cur: Any, row: tuple[Any, ...]) -> int:
        return int(self._one(cur, self._select_id, row[:2]))

    @staticmethod
    def _one(cur: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
        cur.execute(sql, params)
        return cur.fetchone()["id"]

    def close(self) -> None:
        pass


class SerialisedPostgresFactory(PostgresFactory):
    application_recorder_class = SerialisedPostgresApplicationRecorder
