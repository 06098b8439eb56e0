"""Tamper evidence for the event log: a hash chain over every stored event, in log order.

Each link is ``sha256(previous link || canonical bytes of the stored event)`` where the
canonical bytes are the event's position, originator id, originator version, topic and
state exactly as stored (length-prefixed, so no two different rows encode alike). The
position is inside the link, so deleting, inserting or swapping rows breaks the chain as
surely as editing one byte.

The chain lives beside the event store in ``log_chain(position, hash)``. It is kept by a
follower, ``HashChainProjection``, that the projection runner drives like any read model
(batched, with its tracking position in the same transaction), so it runs wherever
projections run, shows in ``/readyz`` lag, and ``verify`` / ``review`` first bring it up to
the head. It cannot fall behind silently and it cannot be rebuilt over a tampered log:
when it meets a position it has already linked, it recomputes the link and refuses (the
batch fails, loudly, every retry) if the stored event no longer matches. Its table is
therefore not among the projection's ``tables``: a ``projections rebuild`` re-verifies the
chain instead of dropping it.

Someone with write access to the database can still rewrite events and chain together;
signed checkpoints (services/security/checkpoint.py) kept off the platform catch that.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from projections.base import LoggedEvent, Projection, StoredRow
from projections.runner import tracking

GENESIS = b"\x00" * 32
CHAIN_NAME = "log_chain"
# The application name is pinned ("lianxi"); eventsourcing's PostgreSQL table derives from it.
PG_EVENTS_TABLE = "lianxi_events"
SQLITE_EVENTS_TABLE = "stored_events"
FETCH = 5000

# Its own MetaData: `metadata.create_all/drop_all` of the read models never touch it.
chain_metadata = sa.MetaData()
log_chain = sa.Table(
    "log_chain",
    chain_metadata,
    sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

RawRow = tuple[int, Any, int, str, bytes]  # position, originator_id, originator_version, topic, state


class ChainBroken(Exception):
    """The log does not match its chain (or its checkpoint) from ``position`` on."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"hash chain broken at position {position}: {reason}")
        self.position = position
        self.reason = reason


_HEADER = struct.Struct(">qqIQ")  # position, originator version, topic length, state length
_topics: dict[str, bytes] = {}


def _oid_bytes(originator_id: Any) -> bytes:
    # PostgreSQL returns uuid.UUID; SQLite stores hex text, which the recorder reads back as a
    # UUID. Text that is not a UUID (only a tampered row) hashes as itself, so it never matches.
    if type(originator_id) is str:  # SQLite's hex text, the common case first
        text = originator_id
    elif isinstance(originator_id, uuid.UUID):
        return b"u" + originator_id.bytes
    else:
        text = str(originator_id)
    if len(text) == 32:
        try:
            return b"u" + bytes.fromhex(text)
        except ValueError:
            pass
    try:
        return b"u" + uuid.UUID(text).bytes
    except ValueError:
        raw = text.encode()
        return b"t" + len(raw).to_bytes(4, "big") + raw


def as_bytes(state: Any) -> bytes:
    """Stored state is BLOB/bytea; a row edited by hand may come back as text."""
    return state if type(state) is bytes else (state.encode() if isinstance(state, str) else bytes(state))


def link(prev: bytes, position: int, originator_id: Any, version: int, topic: str, state: Any) -> bytes:
    """sha256(prev || position, version, lengths || originator id || topic || state)."""
    t = _topics.get(topic)
    if t is None:
        t = topic.encode()
        if len(_topics) < 10_000:
            _topics[topic] = t
    s = as_bytes(state)
    return hashlib.sha256(
        prev + _HEADER.pack(position, version, len(t), len(s)) + _oid_bytes(originator_id) + t + s
    ).digest()


def setup(engine: sa.Engine) -> None:
    chain_metadata.create_all(engine, checkfirst=True)


def _events_sql(dialect: str) -> tuple[str, str]:
    if dialect == "sqlite":
        return SQLITE_EVENTS_TABLE, "rowid"
    return PG_EVENTS_TABLE, "notification_id"


def _prev_hash(conn: sa.Connection, before: int) -> tuple[int, bytes]:
    row = conn.execute(
        sa.select(log_chain.c.position, log_chain.c.hash).where(log_chain.c.position < before)
        .order_by(log_chain.c.position.desc()).limit(1)
    ).first()
    return (0, GENESIS) if row is None else (int(row[0]), bytes(row[1]))


class HashChainProjection(Projection):
    """Links every event (all topics) into ``log_chain``. Version 1 forever: the links are
    the evidence, so the policy never changes. It takes the batch as stored (the runner's raw
    rows, read in the batch's own transaction), never decoded events."""

    name = CHAIN_NAME
    version = 1
    topics: tuple[str, ...] = ()  # every event
    tables: tuple[sa.Table, ...] = ()  # see the module docstring: never dropped by a rebuild
    quarantines = False  # a link that does not match is tampering, raised and never skipped
    decoded_will_do = False  # it hashes the bytes as stored

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        raise NotImplementedError("the chain links stored rows (apply_stored), not decoded events")

    def apply_stored(self, conn: sa.Connection, rows: Sequence[StoredRow]) -> None:
        if rows:
            link_rows(conn, rows)


def link_rows(conn: sa.Connection, rows: Sequence[RawRow]) -> None:
    """Links ``rows`` (consecutive stored events, in log order) after the chain's last link
    before them. A position already linked (after a rebuild) is re-checked, never relinked.

    A batch the chain already covers whole (a rebuild) is checked by its last link: each link
    hashes the one before it, so the recomputed last link equals the recorded one only if
    every event of the batch (and its position) is the one linked then. Only when it differs,
    or the batch is partly new, are the recorded links read one by one, to link the new ones
    and to name the first position that no longer matches."""
    first, last = rows[0][0], rows[-1][0]
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    # Plain driver statements: SQLAlchemy's per-row result and parameter processing cost
    # more than the hashing.
    linked, last_link = conn.exec_driver_sql(
        f"SELECT count(*), (SELECT hash FROM log_chain WHERE position = {mark}) FROM log_chain "
        f"WHERE position >= {mark} AND position <= {mark}", (last, first, last)).one()
    _, prev = _prev_hash(conn, first)
    links = _links(prev, rows)
    if linked == 0:
        conn.exec_driver_sql(f"INSERT INTO log_chain (position, hash) VALUES ({mark}, {mark})", links)
        return
    if linked == len(rows) and last_link is not None and bytes(last_link) == links[-1][1]:
        return
    existing = {
        int(p): bytes(h) for p, h in conn.exec_driver_sql(
            f"SELECT position, hash FROM log_chain WHERE position >= {mark} AND position <= {mark}", (first, last),
        ).fetchall()
    }
    new = []
    for pos, link_ in links:
        known = existing.get(pos)
        if known is None:
            new.append((pos, link_))
        elif known != link_:
            raise ChainBroken(pos, "the stored event no longer matches the link recorded for it")
    if new:
        conn.exec_driver_sql(f"INSERT INTO log_chain (position, hash) VALUES ({mark}, {mark})", new)


def _links(prev: bytes, rows: Sequence[RawRow]) -> list[tuple[int, bytes]]:
    """(position, link) of each row after ``prev``: ``link`` inlined, each originator's bytes
    made once per batch (a rebuild hashes every event of the log here)."""
    out = []
    sha256, pack = hashlib.sha256, _HEADER.pack
    oids: dict[Any, bytes] = {}
    for pos, oid, ver, topic, state in rows:
        t = _topics.get(topic)
        if t is None:
            t = topic.encode()
            if len(_topics) < 10_000:
                _topics[topic] = t
        o = oids.get(oid)
        if o is None:
            o = oids[oid] = _oid_bytes(oid)
        s = state if type(state) is bytes else as_bytes(state)
        prev = sha256(b"".join((prev, pack(pos, ver, len(t), len(s)), o, t, s))).digest()
        out.append((pos, prev))
    return out


def catch_up(engine: sa.Engine, *, batch: int = 20_000, progress: Callable[[int], None] | None = None) -> int:
    """Brings the chain to the head of this database's own log, fast: raw rows in large
    batches, no decoding, each batch committed with the follower's tracking position (the
    same row the projection runner advances, locked the same way). ``verify`` and the review
    call this first, so they always check the whole log. Returns events linked."""
    table, pos = _events_sql(engine.dialect.name)
    total = 0
    while True:
        with engine.begin() as conn:
            q = sa.select(tracking.c.position).where(tracking.c.name == CHAIN_NAME)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            position = conn.execute(q).scalar()
            if position is None:
                raise RuntimeError("the log_chain follower is not set up (Platform sets it up)")
            rows: list[RawRow] = [
                (int(r[0]), r[1], int(r[2]), r[3], r[4]) for r in conn.exec_driver_sql(
                    f"SELECT {pos}, originator_id, originator_version, topic, state FROM {table} "
                    f"WHERE {pos} > {int(position)} ORDER BY {pos} LIMIT {int(batch)}")
            ]
            if not rows:
                return total
            link_rows(conn, rows)
            conn.execute(tracking.update().where(tracking.c.name == CHAIN_NAME).values(position=rows[-1][0]))
        total += len(rows)
        if progress is not None:
            progress(len(rows))
        if len(rows) < batch:
            return total


# -- verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    position: int
    hash: bytes
    recorded_state: bytes | None = None  # the head event's stored state (for its recorded time)


@dataclass(frozen=True)
class Expect:
    """A checkpoint's claim: the link at ``position`` is ``hash``."""

    position: int
    hash: bytes


def tracked_position(conn: sa.Connection) -> int:
    value = conn.execute(sa.select(tracking.c.position).where(tracking.c.name == CHAIN_NAME)).scalar()
    return int(value or 0)


def _cursor_rows(conn: sa.Connection, sql: str, name: str) -> Iterator[tuple[Any, ...]]:
    """Streams a query with bounded memory: a server-side cursor on PostgreSQL, SQLite's
    lazy stepping otherwise."""
    raw: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        cur = raw.cursor(name=name)
        cur.itersize = FETCH
    else:
        cur = raw.cursor()
    try:
        cur.execute(sql)
        while True:
            batch = cur.fetchmany(FETCH)
            if not batch:
                return
            yield from batch
    finally:
        cur.close()


def verified_log(
    conn: sa.Connection, *, upto: int, expect: Expect | None = None, progress: Callable[[int], None] | None = None,
    head_out: list[Head] | None = None,
) -> Generator[RawRow, None, None]:
    """Yields every stored event up to ``upto`` in log order, each after checking its link
    against ``log_chain``; raises ``ChainBroken`` at the first position that does not match
    (an edited, deleted, inserted or moved event, a truncated tail, or a checkpoint the log
    no longer reaches). ``conn`` must hold one snapshot (a transaction) for both tables.
    When the stream ends cleanly, ``head_out`` receives the head (last position, link)."""
    table, pos = _events_sql(conn.dialect.name)
    events: Any = _cursor_rows(
        conn, f"SELECT {pos}, originator_id, originator_version, topic, state FROM {table} "
              f"WHERE {pos} <= {int(upto)} ORDER BY {pos}", "lianxi_verify_events")
    chain: Any = _cursor_rows(
        conn, f"SELECT position, hash FROM log_chain WHERE position <= {int(upto)} ORDER BY position",
        "lianxi_verify_chain")
    try:
        yield from _merge(events, chain, upto=upto, expect=expect, progress=progress, head_out=head_out)
    finally:
        events.close()
        chain.close()


def _merge(
    events: Iterator[tuple[Any, ...]], chain: Iterator[tuple[Any, ...]], *, upto: int, expect: Expect | None,
    progress: Callable[[int], None] | None, head_out: list[Head] | None,
) -> Iterator[RawRow]:
    # The hot loop of every review and verification: kept to plain comparisons.
    prev = GENESIS
    last_pos = 0
    last_row: tuple[Any, ...] | None = None
    expect_pos = expect.position if expect is not None else None
    c_next = next(chain, None)
    checked = 0
    for row in events:
        p = row[0]
        if c_next is None:
            raise ChainBroken(p, "an event is not covered by the chain (inserted or renumbered)")
        cp = c_next[0]
        if cp != p:
            if cp < p:
                raise ChainBroken(cp, "an event the chain recorded is missing from the log (deleted)")
            raise ChainBroken(p, "an event is not covered by the chain (inserted or renumbered)")
        if expect_pos is not None and last_pos < expect_pos < p:
            raise ChainBroken(expect_pos, "the checkpoint's position is missing from the log")
        prev = link(prev, p, row[1], row[2], row[3], row[4])
        if prev != c_next[1] and prev != bytes(c_next[1]):
            raise ChainBroken(p, "the stored event does not match its link (edited or moved)")
        if p == expect_pos and expect is not None and prev != expect.hash:
            raise ChainBroken(p, "the log and its chain differ from the signed checkpoint (rewritten)")
        last_pos, last_row = p, row
        c_next = next(chain, None)
        checked += 1
        if progress is not None and checked % FETCH == 0:
            progress(FETCH)
        yield row
    if c_next is not None:
        raise ChainBroken(int(c_next[0]), "an event the chain recorded is missing from the log (deleted)")
    if last_pos < upto:
        raise ChainBroken(last_pos + 1, f"the log ends at position {last_pos} but the chain reached {upto} "
                                        "(tail truncated)")
    if expect is not None and last_pos < expect.position:
        raise ChainBroken(last_pos + 1, f"the log ends at position {last_pos} but the checkpoint covers "
                                        f"{expect.position} (tail truncated)")
    if progress is not None:
        progress(checked % FETCH)
    if head_out is not None:
        head_out.append(Head(last_pos, prev, as_bytes(last_row[4]) if last_row is not None else None))


@dataclass(frozen=True)
class Verification:
    ok: bool
    head: Head
    events: int
    broken_at: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"chain intact: {self.events} events, head {self.head.position} {self.head.hash.hex()}"
        return f"chain broken at position {self.broken_at}: {self.reason}"


def snapshot(engine: sa.Engine) -> Any:
    """A read transaction that sees one snapshot of the log and the chain."""
    conn = engine.connect()
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    conn.begin()
    return conn


def verify(
    engine: sa.Engine, *, expect: Expect | None = None, progress: Callable[[int], None] | None = None,
) -> Verification:
    """Recomputes the whole chain; the caller brings the follower up to the head first."""
    with snapshot(engine) as conn:
        upto = tracked_position(conn)
        heads: list[Head] = []
        n = 0
        stream = verified_log(conn, upto=upto, expect=expect, progress=progress, head_out=heads)
        try:
            for _ in stream:
                n += 1
        except ChainBroken as e:
            return Verification(False, Head(0, GENESIS), n, e.position, e.reason)
        finally:
            stream.close()
    return Verification(True, heads[0], n)
