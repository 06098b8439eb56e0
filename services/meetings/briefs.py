"""Briefs rendered once per (the data they come from, format).

Rendering a brief (above all the PDF) takes seconds, and assembling its data (catching the read
models up, then reading them) a good part of one. The data is kept under its source (meeting,
county day, log head): while nothing was appended, the same request reads nothing again. The
bytes are kept under a digest of the data, so an unchanged brief is served from memory, and
readers asking at the same time share one render. Renders run
in a small pool of their own, so they never hold the request path; a request that has waited
``wait_s`` is answered "still rendering" (the pages show 正在生成 and refresh) instead of
running into the request timeout.

Rendered bytes are also kept in the database (``brief_renders``, by the same digest), so every
process serves what any process rendered, and the ``brief-prerender`` job
(services/meetings/jobs.py) renders the briefs people open next whenever their data changed:
the first reader after a change then gets the file instead of waiting for the PDF engine.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as WaitedTooLong
from typing import Any

import orjson
import sqlalchemy as sa

RETRY_AFTER_S = 3  # what a reader told "still rendering" waits before asking again
Render = Callable[[dict[str, Any], str], bytes]


def data_digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)).hexdigest()


# Its own MetaData: a read-model rebuild never drops it (a digest never goes stale: changed
# data has another digest).
renders_metadata = sa.MetaData()
brief_renders = sa.Table(
    "brief_renders",
    renders_metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("fmt", sa.String(8), primary_key=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("stored_at", sa.Float, nullable=False),  # time.time(): only orders the pruning
)


class RenderStore:
    """Rendered briefs in the platform's database, shared by every process; the newest
    ``keep`` are kept."""

    def __init__(self, engine: sa.Engine, keep: int = 200) -> None:
        self.engine = engine
        self.keep = keep

    def setup(self) -> None:
        renders_metadata.create_all(self.engine, checkfirst=True)

    def load(self, digest: str, fmt: str) -> bytes | None:
        with self.engine.connect() as conn:
            body = conn.execute(sa.select(brief_renders.c.body).where(
                brief_renders.c.digest == digest, brief_renders.c.fmt == fmt)).scalar()
        return None if body is None else bytes(body)

    def save(self, digest: str, fmt: str, body: bytes) -> None:
        t = brief_renders
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.digest == digest, t.c.fmt == fmt))  # two processes rendered it
            conn.execute(t.insert().values(digest=digest, fmt=fmt, body=body, stored_at=time.time()))
            cut = conn.execute(sa.select(t.c.stored_at).order_by(t.c.stored_at.desc())
                               .offset(self.keep).limit(1)).scalar()
            if cut is not None:
                conn.execute(t.delete().where(t.c.stored_at <= cut))


class StillBuilding(Exception):
    """Another request is still assembling this brief's data."""


class BriefCache:
    def __init__(self, render: Render, *, workers: int = 2, keep: int = 64, store: RenderStore | None = None) -> None:
        self._render = render
        self._keep = keep
        self._store = store
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="brief-render")
        self._data: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()
        self._building: dict[Hashable, Future[dict[str, Any] | None]] = {}
        self._done: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._rendering: dict[tuple[str, str], Future[bytes]] = {}
        self._lock = threading.Lock()

    def data_for(self, source: Hashable, build: Callable[[], dict[str, Any] | None], *,
                 wait_s: float | None = None) -> dict[str, Any] | None:
        """The brief's data for ``source`` (meeting, day, log head), built once per source:
        readers asking while it is being built wait for that one build, at most ``wait_s``
        (then ``StillBuilding``: the request answers 正在生成 instead of its timeout's 503)."""
        with self._lock:
            hit = self._data.get(source)
            if hit is not None:
                self._data.move_to_end(source)
                return hit
            building = self._building.get(source)
            mine = building is None
            if building is None:
                building = self._building[source] = Future()
        if not mine:
            try:
                return building.result(timeout=wait_s)
            except WaitedTooLong:
                raise StillBuilding from None
        try:
            data = build()
        except BaseException as e:
            with self._lock:
                self._building.pop(source, None)
            building.set_exception(e)
            raise
        with self._lock:
            self._building.pop(source, None)
            if data is not None:
                self._data[source] = data
                while len(self._data) > self._keep:
                    self._data.popitem(last=False)
        building.set_result(data)
        return data

    def get(self, data: dict[str, Any], fmt: str, *, wait_s: float) -> bytes | None:
        """The brief's bytes, or None while its render is still running after ``wait_s``.
        A render's error is raised to every request waiting for it, and not kept."""
        key = (data_digest(data), fmt)
        with self._lock:
            hit = self._done.get(key)
            if hit is not None:
                self._done.move_to_end(key)
                return hit
        stored = self._store.load(*key) if self._store is not None else None
        with self._lock:
            if stored is not None:
                self._keep_done(key, stored)
                return stored
            future = self._rendering.get(key)
            started = future is None
            if future is None:
                future = self._rendering[key] = self._pool.submit(self._render_and_store, key, data)
        if started:  # outside the lock: a render already done runs the callback right here
            future.add_done_callback(lambda f: self._finished(key, f))
        try:
            return future.result(timeout=wait_s)
        except WaitedTooLong:
            return None

    def prerender(self, data: dict[str, Any], fmt: str) -> bool:
        """Renders the brief unless memory or the store has it; True when it rendered. For
        the pre-render job: waits for the render (its own thread, not a request's)."""
        key = (data_digest(data), fmt)
        with self._lock:
            if key in self._done:
                return False
        if self._store is not None and self._store.load(*key) is not None:
            return False
        self.get(data, fmt, wait_s=3600)
        return True

    def _render_and_store(self, key: tuple[str, str], data: dict[str, Any]) -> bytes:
        body = self._render(data, key[1])
        if self._store is not None:
            self._store.save(*key, body)
        return body

    def _finished(self, key: tuple[str, str], future: Future[bytes]) -> None:
        with self._lock:
            self._rendering.pop(key, None)
            if future.cancelled() or future.exception() is not None:
                return
            self._keep_done(key, future.result())

    def _keep_done(self, key: tuple[str, str], body: bytes) -> None:
        """Under the lock: keeps ``body`` in memory, the least recently used leaving first."""
        self._done[key] = body
        self._done.move_to_end(key)
        while len(self._done) > self._keep:
            self._done.popitem(last=False)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
