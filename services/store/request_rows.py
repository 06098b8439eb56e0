"""Rows a request's write carries into its own transaction: the request's audit row.

An audit row committed after the write it records can be lost to a crash between the two
commits (a kill -9 left 50 of 76 acknowledged writes without one). So the audit middleware
opens a ``RequestRows`` for each request, and the first transaction that writes for that
request — an event commit (``EventStore.commit``/``commit_async``/``save``, group commit
included) or a table write through ``begin_carrying`` — inserts the row with its own data.
The middleware then records a row of its own only for a request that wrote nothing (a
refusal, a read, a replay), or whose answer failed after the write had committed.

The holder travels in a context variable: request handlers run on the event loop or in a
worker thread that copies the request's context, while the group committer's thread has
none, so only the request's own commit picks the row up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token

import sqlalchemy as sa

from services.store.database import SideRows


class RequestRows:
    """``build(resource_id)`` makes the rows once a commit is about to carry them; ``carried``
    says a commit did (set only after that commit succeeded)."""

    def __init__(self, build: Callable[[str | None], Sequence[SideRows]]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._claimed = False
        self.carried = False
        self.resource_id: str | None = None

    def claim(self, resource_id: str | None) -> Sequence[SideRows]:
        """The rows for the next commit, or none when another commit already holds them. A
        claim that is not confirmed (the commit failed) is released for the next commit."""
        with self._lock:
            if self._claimed or self.carried:
                return ()
            self._claimed = True
        try:
            return self._build(resource_id)
        except BaseException:
            self.release()
            raise

    def confirm(self, resource_id: str | None) -> None:
        with self._lock:
            self.carried = True
            self.resource_id = resource_id

    def release(self) -> None:
        with self._lock:
            self._claimed = False


_current: ContextVar[RequestRows | None] = ContextVar("lianxi_request_rows", default=None)


def open_request(rows: RequestRows) -> Token[RequestRows | None]:
    return _current.set(rows)


def close_request(token: Token[RequestRows | None]) -> None:
    _current.reset(token)


def current() -> RequestRows | None:
    return _current.get()


@contextmanager
def carrying(resource_id: str | None) -> Iterator[Sequence[SideRows]]:
    """The current request's rows for one commit: the caller puts them in that commit's
    transaction; leaving the block normally confirms they were committed, an exception
    releases them for a later commit."""
    pending = _current.get()
    rows = pending.claim(resource_id) if pending is not None else ()
    try:
        yield rows
    except BaseException:
        if rows and pending is not None:
            pending.release()
        raise
    if rows and pending is not None:
        pending.confirm(resource_id)


def insert_side_rows(conn: sa.Connection, side: Sequence[SideRows]) -> None:
    for table, columns, rows in side:
        if rows:
            target = sa.table(table, *(sa.column(c) for c in columns))
            conn.execute(sa.insert(target), [dict(zip(columns, row, strict=True)) for row in rows])


@contextmanager
def begin_carrying(engine: sa.Engine, resource_id: str | None = None) -> Iterator[sa.Connection]:
    """``engine.begin()`` for a write outside the event log (a delivery channel, a read mark,
    a web session): the request's audit row is inserted at the end of the same transaction."""
    with carrying(resource_id) as side, engine.begin() as conn:
        yield conn
        insert_side_rows(conn, side)
