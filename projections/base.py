"""Shared pieces of every projection: the decoded log entry, the projection contract, and
dialect-neutral upserts."""

from __future__ import annotations

import math
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa

from events.base import COUNTY_TZ

# One MetaData for every read-model table, so `create_all` sets them all up.
metadata = sa.MetaData()

_HIDDEN = ("originator_topic", "class_version")


def type_of_topic(topic: str) -> str:
    """'events.duty_log:DutyRecord.DutyPerformed' -> 'DutyPerformed'."""
    return topic.rsplit(":", 1)[-1].rsplit(".", 1)[-1]


def utc_text(moment: datetime) -> str:
    """Fixed-width UTC text, so string order is time order in SQLite and PostgreSQL alike."""
    # isoformat zero-pads the year (strftime's %Y gives "999" on glibc) and takes half the
    # time of strftime: every audit row is stamped with this on the write path.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def county_day(recorded_at: str) -> str:
    """utc_text -> the county-local date (ISO) it falls on. The county's UTC offsets are whole
    hours (Asia/Shanghai since 1901), so the hour decides the day: one zone conversion per
    hour of the log instead of one per event."""
    return _county_day_of_hour(recorded_at[:13])


@lru_cache(maxsize=16_384)
def _county_day_of_hour(hour: str) -> str:
    return datetime.fromisoformat(hour + ":00:00+00:00").astimezone(COUNTY_TZ).date().isoformat()


# A stored event as the log's table holds it: position, originator id (a UUID, or its text
# where the database stores text), originator version, topic, state (JSON bytes).
StoredRow = tuple[int, uuid.UUID | str, int, str, bytes]


class LoggedEvent:
    """One stored event, decoded straight from its JSON (no domain-object round trip). The
    originator id becomes a UUID only when read: most read models never read it, and a UUID
    per event was a tenth of a rebuild's decoding."""

    __slots__ = ("_originator_id", "_record_id", "data", "originator_version", "position", "recorded_at", "topic",
                 "type")

    def __init__(self, position: int, originator_id: uuid.UUID | str, originator_version: int, topic: str,
                 type: str, recorded_at: str, data: dict[str, Any]) -> None:
        self.position = position
        self._originator_id = originator_id
        self._record_id: str | None = None
        self.originator_version = originator_version
        self.topic = topic
        self.type = type
        self.recorded_at = recorded_at  # utc_text
        self.data = data

    @property
    def originator_id(self) -> uuid.UUID:
        oid = self._originator_id
        if not isinstance(oid, uuid.UUID):
            oid = self._originator_id = uuid.UUID(oid)
        return oid

    @property
    def record_id(self) -> str:
        """``str(originator_id)`` (what read models store), made from the stored text without
        a UUID: SQLite stores 32 hex digits, PostgreSQL's reads give the dashed text. A UUID
        and its text per event were a third of a rebuild's decoding."""
        rid = self._record_id
        if rid is None:
            rid = self._record_id = record_id_text(self._originator_id)
        return rid

    def __repr__(self) -> str:
        return f"LoggedEvent({self.position}, {self.type}, {self._originator_id})"

    @classmethod
    def from_notification(cls, n: Any) -> LoggedEvent:
        return cls.from_row((int(n.id), n.originator_id, int(n.originator_version), n.topic, n.state))

    @classmethod
    def from_row(cls, row: StoredRow) -> LoggedEvent:
        position, originator_id, version, topic, stored = row
        state: dict[str, Any] = orjson.loads(stored)
        recorded = recorded_text(state.pop("timestamp"))
        for key in _HIDDEN:
            state.pop(key, None)
        kind = _types.get(topic)
        if kind is None:
            kind = _types[topic] = type_of_topic(topic)
        return cls(position, originator_id, version, topic, kind, recorded, state)


_types: dict[str, str] = {}
_HEX = frozenset("0123456789abcdef")


def record_id_text(originator_id: uuid.UUID | str) -> str:
    """The canonical text of a stored originator id (``str(uuid.UUID(...))``)."""
    if type(originator_id) is str:
        h = originator_id
        if len(h) == 32 and _HEX.issuperset(h):  # SQLite's uuid.hex: the dashed form by slicing
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        if len(h) == 36 and h[8] == h[13] == h[18] == h[23] == "-" and _HEX.issuperset(h.replace("-", "")):
            return h  # PostgreSQL's originator_id::text
    return str(originator_id if isinstance(originator_id, uuid.UUID) else uuid.UUID(originator_id))


def recorded_text(timestamp: str) -> str:
    """utc_text of a stored ISO timestamp. A stored UTC time is already that text but for
    its tail, so the common case is a slice (fromisoformat + strftime were a third of a
    rebuild's decoding); anything else takes the general path."""
    if timestamp.endswith("+00:00"):
        if len(timestamp) == 25:  # no microseconds
            return timestamp[:19] + ".000000Z"
        if len(timestamp) == 32 and timestamp[19] == ".":
            return timestamp[:26] + "Z"
    return utc_text(datetime.fromisoformat(timestamp))


class Projection(ABC):
    """A read model. ``apply`` receives events in log order, already filtered to
    ``topics``, inside the transaction that also advances the tracking position."""

    name: str
    # Bump when the tables or the policy change: the runner then rebuilds from zero.
    version: int = 1
    # An event this read model cannot apply is set aside (quarantined) and the model moves on;
    # a model whose failure is itself the finding (the hash chain: tampering) says False.
    quarantines: bool = True
    topics: tuple[str, ...]
    tables: tuple[sa.Table, ...]
    # Names of tables an earlier version kept and this one no longer does: a rebuild drops them.
    retired_tables: tuple[str, ...] = ()
    # A read model with its own ``apply_stored`` (decoding only what it reads) that gives the same
    # rows from ``apply``: the one pass hands it the events another read model already decoded.
    decoded_will_do: bool = True

    @abstractmethod
    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None: ...

    def apply_stored(self, conn: sa.Connection, rows: Sequence[StoredRow]) -> None:
        """What the runner calls, with the batch as stored. A hot projection overrides it to
        decode only what it reads; the rest get decoded events."""
        self.apply(conn, [LoggedEvent.from_row(r) for r in rows])


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING of many rows. Rows that all carry the same columns, of
    types the driver takes as they are, go straight to the driver's executemany: SQLAlchemy's
    per-row parameter processing was most of a rebuild's insert cost."""
    if not rows:
        return
    keys = tuple(rows[0])
    if len(keys) > 1 and _plain(table) and all(len(r) == len(keys) for r in rows):
        values = itemgetter(*keys)
        try:
            params = [values(r) for r in rows]
        except KeyError:
            params = None
        if params is not None:
            if conn.dialect.name == "postgresql" and _pg_json_rows(conn, table, keys, params, "ON CONFLICT DO NOTHING"):
                return
            conn.exec_driver_sql(_insert_ignore_sql(conn.dialect, table, keys), params)
            return
    execute_many(conn, table, dialect_insert(conn, table).on_conflict_do_nothing(), rows)


def execute_many(conn: sa.Connection, table: sa.Table, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
    """``conn.execute(stmt, rows)``, the statement compiled once and the rows handed to the
    driver's executemany, where ``table``'s columns need no conversion and every row carries
    the same keys: SQLAlchemy's per-row parameter processing cost more than the writes."""
    if not rows:
        return
    keys = list(rows[0])
    if _plain(table) and all(len(r) == len(keys) for r in rows):
        if conn.dialect.name == "postgresql" and _pg_json_upsert(conn, table, stmt, keys, rows):
            return
        compiled = stmt.compile(dialect=conn.dialect, column_keys=keys)
        params: list[Any] | None
        if compiled.positional:
            names = compiled.positiontup or []
            try:
                params = [tuple([r[n] for n in names]) for r in rows]
            except KeyError:  # a bound value outside the rows (a literal in the statement)
                params = None
        else:
            params = list(rows) if not compiled.binds.keys() - set(keys) else None
        if params is not None:
            conn.exec_driver_sql(str(compiled), params)
            return
    conn.execute(stmt, list(rows))


# Column types whose values SQLAlchemy hands to SQLite and psycopg unchanged (or as the
# driver would convert them itself: a bool to SQLite's 1/0).
_PLAIN_TYPES = (sa.String, sa.Integer, sa.Float, sa.Boolean, sa.LargeBinary)


# PostgreSQL: many rows in ONE statement, the rows a JSON array parameter (as the ledger writes
# its rollups). psycopg's executemany sends a statement per row (pipelined, but the server
# plans and runs each), which was most of a PostgreSQL rebuild's write time outside the ledger.
# Only rows of plain values (text, integers, finite floats, booleans, NULL) take it; the
# driver's executemany stays the path for anything else and for a few rows.
_PG_JSON_MIN_ROWS = 4
_JSON_PLAIN = frozenset({str, int, float, bool, type(None)})


def _pg_json_rows(conn: sa.Connection, table: sa.Table, keys: Sequence[str], params: Sequence[Sequence[Any]],
                  conflict: str) -> bool:
    """``INSERT INTO table (keys) <the rows> <conflict>`` as one statement; False (nothing done)
    where the rows cannot take that path."""
    if len(params) < _PG_JSON_MIN_ROWS:
        return False
    casts = _pg_json_casts(table, tuple(keys))
    if casts is None:
        return False
    seen = {type(v) for row in params for v in row}
    if not seen <= _JSON_PLAIN:
        return False
    if float in seen:
        if not all(math.isfinite(v) for row in params for v in row if type(v) is float):
            return False  # JSON has no NaN or infinity (orjson writes null)
        others = [i for i, cast in enumerate(casts) if cast != "::float8"]
        if any(type(row[i]) is float for row in params for i in others):
            return False  # a float bound to an integer or text column converts differently
    try:
        payload = orjson.dumps(params).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, a lone surrogate
        return False
    conn.exec_driver_sql(_pg_json_insert_sql(conn.dialect, table, tuple(keys), casts) + " " + conflict, (payload,))
    return True


@lru_cache(maxsize=256)
def _pg_json_casts(table: sa.Table, keys: tuple[str, ...]) -> tuple[str, ...] | None:
    """Each column's cast from JSON text: none for text (assigning it to a VARCHAR(n) still
    refuses a longer value, as a bound parameter would); None where a column is not plain."""
    casts = []
    for key in keys:
        t = table.c[key].type
        if isinstance(t, sa.Boolean):
            casts.append("::boolean")
        elif isinstance(t, sa.Integer):
            casts.append("::bigint")
        elif isinstance(t, sa.Float):
            casts.append("::float8")
        elif isinstance(t, sa.String) and not isinstance(t, sa.Enum):
            casts.append("")
        else:
            return None
    return tuple(casts)


@lru_cache(maxsize=1024)
def _pg_json_insert_sql(dialect: sa.Dialect, table: sa.Table, keys: tuple[str, ...], casts: tuple[str, ...]) -> str:
    quote = dialect.identifier_preparer
    columns = ", ".join(quote.quote(table.c[k].name) for k in keys)
    values = ", ".join(f"(r.v->>{i}){cast}" for i, cast in enumerate(casts))
    # WITH ORDINALITY ... ORDER BY: the rows go in as listed (with DO NOTHING the first of two
    # rows with one key is the one kept, as with one statement per row).
    return (f"INSERT INTO {quote.format_table(table)} ({columns}) SELECT {values} "
            f"FROM json_array_elements(%s::json) WITH ORDINALITY AS r(v, n) ORDER BY r.n")


def _pg_json_upsert(conn: sa.Connection, table: sa.Table, stmt: Any, keys: Sequence[str],
                    rows: Sequence[dict[str, Any]]) -> bool:
    """An INSERT ... ON CONFLICT of ``rows`` as one statement; False (nothing done) where it
    cannot be: not such an INSERT, a conflict clause with bound values, or (DO UPDATE) two
    rows with one conflict key, which one statement may not update twice."""
    if len(rows) < _PG_JSON_MIN_ROWS or not isinstance(stmt, sa.Insert):
        return False
    conflict = _pg_conflict_clause(conn.dialect, stmt, tuple(keys))
    if conflict is None:
        return False
    clause, target = conflict
    if target is not None:
        try:
            if len({tuple([r[k] for k in target]) for r in rows}) != len(rows):
                return False
        except KeyError:
            return False
    try:
        params = [tuple([r[k] for k in keys]) for r in rows]
    except KeyError:
        return False
    return _pg_json_rows(conn, table, keys, params, clause)


def _pg_conflict_clause(dialect: sa.Dialect, stmt: Any,
                        keys: tuple[str, ...]) -> tuple[str, tuple[str, ...] | None] | None:
    """The statement's ``ON CONFLICT ...`` text and, for DO UPDATE, the conflict target's
    column keys; None where it has none, binds values of its own or names no columns."""
    from sqlalchemy.dialects.postgresql.dml import OnConflictDoNothing, OnConflictDoUpdate

    post = getattr(stmt, "_post_values_clause", None)
    if not isinstance(post, OnConflictDoNothing | OnConflictDoUpdate):
        return None
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    if compiled.binds.keys() - set(keys):
        return None  # a value bound in the statement itself (its SET clause)
    sql = str(compiled)
    at = sql.find(" ON CONFLICT ")
    if at < 0 or "%(" in sql[at:] or "%s" in sql[at:]:
        return None
    if isinstance(post, OnConflictDoNothing):
        return sql[at + 1:], None
    target = post.inferred_target_elements
    if not target or post.constraint_target is not None:
        return None
    names = tuple(t if isinstance(t, str) else getattr(t, "key", None) for t in target)
    if any(not isinstance(n, str) for n in names):
        return None
    return sql[at + 1:], names  # type: ignore[return-value]


@lru_cache(maxsize=256)
def _plain(table: sa.Table) -> bool:
    return all(isinstance(c.type, _PLAIN_TYPES) and not isinstance(c.type, sa.Enum)
               and (isinstance(c.type, sa.Float) or not isinstance(c.type, sa.Numeric)) for c in table.c)


@lru_cache(maxsize=1024)
def _insert_ignore_sql(dialect: sa.Dialect, table: sa.Table, keys: tuple[str, ...]) -> str:
    if dialect.name not in ("sqlite", "postgresql"):
        raise NotImplementedError(dialect.name)
    quote = dialect.identifier_preparer
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    columns = ", ".join(quote.quote(table.c[k].name) for k in keys)
    return (f"INSERT INTO {quote.format_table(table)} ({columns}) VALUES ({', '.join([mark] * len(keys))}) "
            f"ON CONFLICT DO NOTHING")


def upsert_add(
    conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], *, keys: Iterable[str],
    add: Iterable[str] = (), greatest: Iterable[str] = (), replace: Iterable[str] = (),
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE: ``add`` columns are summed, ``greatest``
    keep the larger value, ``replace`` take the new value."""
    if not rows:
        return
    ins = dialect_insert(conn, table)
    excluded = ins.excluded
    sets: dict[str, Any] = {}
    for col in add:
        sets[col] = table.c[col] + excluded[col]
    for col in greatest:
        fn = sa.func.max if conn.dialect.name == "sqlite" else sa.func.greatest
        sets[col] = fn(table.c[col], excluded[col])
    for col in replace:
        sets[col] = excluded[col]
    execute_many(conn, table, ins.on_conflict_do_update(index_elements=list(keys), set_=sets), rows)


def dialect_insert(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT (with ON CONFLICT); each dialect module is imported when first
    used, so a SQLite process never loads PostgreSQL's."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    raise NotImplementedError(conn.dialect.name)
