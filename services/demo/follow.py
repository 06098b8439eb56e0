"""The read models following ``lianxi demo`` while it writes.

The demo generates its year and appends it through the bulk appender in one process; a
second process runs the one-pass projection runner (after the hash chain's raw fast path) in
a loop, so on two cores the year is projected while it is written instead of after it (at
province scale the two took about as long as each other). The follower reads committed
batches only, through the store's own locking: SQLite's write lock (each side's batch is a
transaction; the busy timeout covers the other's) or PostgreSQL's row locks on the tracking
rows, as any projection worker does.

A process, not a thread: both sides are Python-bound, and a thread would share one core with
the generator through the GIL. Spawned, not forked: a fork would copy the parent's open
SQLite connections and its threads' locks.
"""

from __future__ import annotations

import multiprocessing
import resource
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

IDLE_S = 0.5  # between rounds (PostgreSQL), between looks at the backlog (SQLite)

# On SQLite the demo's follower takes the year in large windows: the demo's own appender is
# the only other writer and no API request waits on SQLite's write lock (the API's live
# follower keeps the runner's short batches). Each batch re-writes the read models' index
# pages it touches (random keys: event ids, digests), so its write cost is per batch more
# than per event; the runner's batches restart at 1,000 positions at the head of the log and
# grow x4 a step, and a follower always near the head made ~340 batches of a 4,000-school
# year and wrote 5.7 GB (with windows: ~35 batches, 2.1-2.4 GB).
# PostgreSQL has no single write lock: there the follower keeps to the head as before (a
# backlog only lengthened the tail after the demo's last write, by 15 s at 1,000 schools).
BACKLOG = 100_000  # a round starts once this many positions wait (or the demo has written all)
FIRST_BATCH = 50_000  # a round's first batch, and the least a batch of a backlog takes
MAX_BATCH = 400_000  # positions; bounds the follower's memory (rows and decoded events)
BATCH_SECONDS = 2.0


class Follower:
    """``with Follower():`` around the demo's writing: the read models follow it, and stand at
    the head of the log when the block ends (unless it raised)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._peak_kib: Synchronized[int] = ctx.Value("q", 0)
        self._process = ctx.Process(target=_follow, args=(self._stop, self._peak_kib), name="demo-follower",
                                    daemon=True)
        self.peak_rss = 0  # bytes, once finished

    def __enter__(self) -> Follower:
        self._process.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._stop.set()
        if exc_type is not None:  # the demo failed: stop without waiting for the head
            self._process.join(timeout=30)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join()
            return
        self._process.join()
        if self._process.exitcode != 0:
            raise RuntimeError(f"the read models' follower failed (exit code {self._process.exitcode}); "
                               "see its traceback above")
        self.peak_rss = int(self._peak_kib.value) * 1024

    def report(self, runner: Any) -> str:
        """Where the read models stand, and the follower's peak memory (``time -v`` shows only
        the larger of the demo's and the follower's, not their sum)."""
        lag = max(runner.lag().values(), default=0)
        where = "every read model caught up" if lag == 0 else f"read models up to {lag} events behind"
        return f"{where}; follower peak RSS {self.peak_rss / 2**30:.2f} GiB"


def _follow(stop: Event, peak_kib: Synchronized[int]) -> None:
    from services.platform import ReadSide
    from services.security import hashchain

    read_side = ReadSide()  # the log and the read models: none of the serving side
    sqlite = read_side.write_engine.dialect.name == "sqlite"
    reader = None  # on SQLite, looks at the backlog without the write lock
    if sqlite:
        _bulk_pragmas(read_side.write_engine)
        runner = read_side.runner
        runner.batch_size, runner.max_batch_size, runner.batch_seconds = FIRST_BATCH, MAX_BATCH, BATCH_SECONDS
        reader = read_side.database.sqlalchemy_engine(writer=False)

    def restart(_advanced: int) -> None:
        _restart_wal(read_side.write_engine)

    try:
        while True:
            last = stop.is_set()  # set after the demo's last batch committed: this round reaches it
            if reader is not None and not last and _backlog(read_side, reader) < BACKLOG:
                stop.wait(IDLE_S)
                continue
            hashchain.catch_up(read_side.write_engine)  # raw fast path of the log_chain follower
            read_side.runner.catch_up(progress=restart if sqlite else None)  # after each batch
            if last:
                return
            if not sqlite:
                stop.wait(IDLE_S)
    finally:
        if reader is not None:
            reader.dispose()
        read_side.close()
        peak_kib.value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _backlog(read_side: Any, reader: Any) -> int:
    """Positions of the log that the read model furthest behind has yet to apply."""
    import sqlalchemy as sa

    from projections.runner import tracking

    with reader.connect() as conn:
        low = conn.execute(sa.select(sa.func.min(tracking.c.position))).scalar()
    return int(read_side.head()) - int(low or 0)


def _restart_wal(engine: Any) -> None:
    """Copies the whole WAL into the database and has the next writer start it again from the
    beginning. The passive checkpoints at commit never find the WAL fully copied while the
    demo's writer and the follower take turns, so it only grew (24 GB at 20,000 schools, every
    page read searching its index)."""
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
    finally:
        raw.close()


def _bulk_pragmas(engine: Any) -> None:
    """The bulk writer's page cache and checkpoint interval (services/store/database.py) on the
    follower's connections too: with SQLite's 2 MB cache and a checkpoint every 4 MB of WAL, a
    province year's read-model indexes were re-read and re-written page by page (at 20,000
    schools the follower wrote 68 GB for a 6 GB file, 290 s of system time)."""
    import sqlalchemy as sa

    from services.store.database import bulk_pragmas

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
        bulk_pragmas(dbapi_conn)

    engine.dispose()  # connections opened before the listener get them as they are replaced
