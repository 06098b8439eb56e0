"""2 — Bulk append (services/store/bulk.py: the path of imports, the demo and Kafka ingest).

Ours: ``BulkAppender`` appending N pending ``DutyPerformed`` events (built beforehand, not
timed) into a fresh store, 20,000 per transaction: mapping, orjson encoding, insert, commit
(synchronous=FULL), the final checkpoint. Baseline: raw ``sqlite3.executemany`` of the same
rows, serialised beforehand, into a table of the same shape with the same pragmas (the bulk
writer's page cache and checkpoint interval), batch size and final checkpoint.
"""

from __future__ import annotations

import gc
import random
import sqlite3
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import (
    Bench,
    Ctx,
    Figure,
    Report,
    median,
    pg_schema_url,
    postgres_available,
    spread,
    sqlite_url,
    timed,
)

BATCH = 20_000  # services.store.bulk.DEFAULT_BATCH, on both sides


def make_events(n: int, seed: int = 7) -> list[Any]:
    """N pending DutyPerformed events shaped like the demo's."""
    from contracts.catalogue import default_catalogue
    from events.agencies import Agency
    from events.base import derive_id
    from events.duty_log import DutyRecord

    rng = random.Random(seed)
    cat = default_catalogue()
    epoch = datetime(2024, 1, 1, tzinfo=UTC)
    units = [u for u in cat.units.units if u.duties]
    agencies = {
        u.code: Agency.register(code=u.code, name=u.name, name_en=u.name_en, lead=u.lead,
                                duties=[{"code": d.code, "text": d.text, "applies_to": d.applies_to}
                                        for d in u.duties],
                                effective_on=date(2000, 1, 1), now=epoch)
        for u in units
    }
    out: list[Any] = []
    for i in range(n):
        unit = units[i % len(units)]
        duty = unit.duties[rng.randrange(len(unit.duties))]
        day = date(2024, 1, 1) + timedelta(days=rng.randrange(360))
        rid = derive_id("bench", str(seed), str(i))
        rec = DutyRecord.perform(
            record_id=rid, agency=agencies[unit.code], duty_code=duty.code,
            school_ids=[f"S{rng.randrange(1, 20001):05d}"], occurred_on=day, summary="月度检查(例行)",
            findings={"count": 0, "text": ""}, evidence=[f"sha256:{rid.hex}"], logged_by="bench:generator",
            request_digest="", school_exists=lambda _s: True,
            now=datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9),
        )
        out.extend(rec.collect_events())
    return out


def _platform(url: str) -> Any:
    from services.platform import Platform
    from services.settings import Settings

    return Platform(Settings(database_url=url), group_commit=False)


CPU: list[float] = []  # process CPU seconds of each of our runs


def ours(url: str, events: list[Any]) -> float:
    from services.store.bulk import BulkAppender

    platform = _platform(url)
    try:
        c0 = time.process_time()
        seconds, result = timed(lambda: BulkAppender(platform.app, batch_size=BATCH).append(events))
        if len(events) >= 50_000:
            CPU.append(time.process_time() - c0)
        assert result.appended == len(events), result
        assert platform.app.recorder.max_notification_id() == result.last_position
    finally:
        platform.close()
    return len(events) / seconds


def app_save(url: str, events: list[Any], per_call: int = 1000) -> float:
    """Before: ``Application.save`` with 1,000 events per call (what the demo used)."""
    platform = _platform(url)
    try:
        def go() -> None:
            for i in range(0, len(events), per_call):
                platform.app.save(*events[i:i + per_call])

        seconds, _ = timed(go)
    finally:
        platform.close()
    return len(events) / seconds


def serialised_rows(events: list[Any]) -> list[tuple[str, int, str, bytes]]:
    from eventsourcing.persistence import Mapper

    from services.store.database import OrjsonTranscoder

    mapper: Mapper[Any] = Mapper(transcoder=OrjsonTranscoder())
    rows = []
    for e in events:
        s = mapper.to_stored_event(e)
        oid: Any = s.originator_id
        rows.append((oid.hex, s.originator_version, s.topic, s.state))
    return rows


def raw_sqlite(path: Path, rows: list[tuple[str, int, str, bytes]]) -> float:
    from services.store.database import BULK_CACHE_KIB, BULK_WAL_PAGES

    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    db.execute(f"PRAGMA wal_autocheckpoint={BULK_WAL_PAGES}")
    db.execute("CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, "
               "state BLOB, PRIMARY KEY (originator_id, originator_version))")

    def go() -> None:
        for i in range(0, len(rows), BATCH):
            db.execute("BEGIN")
            db.executemany("INSERT INTO stored_events VALUES (?,?,?,?)", rows[i:i + BATCH])
            db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    seconds, _ = timed(go)
    db.close()
    return len(rows) / seconds


def raw_postgres(url: str, rows: list[tuple[str, int, str, bytes]]) -> float:
    import psycopg

    from bench import PG_BASE

    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(PG_BASE) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".raw_events (originator_id uuid NOT NULL, originator_version '
                     "bigint NOT NULL, topic text, state bytea, notification_id bigserial, "
                     "PRIMARY KEY (originator_id, originator_version))")
        conn.commit()
        sql = (f'INSERT INTO "{schema}".raw_events (originator_id, originator_version, topic, state) '
               "VALUES (%s, %s, %s, %s) RETURNING notification_id")

        def go() -> None:
            for i in range(0, len(rows), BATCH):
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(sql, rows[i:i + BATCH], returning=True)

        seconds, _ = timed(go)
    return len(rows) / seconds


def run(ctx: Ctx) -> Report:
    report = Report()
    n = ctx.scale(200_000, 50_000)
    events = make_events(n)
    rows = serialised_rows(events)
    # The prepared inputs are a large long-lived heap; keep the collector from re-scanning
    # it on both sides (a real stream holds only a batch or two).
    gc.collect()
    gc.freeze()
    mine, base, before = [], [], []
    for i in range(ctx.runs):
        base.append(raw_sqlite(ctx.workdir / "raw-bulk.db", rows))
        mine.append(ours(sqlite_url(ctx.workdir, f"bulk-{i}"), events))
        if i < 3 and not ctx.quick:
            before.append(app_save(sqlite_url(ctx.workdir, f"save-{i}"), events[:50_000]))
        for p in ctx.workdir.glob("bulk-*.db*"):
            p.unlink()
    fig = report.add(Figure(case=f"SQLite, {n:,} events", value=median(mine), unit="ev/s", baseline=median(base),
                            target=">= 100k ev/s, ratio >= 0.35",
                            detail=f"{spread(mine)}; raw {spread(base)}; CPU of this process "
                                   f"{n / median(CPU):,.0f} ev/s per CPU-second (two threads)"))
    fig.met = fig.value >= 100_000 and (fig.ratio or 0) >= 0.35
    ctx.log(f"  bulk-append sqlite: {fig.value:,.0f} ev/s; raw {fig.baseline:,.0f}; ratio {fig.ratio:.2f}")
    if before:
        report.add(Figure(case="SQLite, Application.save x1000 (before)", value=median(before), unit="ev/s",
                          baseline=median(base), detail=f"{spread(before)}; median of {len(before)}"))
    if postgres_available():
        pn = ctx.scale(50_000, 20_000)
        pm, pb = [], []
        for _ in range(ctx.runs):
            with pg_schema_url() as url:
                pm.append(ours(url, events[:pn]))
            with pg_schema_url() as url:
                pb.append(raw_postgres(url, rows[:pn]))
        fig = report.add(Figure(case=f"PostgreSQL, {pn:,} events", value=median(pm), unit="ev/s",
                                baseline=median(pb), detail=f"{spread(pm)}; raw psycopg executemany {spread(pb)}"))
        ctx.log(f"  bulk-append postgres: {fig.value:,.0f} ev/s; raw {fig.baseline:,.0f}; ratio {fig.ratio:.2f}")
    else:
        report.notes.append("PostgreSQL not reachable: the PostgreSQL case was skipped.")
    report.notes.extend(ANALYSIS)
    report.notes.append(
        f"- {BATCH:,} events per transaction on both sides; a fresh store per run; SQLite WAL + synchronous=FULL, "
        "and on the raw side the bulk writer's cache_size, wal_autocheckpoint and closing passive checkpoint. "
        "The PostgreSQL baseline is psycopg `executemany ... RETURNING` into a same-shaped table (no LOCK TABLE)."
    )
    return report


ANALYSIS = [
    "- Before the first pass the demo appended with `Application.save` (1,000 per call): the 'before' row. "
    "`BulkAppender` maps a batch in the caller's thread straight into the rows the store binds (no `StoredEvent` "
    "in between; same transcoder, same bytes) while a writer thread inserts the previous batch.",
    "- **SQLite, this pass** (back to back on a busy 2-core machine, load ~2.3: 41.5k -> 68.4k ev/s, CPU of the "
    "process 52k -> 71k ev/s per CPU-second): 20,000 events per transaction (was 5,000); the load writes through "
    "a connection of its own (services/store/database.py `SQLiteBulkWriter`) with a 64 MiB page cache (the default "
    "2 MiB "
    "spilled a batch's dirty index pages into the WAL before COMMIT and read them back: 18% of the writer's "
    "samples were pwrite/pread inside the INSERT) and a checkpoint every 16,384 WAL pages instead of 1,000, closed "
    "by a passive checkpoint (the WAL is copied back and stays bounded; other connections keep the defaults); "
    "multi-row `INSERT ... VALUES` of 4,000 rows (`executemany` took the GIL back after every row, and the writer "
    "waited up to the 5 ms switch interval for it while the mapper ran: ~22% of its samples); "
    "`OrjsonTranscoder.encode` returns a right-sized copy (orjson's shrunk 4 KiB buffer cost a page fault and "
    "4 KiB of RSS per event held in a batch; mapping 7.9 -> 5.0 us/event). The raw baseline got the same batch "
    "size, cache, checkpoint interval and final checkpoint, and rose more than we did (51k -> 108k), so the ratio "
    "fell from 0.81 to 0.63.",
    "- **Bottleneck now:** the writer thread alone (pre-mapped rows through `SQLiteBulkWriter`) runs at 0.8-0.9 of "
    "raw, i.e. SQLite's own work (random-UUID primary-key inserts; COMMIT with WAL append + fsync ~30% of the "
    "writer's samples). With mapping in the second thread we lose another ~35%: ~14 us of CPU per event in total "
    "(SQLite ~8, mapping ~4: orjson 32%, `dict(vars(event))` 19%, `UUID.hex` 15% of the mapper's GIL time) on a "
    "machine whose second core is mostly taken by other work, plus the GIL hand-over after each statement.",
    "- **What would move it:** time-ordered ids for new aggregates (UUIDv7-style: raw with sorted keys ~230k ev/s "
    "against ~150k random); a second core free for the mapper; mapping in a separate process for very large "
    "imports.",
    "- **PostgreSQL:** `PostgresBulkWriter` streams each batch with binary COPY under the same `LOCK TABLE ... "
    "EXCLUSIVE` and NOTIFY, and checks the ids (`currval` of the sequence, first and last rows looked up): 14k -> "
    "89k ev/s, above the psycopg `executemany ... RETURNING` baseline. eventsourcing's own insert (one composite-"
    "array parameter in pipeline mode) hangs for good from ~15,000 events per call with psycopg 3.3.",
]

BENCH = Bench(name="bulk-append", title="2. Bulk append (services/store/bulk.py)", order=20, run=run)
