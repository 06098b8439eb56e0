"""The PostgreSQL side of the event store: eventsourcing's recorder with our DDL lock, side
rows in the events' transaction, and the bulk writer. A module of its own so that psycopg is
imported only where the store is PostgreSQL (eventsourcing loads it by the
``PERSISTENCE_MODULE`` topic): a SQLite command (a rebuild) never pays for it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory

from services.store.database import DDL_LOCK_KEY, SideRowsInTransaction


class SerialisedPostgresApplicationRecorder(SideRowsInTransaction, PostgresApplicationRecorder):
    """eventsourcing re-runs its DDL at every start; the same lock as ``ddl_lock``."""

    param_mark = "%s"

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
