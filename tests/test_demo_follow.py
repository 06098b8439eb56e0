"""The demo's read-model follower (services/demo/follow.py): on SQLite it waits for a
backlog and takes it in large windows; the backlog is what the read model furthest behind
has yet to apply, and the follower leaves every read model at the head of the log."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from projections.runner import tracking
from services.demo import follow
from services.demo.follow import Follower
from services.platform import Platform
from tests.test_bulk_append import _records


def test_the_backlog_is_counted_from_the_read_model_furthest_behind(sqlite_platform: Platform) -> None:
    reader = sqlite_platform.database.sqlalchemy_engine(writer=False)
    try:
        assert follow._backlog(sqlite_platform, reader) == 0
        sqlite_platform.app.save(*_records(sqlite_platform, 5))
        head = sqlite_platform.head()
        with sqlite_platform.write_engine.begin() as conn:  # one read model behind the others
            conn.execute(tracking.update().where(tracking.c.name == "ledger").values(position=head - 3))
            conn.execute(tracking.update().where(tracking.c.name != "ledger").values(position=head))
        assert follow._backlog(sqlite_platform, reader) == 3
    finally:
        reader.dispose()


def test_the_follower_leaves_every_read_model_at_the_head(sqlite_url: str, monkeypatch: Any,
                                                          sqlite_platform: Platform) -> None:
    monkeypatch.setenv("LIANXI_DATABASE_URL", sqlite_url)
    with Follower() as follower:  # a backlog below BACKLOG: only the last round applies it
        sqlite_platform.app.save(*_records(sqlite_platform, 40))
    with sqlite_platform.write_engine.connect() as conn:
        positions = set(conn.execute(sa.select(tracking.c.position)).scalars())
    assert positions == {sqlite_platform.head()}
    assert follower.peak_rss > 0


def _frames_after_one_write(path: Path, *, restart: bool) -> int:
    """WAL frames after a reader held an old snapshot through many writes, then one more
    write (with or without the follower's restart before it)."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x BLOB)")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchall()  # holds its snapshot: checkpoints stop short
    for _ in range(50):
        writer.execute("INSERT INTO t VALUES (randomblob(8000))")
    reader.execute("COMMIT")
    reader.close()
    engine = sa.create_engine(f"sqlite:///{path}")
    if restart:
        follow._restart_wal(engine)
    engine.dispose()
    writer.execute("INSERT INTO t VALUES (randomblob(100))")
    frames = int(writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    writer.close()
    return frames


def test_the_follower_has_the_wal_start_again_from_its_beginning(tmp_path: Path) -> None:
    assert _frames_after_one_write(tmp_path / "kept.db", restart=False) > 100  # appended to the old frames
    assert _frames_after_one_write(tmp_path / "restarted.db", restart=True) < 10
