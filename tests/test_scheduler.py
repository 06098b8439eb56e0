"""The overdue-and-escalation scheduler: a fake clock walked day by day, restarts with the job
store in the platform's own database, `lianxi jobs run-once --now`, and two instances sweeping
one PostgreSQL schema concurrently over a simulated month with exactly one event per
(item, deadline, level)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from contracts.catalogue import default_catalogue
from events.base import COUNTY_TZ
from events.rectifications import step_event_id
from projections.base import LoggedEvent
from projections.rectification_board import history, items
from services.kernel.principal import Principal
from services.platform import Platform
from services.scheduler import JOB_TABLE, JOBS, LianxiScheduler
from tests.conftest import Clock, make_platform
from tests.zygote import run_cli

LEAD = Principal("t-lead", "education", "lead", "安全办")
FIRE = Principal("t-fire", "fire-rescue", "liaison", "消防联络员")
START = date(2025, 6, 1)


def at(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=COUNTY_TZ).astimezone(UTC)


def setup_county(platform: Platform, schools: int = 2) -> None:
    platform.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    for i in range(1, schools + 1):
        platform.app.register_school(LEAD, school_id=f"T{i:03d}", name=f"测试学校{i}", town="满都拉图镇",
                                     kind="primary", boarding=False, canteen=True, school_bus=False,
                                     now=at(START - timedelta(days=30)))


def open_item(platform: Platform, key: str, deadline: date, *, now: datetime | None = None) -> uuid.UUID:
    """A reported and assigned hazard; the id follows from `key`, so runs can be compared."""
    now = now or at(START, 10)
    w = platform.app.report_hazard(
        FIRE, kind="unit", units=[], school_id="T001", category="fire", severity="major",
        description=f"隐患 {key}", found_on=now.astimezone(COUNTY_TZ).date(), idempotency_key=key,
        body={"key": key}, now=now,
    )
    item = uuid.UUID(w.id)
    platform.app.assign_rectification(
        LEAD, item, lead_unit="fire-rescue", cooperating_units=[], deadline=deadline, measures=["整改"],
        funds={"amount_cny": "0", "source": "学校公用经费"}, now=now,
    )
    return item


def step_events(platform: Platform) -> list[LoggedEvent]:
    notifications = platform.app.recorder.select_notifications(start=0, limit=1_000_000, inclusive_of_start=False)
    return [e for e in (LoggedEvent.from_notification(n) for n in notifications)
            if e.type in ("RectificationOverdue", "RectificationEscalated")]


def step_key(e: LoggedEvent) -> tuple[str, str, int]:
    return (str(e.originator_id), e.data["deadline"], int(e.data.get("level", 0)))


# -- fake clock ----------------------------------------------------------------------------


def test_fake_clock_walks_the_ladder_day_by_day_and_reruns_take_nothing(sqlite_url: str) -> None:
    clock = Clock(at(START))
    platform = make_platform(sqlite_url, clock=clock)
    try:
        setup_county(platform)
        item = open_item(platform, "a", date(2025, 6, 10))
        scheduler = LianxiScheduler(platform)  # the platform's clock
        seen: dict[tuple[str, int], str] = {}
        day = START
        while day <= date(2025, 7, 20):
            for hour, minute in ((0, 30), (9, 0), (23, 30)):  # three runs a day, as hourly runs would
                clock.now = at(day, hour, minute)
                result = scheduler.run_job("overdue-sweep")
                assert result["as_of"] == clock.now.isoformat()
            day += timedelta(days=1)
        for e in step_events(platform):
            assert e.originator_id == item
            key = (e.type, int(e.data.get("level", 0)))
            assert key not in seen, f"{key} taken twice"
            seen[key] = e.data["occurred_on"]
        assert seen == {
            ("RectificationOverdue", 0): "2025-06-11", ("RectificationEscalated", 1): "2025-06-11",
            ("RectificationEscalated", 2): "2025-06-25", ("RectificationEscalated", 3): "2025-07-10",
        }
        platform.runner.catch_up()
        with platform.read_engine.connect() as conn:
            row = conn.execute(sa.select(items).where(items.c.id == str(item))).mappings().one()
        assert (row["escalation_level"], row["escalation_name"], row["overdue_deadline"]) == (
            3, "纳入考核", "2025-06-10")
    finally:
        platform.close()


def test_run_once_runs_every_job_as_of_the_instant_given(sqlite_url: str) -> None:
    platform = make_platform(sqlite_url, clock=Clock(at(START)))
    try:
        setup_county(platform)
        open_item(platform, "a", date(2025, 6, 10))
        results = LianxiScheduler(platform).run_once(at(date(2025, 6, 26)))
        assert results["overdue-sweep"]["escalations"] == {"1": 1, "2": 1}
        assert LianxiScheduler(platform).run_once(at(date(2025, 6, 26), 15))["overdue-sweep"]["events"] == 0
    finally:
        platform.close()


def test_cli_jobs_run_once_now(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    platform = make_platform(url, clock=Clock(at(START)))
    setup_county(platform)
    open_item(platform, "a", date(2025, 6, 10))
    platform.close()
    env = {**os.environ, "LIANXI_DATABASE_URL": url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(["jobs", "run-once", *args], env=env, timeout=120)

    first = run("--now", "2025-07-12T09:00:00+08:00")
    assert first.returncode == 0, first.stderr
    line = next(x for x in first.stdout.splitlines() if x.startswith("overdue-sweep"))
    assert "as of 2025-07-12T09:00:00+08:00: 1 candidate(s), 1 overdue, escalations L1: 1, L2: 1, L3: 1" in line
    again = run("--now", "2025-07-12T09:00:00+08:00")
    assert "0 candidate(s), 0 overdue, escalations none" in again.stdout
    for bad in ("2025-07-12T09:00:00", "yesterday"):
        proc = run("--now", bad)
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("lianxi: error: --now"), proc.stderr


# -- restart -------------------------------------------------------------------------------


def test_restart_keeps_the_stored_job_and_takes_no_step_twice(database_url: str) -> None:
    clock = Clock(at(START))
    platform = make_platform(database_url, clock=clock)
    setup_county(platform)
    item = open_item(platform, "a", date(2025, 6, 10))
    scheduler = LianxiScheduler(platform)
    scheduler.start()
    try:
        assert scheduler.aps is not None
        job = scheduler.aps.get_job("overdue-sweep")
        assert (job.coalesce, job.misfire_grace_time, job.max_instances) == (True, None, 1)
        assert str(job.trigger).startswith("cron[minute='0']")
        # Park the next run far away so nothing fires during the test; a restart must keep it.
        parked = datetime(2099, 1, 1, tzinfo=UTC)
        scheduler.aps.modify_job("overdue-sweep", next_run_time=parked)
        clock.now = at(date(2025, 6, 11))
        assert scheduler.run_job("overdue-sweep")["events"] == 2
    finally:
        scheduler.shutdown()
        platform.close()

    platform = make_platform(database_url, clock=clock)  # a new process, same database
    scheduler = LianxiScheduler(platform)
    scheduler.start()
    try:
        assert scheduler.aps is not None
        with platform.write_engine.connect() as conn:
            stored = conn.execute(sa.text(f"SELECT id FROM {JOB_TABLE}")).scalars().all()
        assert sorted(stored) == sorted(JOBS)  # one row per job, however often instances start
        assert scheduler.aps.get_job("overdue-sweep").next_run_time == parked
        assert scheduler.run_job("overdue-sweep")["events"] == 0  # the same day again
        clock.now = at(date(2025, 6, 25), 9)
        assert scheduler.run_job("overdue-sweep")["escalations"] == {"2": 1}
        assert scheduler.run_job("overdue-sweep")["events"] == 0
    finally:
        scheduler.shutdown()
        keys = [step_key(e) for e in step_events(platform)]
        platform.close()
    assert sorted(keys) == sorted((str(item), "2025-06-10", lvl) for lvl in (0, 1, 2))


def test_a_run_missed_while_down_fires_once_on_restart_through_the_job_store(sqlite_url: str) -> None:
    clock = Clock(at(date(2025, 6, 30)))
    platform = make_platform(sqlite_url, clock=clock)
    setup_county(platform)
    open_item(platform, "a", date(2025, 6, 10))
    scheduler = LianxiScheduler(platform)
    scheduler.start()
    scheduler.shutdown()
    # As if every instance had been down for the last three hourly runs: the stored job's next
    # run lies in the past (written straight into the job store, as no scheduler is running).
    store = SQLAlchemyJobStore(engine=platform.write_engine, tablename=JOB_TABLE)
    store.start(BackgroundScheduler(), "default")
    job = store.lookup_job("overdue-sweep")
    job._modify(next_run_time=datetime.now(UTC) - timedelta(hours=3))
    store.update_job(job)
    platform.close()

    platform = make_platform(sqlite_url, clock=clock)
    scheduler = LianxiScheduler(platform)
    scheduler.start()  # the job store's entry func is `services.scheduler:run_job`, bound per scheduler
    try:
        def sweeps() -> list[tuple[datetime, dict[str, Any]]]:
            return [(as_of, r) for name, as_of, r in scheduler.runs if name == "overdue-sweep"]

        deadline = time.monotonic() + 30
        while not sweeps() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sweeps(), "the missed run did not fire"
        as_of, result = sweeps()[0]
        assert as_of == clock.now  # the injected clock, not the wall clock
        assert (result["overdue"], result["escalations"]) == (1, {"1": 1, "2": 1})
        assert scheduler.aps is not None
        assert scheduler.aps.get_job("overdue-sweep").next_run_time > datetime.now(UTC)
    finally:
        scheduler.shutdown()
        platform.close()


# -- two instances, one PostgreSQL schema ---------------------------------------------------


def _scenario(platform: Platform, clock: Clock, sweep: Any, days: int) -> None:
    """A month of life: twelve items with deadlines spread over the first days; users act on
    some of them between the daily sweeps (completion, extension while escalated, rejection)."""
    setup_county(platform)
    ids = [open_item(platform, f"item-{k}", START + timedelta(days=k)) for k in range(12)]
    for d in range(1, days + 1):
        day = START + timedelta(days=d)
        clock.now = at(day, 8)
        if d == 2:  # done before its deadline: never overdue
            platform.app.complete_rectification(FIRE, ids[5], summary="完成", evidence=["sha256:1"], now=clock.now)
        if d == 3:
            platform.app.complete_rectification(FIRE, ids[9], summary="完成", evidence=["sha256:2"], now=clock.now)
        if d == 6:  # rejected: a new deadline and a new ladder
            platform.app.reject_rectification(LEAD, ids[9], reason="不彻底", new_deadline=day + timedelta(days=4),
                                              now=clock.now)
        if d == 8:  # extended while already escalated
            platform.app.extend_rectification_deadline(LEAD, ids[1], reason="设备未到",
                                                       new_deadline=day + timedelta(days=5), now=clock.now)
        clock.now = at(day, 9)
        sweep(clock.now)


@pytest.mark.parametrize("forced_collisions", [True, False], ids=["lockstep", "free-running"])
def test_two_instances_take_each_step_exactly_once_over_a_simulated_month(
    pg_url: str, tmp_path: Path, forced_collisions: bool,
) -> None:
    days = 45
    # Reference: one instance alone, on SQLite.
    ref_clock = Clock(at(START))
    ref = make_platform(f"sqlite:///{tmp_path / 'ref.db'}", clock=ref_clock)
    try:
        solo = LianxiScheduler(ref)
        _scenario(ref, ref_clock, lambda now: solo.run_job("overdue-sweep", now), days)
        expected = Counter((step_key(e), e.data["occurred_on"]) for e in step_events(ref))
    finally:
        ref.close()
    assert max(expected.values()) == 1 and len(expected) > 30

    clock = Clock(at(START))
    p1 = make_platform(pg_url, clock=clock)
    p2 = make_platform(pg_url, clock=clock)
    barrier = threading.Barrier(2, timeout=60)
    hook = (lambda _pending: barrier.wait()) if forced_collisions else None
    s1 = LianxiScheduler(p1, on_decided=hook)
    s2 = LianxiScheduler(p2, on_decided=hook)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def both(now: datetime) -> None:
        def run(s: LianxiScheduler) -> None:
            try:
                results.append(s.run_job("overdue-sweep", now))
            except BaseException as e:
                errors.append(e)
                barrier.abort()
        threads = [threading.Thread(target=run, args=(s,)) for s in (s1, s2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors

    try:
        _scenario(p1, clock, both, days)
        got = [(step_key(e), e.data["occurred_on"]) for e in step_events(p1)]
        counts = Counter(key for key, _ in got)
        assert all(n == 1 for n in counts.values()), [k for k, n in counts.items() if n > 1]
        assert Counter(got) == expected  # same steps, same days as one instance alone
        for e in step_events(p1):
            item, deadline, level = step_key(e)
            assert e.data["event_id"] == step_event_id(uuid.UUID(item), deadline, level)
        # Both instances did the work, and the losers of each race reloaded and found nothing.
        assert sum(r["events"] for r in results) == len(got)
        if forced_collisions:
            assert sum(r["conflicts"] for r in results) > 0
        # Both instances' read models agree with the log.
        for p in (p1, p2):
            p.runner.catch_up()
        with p2.read_engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(history)
                                  .where(history.c.type.in_(["RectificationOverdue", "RectificationEscalated"]))
                                  ).scalar_one()
        assert stored == len(got)
    finally:
        p1.close()
        p2.close()
