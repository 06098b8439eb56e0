"""Crash safety of `lianxi projections rebuild` itself: SIGKILL the command at a random moment
after it has committed its first batches, on SQLite and on PostgreSQL, then check that

- every read model as the killed command left it equals a clean replay of the log up to that
  read model's own tracking position (the one-pass batch committed rows and positions together:
  nothing half-applied, nothing applied twice);
- finishing the work (alternately: the rebuild run again whole, or the runner resuming where
  the killed command stopped) gives every read model exactly as the live process built it;
- the hash chain, re-verified by the rebuild, still verifies.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from contracts.catalogue import load_catalogue
from projections.runner import tracking
from services.app import LianxiApp
from services.demo.year import run_demo
from services.platform import LogStore, Platform
from services.settings import Settings
from tests.conftest import PG_BASE, drop_pg_schema, make_platform
from tests.test_crash_kill import CappedLog, dump

ROOT = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("LIANXI_REBUILD_KILLS", "3"))
SCHOOLS = 8  # a demo county of this size writes about 3,700 events, touching every read model


def read_models(platform: Platform) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: dump(platform.write_engine, t) for p in platform.runner.projections.values() for t in p.tables}


def positions(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {str(n): int(p) for n, p in conn.execute(sa.select(tracking.c.name, tracking.c.position))}


def start_rebuild(url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LIANXI_DATABASE_URL": url, "LIANXI_PROJECTION_BATCH_SIZE": "50"}
    return subprocess.Popen([sys.executable, "-m", "services.cli", "projections", "rebuild"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_mid_rebuild(url: str, engine: sa.Engine, head: int, rng: random.Random) -> bool:
    """Starts the rebuild, waits until it has reset the read models and committed a batch, then
    kills it a random moment later. True when it died with work left (it may finish first)."""
    proc = start_rebuild(url)
    deadline = time.monotonic() + 120
    while True:
        now = positions(engine)
        # reset (every position back to 0) and at least one one-pass batch committed since
        if max(now.values()) > 0 and min(now.values()) < head:
            break
        assert proc.poll() is None, f"the rebuild exited ({proc.returncode}) before it was killed"
        assert time.monotonic() < deadline, "the rebuild never committed a batch"
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.4))
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return not finished and min(positions(engine).values()) < head


def test_rebuild_killed_mid_way_resumes_to_the_live_read_models(database_url: str, tmp_path: Path) -> None:
    rng = random.Random(20261204)
    if database_url.startswith("sqlite"):
        scratch_url, scratch_schema = f"sqlite:///{tmp_path / 'replay.db'}", None
    else:
        scratch_schema = f"lxt_replay_{uuid.uuid4().hex[:10]}"
        scratch_url = f"{PG_BASE}?schema={scratch_schema}"
    platform = make_platform(database_url)
    scratch = Platform(Settings(database_url=scratch_url, projection_batch_size=97), group_commit=False)
    try:
        run_demo(platform.app, load_catalogue(), schools=SCHOOLS, year=2024, seed=5,
                 now=datetime(2024, 12, 31, 12, tzinfo=UTC))
        platform.runner.catch_up()
        live = read_models(platform)
        head = platform.app.recorder.max_notification_id() or 0
        capped = CappedLog(platform.app.recorder)
        scratch.runner.reader = capped
        mid_way = 0
        for cycle in range(KILLS):
            mid_way += kill_mid_rebuild(database_url, platform.read_engine, head, rng)  # a reader: no write lock
            # As the killed command left them: each read model is a replay up to its position.
            for name, projection in platform.runner.projections.items():
                capped.cap = platform.runner.position(name)
                scratch.runner.reset(name)
                scratch.runner.catch_up(name)
                for table in projection.tables:
                    assert dump(platform.write_engine, table) == dump(scratch.write_engine, table), (
                        f"cycle {cycle}: {name} ({table.name}) differs from a replay to position {capped.cap}")
            if cycle % 2:
                platform.runner.catch_up()  # the one pass resumes where the killed command stopped
            else:
                done = start_rebuild(database_url)
                out, err = done.communicate(timeout=300)
                assert done.returncode == 0, err.decode()[-2000:]
                assert b"rebuilt from" in out
            assert read_models(platform) == live, f"cycle {cycle}: the finished rebuild differs from the live models"
            from services.security.checkpoint import verify_against

            result = verify_against(platform, None)
            assert result.ok, result.describe()
        assert mid_way, "no kill landed while the rebuild still had work left"
    finally:
        scratch.close()
        platform.close()
        if scratch_schema:
            drop_pg_schema(scratch_schema)


def test_the_read_side_reads_the_applications_log() -> None:
    """The read side's lean store names the log as the application does (PostgreSQL's table)."""
    assert LogStore.name == LianxiApp.name
