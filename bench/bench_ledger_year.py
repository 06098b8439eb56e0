"""7 — The yearly responsibility ledger at province scale, as a user reads it:
GET /api/v1/agencies/{unit}/ledger?period=YYYY for every member unit, through ``lianxi serve``
(uvicorn), one keep-alive connection, sequential requests, on SQLite and on PostgreSQL.

The store: the catalogue, 20,000 schools (``--quick``: 1,000; LIANXI_BENCH_LEDGER_SCHOOLS
overrides either) and a year of DutyPerformed events with the demo's duty mix (the same
plans, cadences, diligence, backdating (补录), planted diligent/negligent units, one school per
scheduled check, samples of up to 500 schools for county-wide actions; services/demo/year.py),
about 233 records per school (4.7M at 20,000 schools). The full demo takes far longer to
write a province year (hazards, meetings, logistics: none of which the ledger reads), so a
bench-only generator writes just the duty records, through the bulk appender
(services/store/bulk.py), and the real ledger projection catches up from the log. The
events are built without ``DutyRecord.perform``'s checks (a fifth of the build time); the
bench checks that the bytes stored equal those ``perform`` gives for the same record.
PostgreSQL gets the same log: the SQLite store's rows, copied through PostgreSQL's bulk
writer, then its own projection, so both stores must answer with the same figures.

Baseline, in the same run, on the same server: the same GET with ``as_of`` after the last
record, which gives the same per-duty figures from the day rows (expanding each row's JSON
array of schools, the live ledger's path before the rollups); the bench checks they agree.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from typing import Any

from bench import (
    Bench,
    Ctx,
    Figure,
    Report,
    free_port,
    median,
    percentile,
    pg_schema_url,
    postgres_available,
    python,
    sqlite_url,
    subprocess_env,
)

YEAR = 2024
SEED = 1
NOW = datetime(YEAR + 1, 1, 10, tzinfo=UTC)  # the demo's: backdated records of December are in
AS_OF = "2025-01-10"  # after the last record: as-of gives the live figures
FINDINGS = (0.75, 0.90, 0.97)  # cumulative: the demo's 0/1/2/3 findings weights
REPEATS = 3  # reads of every unit per run, per path


# -- the year ------------------------------------------------------------------------------


def duty_events(catalogue: Any, schools: Sequence[Any], year: int, seed: int, now: datetime) -> Iterator[Any]:
    """DutyPerformed events of a year, in recording order, planned as services/demo/year.py
    plans them (its plan per unit and duty, the same random draws for those), with cheaper
    draws per record."""
    from eventsourcing.utils import get_topic

    from events.base import COUNTY_TZ
    from events.duty_log import MAX_SCHOOLS_PER_RECORD, DutyRecord
    from services.demo.profiles import plant
    from services.demo.year import SUMMARIES, _applicable, _rounds

    rng = random.Random(seed)
    profiles = plant(catalogue, seed)
    plans = []
    for unit in catalogue.units.units:
        profile = profiles.of(unit.code)
        for duty in unit.duties:
            silent = rng.random() < 0.12 and not unit.lead
            if profile == "negligent":
                silent = profiles.rng("skip", seed, duty.code).random() < 0.4
            if silent and profile != "diligent":
                continue
            diligence, backdating = rng.uniform(0.7, 0.98), 0.04
            if profile == "diligent":
                diligence, backdating = 0.99, 0.0
            elif profile == "negligent":
                diligence, backdating = 0.3, 0.3
            plans.append((unit.code, duty, _rounds(duty.cadence, year, rng), diligence, backdating))
    texts = {d.code: f"{SUMMARIES[d.cadence]}：{d.text}" for u in catalogue.units.units for d in u.duties}
    first = date(year, 1, 1)
    midnight = datetime.combine(first, day_time(0), tzinfo=COUNTY_TZ).astimezone(UTC)
    last_minute = int((now - midnight).total_seconds() // 60)
    # Record ids: a fixed random prefix and the record's number (ascending keys append faster).
    id_base = uuid.uuid5(uuid.NAMESPACE_URL, f"lianxi-bench-ledger-year:{seed}:{year}").int >> 32 << 32
    id_text = str(uuid.UUID(int=id_base))[:-8]
    cls, topic, new = DutyRecord.DutyPerformed, get_topic(DutyRecord), object.__new__
    days = [(first + timedelta(days=i)).isoformat() for i in range(400)]
    moments: dict[int, datetime] = {}
    applicable: dict[str, list[str]] = {}
    waiting: list[tuple[Any, ...]] = []  # backdated: recorded in a later month
    seq = 0
    for month in range(1, 14):  # 13: what was backdated into the next year
        month_end = _month_minute(year, month + 1, midnight) if month < 13 else last_minute + 1
        records = [r for r in waiting if r[0] < month_end]
        waiting = [r for r in waiting if r[0] >= month_end]
        for code, duty, rounds, diligence, backdating in plans if month < 13 else ():
            targets = applicable.get(duty.applies_to)
            if targets is None:
                targets = applicable[duty.applies_to] = [s.school_id for s in _applicable(duty, list(schools))]
            r = rng.random
            for start, end in rounds:
                if start.month != month:
                    continue
                groups: list[tuple[str, ...]]
                if duty.applies_to == "none":
                    groups = [()]
                elif duty.cadence in ("yearly", "on-demand") and len(targets) > 20:
                    k = min(MAX_SCHOOLS_PER_RECORD, max(1, int(len(targets) * diligence * 0.3)))
                    groups = [tuple(rng.sample(targets, k))]
                else:
                    groups = [(s,) for s in targets if r() < diligence]
                d0, span = (start - first).days, (end - start).days + 1
                for group in groups:
                    day = d0 + int(r() * span)
                    minute = day * 1440 + 480 + int(r() * 660)  # 08:00..18:59 county time
                    if r() < backdating:  # 补录: logged 10..60 days later
                        minute += 1440 * (10 + int(r() * 51))
                    x = r()
                    findings = 0 if x < FINDINGS[0] else 1 if x < FINDINGS[1] else 2 if x < FINDINGS[2] else 3
                    seq += 1
                    rec = (minute, seq, code, duty.code, day, group, findings)
                    if minute <= last_minute:
                        (records if minute < month_end else waiting).append(rec)
        records.sort()
        for minute, n, code, duty_code, day, group, findings in records:
            rid, low = uuid.UUID(int=id_base + n), f"{n:08x}"
            at = moments.get(minute)
            if at is None:
                at = moments[minute] = midnight + timedelta(minutes=minute)
            event = new(cls)
            # The attributes in the order DutyRecord.perform's event holds them (the stored JSON keeps it).
            event.__dict__.update(
                originator_id=rid, originator_version=1, timestamp=at, originator_topic=topic,
                event_id=id_text + low, agency=code, occurred_on=days[day], duty_code=duty_code,
                school_ids=list(group), summary=texts[duty_code],
                findings={"count": findings, "text": "发现问题已当场反馈" if findings else ""},
                evidence=[f"sha256:{id_text.replace('-', '')}{low}"], logged_by="demo:generator", request_digest="",
            )
            yield event


def _month_minute(year: int, month: int, midnight: datetime) -> int:
    """Minutes from the year's first county midnight to the first of ``month`` (13: next January)."""
    from events.base import COUNTY_TZ

    start = datetime(year + (month > 12), (month - 1) % 12 + 1, 1, tzinfo=COUNTY_TZ)
    return int((start - midnight).total_seconds() // 60)


def _same_as_perform(app: Any, event: Any, known: set[str]) -> None:
    """The generator's event, stored, is byte for byte what ``DutyRecord.perform`` stores."""
    from events.duty_log import DutyRecord

    d = vars(event)
    made = DutyRecord.perform(
        record_id=d["originator_id"], agency=app.agency(d["agency"]), duty_code=d["duty_code"],
        school_ids=d["school_ids"], occurred_on=date.fromisoformat(d["occurred_on"]), summary=d["summary"],
        findings=d["findings"], evidence=d["evidence"], logged_by=d["logged_by"],
        request_digest=d["request_digest"], school_exists=known.__contains__, now=d["timestamp"],
    )
    ours, theirs = app.mapper.to_stored_event(event), app.mapper.to_stored_event(made.collect_events()[0])
    if (ours.topic, ours.state) != (theirs.topic, theirs.state):
        raise RuntimeError(f"generated event differs from DutyRecord.perform's: {ours.state!r} != {theirs.state!r}")


def build(url: str, schools: int, log: Any) -> dict[str, Any]:
    """Catalogue, schools and the year's duty records through the bulk appender, then the
    read models the ledger GET reads, caught up by their projections."""
    from contracts.catalogue import default_catalogue
    from events.base import COUNTY_TZ
    from events.schools import School
    from services.demo.year import make_schools
    from services.platform import Platform
    from services.settings import Settings
    from services.store.bulk import BulkAppender

    catalogue = default_catalogue()
    platform = Platform(Settings(database_url=url), group_commit=False)
    try:
        t0 = time.perf_counter()
        start = datetime(YEAR, 1, 1, 8, tzinfo=COUNTY_TZ)
        platform.app.register_catalogue(catalogue, now=start.astimezone(UTC))
        specs = make_schools(schools, random.Random(SEED))
        bulk = BulkAppender(platform.app)
        bulk.append(School.register(
            by_agency=catalogue.lead.code, by_lead=True, school_id=s.school_id, name=s.name, town=s.town,
            kind=s.kind, boarding=s.boarding, canteen=s.canteen, school_bus=s.school_bus,
            now=(start + timedelta(seconds=i)).astimezone(UTC)) for i, s in enumerate(specs))
        events = duty_events(catalogue, specs, YEAR, SEED, NOW)
        head = next(events)
        _same_as_perform(platform.app, head, {s.school_id for s in specs})
        records = bulk.append(_chain([head], events)).appended
        written = time.perf_counter() - t0
        projected = _project(platform)
        return {"records": records, "written_s": written, "projected_s": projected, "token": _token(platform),
                "units": [u.code for u in catalogue.units.units]}
    finally:
        platform.close()


def copy_to(src_url: str, url: str) -> dict[str, Any]:
    """The SQLite store's log, row for row, into a fresh PostgreSQL store through its bulk
    writer; then its own projections."""
    import sqlite3

    from services.platform import Platform
    from services.settings import Settings

    platform = Platform(Settings(database_url=url), group_commit=False)
    src = sqlite3.connect(src_url.split(":///", 1)[1])
    try:
        t0 = time.perf_counter()
        writer = platform.app.recorder.bulk_writer()
        try:
            rows = src.execute("SELECT originator_id, originator_version, topic, state FROM stored_events "
                               "ORDER BY rowid")
            n = 0
            while batch := rows.fetchmany(20_000):
                writer.insert([(uuid.UUID(oid), v, topic, state) for oid, v, topic, state in batch])
                n += len(batch)
        finally:
            writer.close()
        written = time.perf_counter() - t0
        projected = _project(platform)
        return {"events": n, "written_s": written, "projected_s": projected, "token": _token(platform)}
    finally:
        src.close()
        platform.close()


def _chain(*parts: Any) -> Iterator[Any]:
    for part in parts:
        yield from part


def _project(platform: Any) -> float:
    """Catches up what the ledger GET reads (the other read models stay behind; the server
    runs without in-process projections, so none catches up during the reads)."""
    t0 = time.perf_counter()
    # Big batches from the start (the runner grows them towards 0.25 s each, which on a busy
    # machine stays small): fewer commits and fewer re-reads of a day's rows.
    platform.runner.batch_size = platform.runner.max_batch_size = 50_000
    for name in ("catalogue", "ledger", "rectification_board"):
        platform.runner.catch_up(name)
    return time.perf_counter() - t0


def _token(platform: Any) -> str:
    _, token = platform.tokens.issue(agency="education", role="auditor", label="bench",
                                     known_agencies=platform.known_agencies())
    return str(token)


# -- reading -------------------------------------------------------------------------------


def _get(conn: http.client.HTTPConnection, token: str, path: str) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    body = resp.read()
    ms = (time.perf_counter() - t0) * 1000
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {body[:300]!r}")
    return ms, json.loads(body)


def _figures(ledger: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {d["duty_code"]: (d["performed_count"], d["findings_count"], d["schools_covered"])
            for d in ledger["duties"]}


def measure(ctx: Ctx, url: str, token: str, units: list[str], tag: str) -> dict[str, Any]:
    """Every unit's live yearly ledger and its as-of baseline, interleaved, ``REPEATS`` times
    per run; p50/p99 per run, medians over runs."""
    from bench.bench_api_write import Server

    port = free_port()
    env = subprocess_env(LIANXI_DATABASE_URL=url, LIANXI_LOG_LEVEL="warning", LIANXI_RATE_LIMIT_PER_MINUTE="0",
                         LIANXI_INPROCESS_PROJECTIONS="false", LIANXI_READINESS_MAX_LAG=str(2**40))
    # (ready although the read models the ledger does not read stay behind)
    server = Server([python(), "-m", "services.cli", "serve", "--host", "127.0.0.1", "--port", str(port)], env, port,
                    ctx.workdir / f"server-ledger-year-{tag}.log")
    live_path = f"/api/v1/agencies/{{}}/ledger?period={YEAR}"
    base_path = f"/api/v1/agencies/{{}}/ledger?period={YEAR}&as_of={AS_OF}"
    runs: list[tuple[float, float, float, float]] = []
    figures: dict[str, Any] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for unit in units:  # warm-up, and the two paths must agree
            _, live = _get(conn, token, live_path.format(unit))
            _, base = _get(conn, token, base_path.format(unit))
            figures[unit] = _figures(live)
            if figures[unit] != _figures(base):
                raise RuntimeError(f"{tag} {unit}: the live ledger's figures differ from the day rows'")
        for _ in range(ctx.runs):
            live_ms: list[float] = []
            base_ms: list[float] = []
            for _ in range(REPEATS):
                for unit in units:
                    live_ms.append(_get(conn, token, live_path.format(unit))[0])
                    base_ms.append(_get(conn, token, base_path.format(unit))[0])
            live_ms.sort()
            base_ms.sort()
            runs.append((percentile(live_ms, 0.5), percentile(live_ms, 0.99), percentile(base_ms, 0.5),
                         percentile(base_ms, 0.99)))
    finally:
        conn.close()
        server.stop()
    return {"p50": median([r[0] for r in runs]), "p99": median([r[1] for r in runs]),
            "base_p50": median([r[2] for r in runs]), "base_p99": median([r[3] for r in runs]),
            "p99_runs": [r[1] for r in runs], "reads": len(units) * REPEATS, "figures": figures}


def run(ctx: Ctx) -> Report:
    report = Report()
    schools = int(os.environ.get("LIANXI_BENCH_LEDGER_SCHOOLS") or ctx.scale(20_000, 1_000))
    url = sqlite_url(ctx.workdir, "ledger_year")
    built = build(url, schools, ctx.log)
    ctx.log(f"  ledger-year: SQLite store, {built['records']:,} records, written {built['written_s']:.0f} s, "
            f"projected {built['projected_s']:.0f} s")
    stores = [("SQLite", url, built, None)]
    pg = postgres_available()
    results = []
    for name, store_url, info, _ in stores:
        results.append((name, measure(ctx, store_url, info["token"], built["units"], name.lower()), info))
    if pg:
        with pg_schema_url("lxb_ledger") as pg_url:
            copied = copy_to(url, pg_url)
            ctx.log(f"  ledger-year: PostgreSQL store, {copied['events']:,} events copied in "
                    f"{copied['written_s']:.0f} s, projected {copied['projected_s']:.0f} s")
            results.append(("PostgreSQL", measure(ctx, pg_url, copied["token"], built["units"], "pg"), copied))
    for name, m, _ in results:
        fig = report.add(Figure(
            case=f"{name}: GET live yearly ledger, every unit, {schools:,} schools", value=m["p99"], unit="ms",
            baseline=m["base_p99"], target="p99 < 200 ms at 20,000 schools",
            detail=f"p50 {m['p50']:.1f} ms (baseline p50 {m['base_p50']:.1f} ms); p99 per run "
                   + ", ".join(f"{v:.0f}" for v in m["p99_runs"])
                   + f"; {m['reads']} reads per run per path; baseline = the same figures from the day rows "
                     f"(?as_of={AS_OF})"))
        fig.met = m["p99"] < 200 if schools >= 20_000 else None
        ctx.log(f"  ledger-year {name}: p99 {m['p99']:.1f} ms, p50 {m['p50']:.1f} ms "
                f"(baseline p99 {m['base_p99']:.1f}, p50 {m['base_p50']:.1f})")
    if len(results) == 2 and results[0][1]["figures"] != results[1][1]["figures"]:
        raise RuntimeError("SQLite and PostgreSQL ledgers differ over the same log")
    report.notes.append(
        f"- Store: catalogue, {schools:,} schools and {built['records']:,} DutyPerformed records of {YEAR} (the "
        "demo's duty mix, from a bench-only generator through the bulk appender); written in "
        f"{built['written_s']:.0f} s and the ledger projected in {built['projected_s']:.0f} s on SQLite. "
        + ("PostgreSQL: the same log copied row for row, projected by its own runner. " if pg else
           "PostgreSQL not reachable: SQLite only. ")
        + "Reads through `lianxi serve` (uvicorn, projections not in-process), one keep-alive connection, "
          "sequential, every unit in turn.")
    return report


BENCH = Bench(name="ledger-year", title="7. Yearly ledger at province scale (GET /ledger over HTTP)", order=65,
              run=run)
