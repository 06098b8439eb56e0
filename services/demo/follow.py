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

IDLE_S = 0.5  # between rounds once the follower stands at the head of the log


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
    if read_side.write_engine.dialect.name == "sqlite":
        _bulk_pragmas(read_side.write_engine)
    try:
        while True:
            last = stop.is_set()  # set after the demo's last batch committed: this round reaches it
            hashchain.catch_up(read_side.write_engine)  # raw fast path of the log_chain follower
            read_side.runner.catch_up()
            if last:
                return
            stop.wait(IDLE_S)
    finally:
        read_side.close()
        peak_kib.value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


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
