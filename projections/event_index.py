"""Event id -> log position, for the events whose id is not their aggregate's.

Briefs and reviews cite events by id and show each one's log position, so a reader can open
it on /events. An event that creates an aggregate carries the aggregate's id, and the log's
own primary key (originator id, version 1) finds it; the rest (a rectification's
assignment, a task's completion, a warning's acknowledgement, ...) carry a derived id the log
has no index for. Without this table a brief read the whole log to find a few hundred of
them (~75% of assembling a county brief, and it grows with the log).

The runner hands it raw rows: a search for the "event_id" key is enough for an event whose id
is its aggregate's (most of a province's log), which is skipped undecoded.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence

import orjson
import sqlalchemy as sa

from projections.base import LoggedEvent, Projection, StoredRow, insert_ignore, metadata

# An "event_id" key and its text value in stored JSON (orjson writes no spaces; allowed anyway).
EVENT_ID = re.compile(rb'"event_id"\s*:\s*"([^"\\]*)"')

event_index = sa.Table(
    "rm_event_index",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)


def _hex(an_id: uuid.UUID | str | bytes) -> str:
    """An id as plain lower-case hex: SQLite stores an originator id as hex, PostgreSQL as a
    UUID read back with dashes, and events carry the dashed text."""
    if isinstance(an_id, uuid.UUID):
        return an_id.hex
    text = an_id.decode() if isinstance(an_id, bytes) else an_id
    return text.replace("-", "").lower()


def _own_id(event_id: bytes, originator_id: uuid.UUID | str) -> bool:
    """``_hex(event_id) == _hex(originator_id)``, most often decided by one comparison of the
    texts as they come (SQLite's hex, PostgreSQL's dashed text): two ``_hex`` per stored event
    were half of this read model's rebuild."""
    if type(originator_id) is str:
        text = event_id.decode()
        if text == originator_id or text.replace("-", "") == originator_id:
            return True  # equal texts have equal hex
    return _hex(event_id) == _hex(originator_id)


class EventIndex(Projection):
    name = "event_index"
    topics = ()  # every event: any of them may be cited
    tables = (event_index,)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        rows = [{"event_id": str(e.data["event_id"]), "position": e.position} for e in events
                if e.data.get("event_id") and _hex(str(e.data["event_id"])) != _hex(e.originator_id)]
        insert_ignore(conn, event_index, rows)

    def apply_stored(self, conn: sa.Connection, rows: Sequence[StoredRow]) -> None:
        found: list[dict[str, object]] = []
        for position, originator_id, _version, _topic, state in rows:
            stored = state if isinstance(state, bytes) else bytes(state)
            ids = EVENT_ID.findall(stored)
            if not ids or (len(ids) == 1 and _own_id(ids[0], originator_id)):
                continue  # no id, or the aggregate's own: the log's primary key finds it
            event_id = orjson.loads(stored).get("event_id")  # the top-level key, not a nested one
            if event_id and _hex(str(event_id)) != _hex(originator_id):
                found.append({"event_id": str(event_id), "position": int(position)})
        insert_ignore(conn, event_index, found)  # the first event with an id keeps it


def indexed_positions(conn: sa.Connection, ids: Iterable[str]) -> dict[str, int]:
    """Positions of the ids this table holds (those not an aggregate's own)."""
    wanted = sorted({i for i in ids if i})
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        q = sa.select(event_index.c.event_id, event_index.c.position).where(event_index.c.event_id.in_(chunk))
        found.update({str(i): int(p) for i, p in conn.execute(q)})
    return found
