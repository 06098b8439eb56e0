"""Compliance records (台账), the missing-record job and the compliance matrix, on SQLite and
PostgreSQL: each gap is recorded exactly once, whatever runs the job and however often."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from eventsourcing.utils import get_topic

from contracts.catalogue import default_catalogue
from events.logistics import ComplianceGap
from events.rectifications import Rectification
from projections.compliance import compliance_matrix, compliance_rates
from projections.notifications import inbox
from services.kernel.principal import Principal
from services.logistics.gaps import Gap, hazard_id_for_gap
from services.logistics.jobs import run_compliance_sweep
from services.platform import Platform
from services.scheduler import LianxiScheduler
from tests.conftest import make_platform

LEAD = Principal("t-lead", "education", "lead", "test-lead")
JAN = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)
MISSING_TOPIC = get_topic(ComplianceGap.ComplianceRecordMissing)


def _schools(platform: Platform) -> None:
    """S1: boarding with canteen; S2: school bus; S3: kindergarten (no milk, no screening)."""
    for sid, kind, boarding, canteen, bus in (("S1", "junior", True, True, False),
                                              ("S2", "primary", False, False, True),
                                              ("S3", "kindergarten", False, False, False)):
        platform.app.register_school(LEAD, school_id=sid, name=f"学校{sid}", town="甲镇" if sid != "S3" else "乙镇",
                                     kind=kind, boarding=boarding, canteen=canteen, school_bus=bus, now=JAN)


def _log(platform: Platform, school: str, kind: str, period: str, occurred: date, at: datetime,
         agency: str = "education", **kw: Any) -> Any:
    who = LEAD if agency == "education" else Principal(f"t-{agency}", agency, "liaison", agency)
    return platform.app.log_compliance_record(
        who, school_id=school, kind=kind, period=period, occurred_on=occurred,
        evidence=kw.pop("evidence", ["sha256:ab"]),
        measure=kw.pop("measure", None), note="", idempotency_key=kw.pop("key", None), body={"k": kind, "p": period},
        now=at, **kw)


def _missing_events(platform: Platform) -> list[Any]:
    return list(platform.app.recorder.select_notifications(start=1, limit=100_000, topics=[MISSING_TOPIC]))


def test_sweep_records_each_gap_once_and_opens_hazards(platform: Platform) -> None:
    _schools(platform)
    # February: S1 files its dormitory check on time, S2 files the escort record late, nobody
    # files the disinfection records of S2 and S3.
    _log(platform, "S1", "dormitory-safety-check", "2025-02", date(2025, 2, 20), datetime(2025, 2, 21, 2, tzinfo=UTC))
    _log(platform, "S2", "school-bus-teacher-escort", "2025-02", date(2025, 3, 3), datetime(2025, 3, 3, 2, tzinfo=UTC))
    for sid in ("S1",):
        _log(platform, sid, "water-dispenser-disinfection", "2025-02", date(2025, 2, 10),
             datetime(2025, 2, 10, 2, tzinfo=UTC))
    now = datetime(2025, 3, 12, 0, 0, tzinfo=UTC)  # 08:00 county time: Feb grace (10 days) is over
    first = run_compliance_sweep(platform.job_context(), now)
    platform.runner.catch_up()
    with platform.read_engine.connect() as conn:
        cells = {(c["school_id"], c["kind"], c["period"]): c for c in
                 compliance_matrix(conn, platform.app.calendar, date(2025, 3, 12), period="2025-02")}
    assert cells[("S1", "dormitory-safety-check", "2025-02")]["status"] == "on_time"
    assert cells[("S2", "school-bus-teacher-escort", "2025-02")]["status"] == "late"
    assert cells[("S1", "water-dispenser-disinfection", "2025-02")]["status"] == "on_time"
    for sid in ("S2", "S3"):
        cell = cells[(sid, "water-dispenser-disinfection", "2025-02")]
        assert (cell["status"], cell["flagged_missing"]) == ("missing", True)
    # the escort record came in after the due day but within grace: late, never missing
    assert cells[("S2", "school-bus-teacher-escort", "2025-02")]["flagged_missing"] is False
    # kinds that do not apply are not owed: S3 has no dormitory, no bus
    assert ("S3", "dormitory-safety-check", "2025-02") not in cells
    assert ("S3", "school-bus-teacher-escort", "2025-02") not in cells
    with platform.read_engine.connect() as conn:
        year = compliance_matrix(conn, platform.app.calendar, date(2025, 3, 12), year=2025)
    # January is owed too (registered Jan 1, due Jan 31: 30 days), and nobody filed it.
    missing = {(c["school_id"], c["kind"], c["period"]) for c in year if c["status"] == "missing"}
    assert {p for _, _, p in missing} == {"2025-01", "2025-02"}
    assert all(c["flagged_missing"] for c in year if c["status"] == "missing")
    assert first.recorded == len(missing) == len(_missing_events(platform)) == 7

    # Again, and again later the same day: nothing new.
    for _ in range(2):
        again = run_compliance_sweep(platform.job_context(), now)
        assert (again.candidates, again.recorded) == (0, 0)
    assert len(_missing_events(platform)) == first.recorded

    # A late record after the gap was flagged turns the cell "late"; the gap stays in the log.
    _log(platform, "S2", "water-dispenser-disinfection", "2025-02", date(2025, 3, 13),
         datetime(2025, 3, 13, 2, tzinfo=UTC))
    platform.runner.catch_up()
    with platform.read_engine.connect() as conn:
        late = next(c for c in compliance_matrix(conn, platform.app.calendar, date(2025, 3, 13), period="2025-02",
                                                 school="S2", kind="water-dispenser-disinfection"))
        assert (late["status"], late["flagged_missing"]) == ("late", True)

    # Hazard kinds open one hazard per gap on the rectification board; others do not.
    with platform.read_engine.connect() as conn:
        rows = conn.execute(sa.text("select id, category, school_id from rm_rectifications")).all()
    by_id = {r[0]: r for r in rows}
    hazard_gaps = [(s, k, p) for (s, k, p) in missing if platform.app.calendar.kind(k).opens_hazard]
    assert first.hazards == len(hazard_gaps) == 1  # S1's January dormitory check
    for s, k, p in hazard_gaps:
        assert by_id[str(hazard_id_for_gap(s, k, p))][1] == "dormitory"
    assert str(hazard_id_for_gap("S3", "water-dispenser-disinfection", "2025-02")) not in by_id


def test_two_instances_record_each_gap_once(database_url: str) -> None:
    """Two platforms (two processes' worth of app and pools) on one store race to record the
    same gaps: every gap is stored once, and the losers count it as already recorded."""
    a = make_platform(database_url)
    b = make_platform(database_url)
    try:
        a.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
        _schools(a)
        gaps = [Gap(school_id=s, kind="water-dispenser-disinfection", period=f"2025-{m:02d}",
                    due_on=date(2025, m, 28), grace_until=date(2025, m, 28)) for s in ("S1", "S2", "S3")
                for m in range(2, 6)]
        now = datetime(2025, 6, 30, tzinfo=UTC)
        results: list[Any] = []
        barrier = threading.Barrier(2)

        def run(p: Platform) -> None:
            barrier.wait()
            results.append(p.app.record_gaps(gaps, now=now))

        threads = [threading.Thread(target=run, args=(p,)) for p in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(r.recorded for r in results) == len(gaps)
        assert sum(r.already for r in results) == len(gaps)
        assert len(_missing_events(a)) == len(gaps)
    finally:
        a.close()
        b.close()


def test_missing_record_notifies_the_responsible_unit_and_the_job_runs_from_the_scheduler(
        platform: Platform) -> None:
    _schools(platform)
    now = datetime(2025, 4, 20, 0, 0, tzinfo=UTC)
    result = LianxiScheduler(platform).run_job("compliance-sweep", now)
    assert result["recorded"] > 0 and result["hazards"] > 0
    assert LianxiScheduler(platform).run_job("compliance-sweep", now)["recorded"] == 0
    platform.runner.catch_up()
    with platform.read_engine.connect() as conn:
        items = inbox(conn, "education", limit=1000)
        hazards = conn.execute(sa.select(sa.func.count()).select_from(sa.table("rm_rectifications"))).scalar()
    missing = [n for n in items if n["kind"] == "compliance-missing"]
    assert len(missing) == result["recorded"]
    assert any("饮水机消毒记录" in n["title"] for n in missing)
    assert hazards == result["hazards"]
    # the hazards are reported in the responsible unit's name by the job
    item: Rectification = platform.app.repository.get(hazard_id_for_gap("S1", "dormitory-safety-check", "2025-02"))
    assert item.category == "dormitory" and item.reporter == "education"


def test_rates_by_kind_town_and_unit(sqlite_platform: Platform) -> None:
    p = sqlite_platform
    _schools(p)
    _log(p, "S1", "drinking-water-test-report", "2025-Q1", date(2025, 3, 1), datetime(2025, 3, 2, tzinfo=UTC))
    _log(p, "S2", "drinking-water-test-report", "2025-Q1", date(2025, 4, 2), datetime(2025, 4, 2, tzinfo=UTC))
    p.runner.catch_up()
    with p.read_engine.connect() as conn:
        m = compliance_matrix(conn, p.app.calendar, date(2025, 4, 20), kind="drinking-water-test-report",
                              period="2025-Q1")
    rates = compliance_rates(m)
    k = rates["by_kind"]["drinking-water-test-report"]
    assert (k["on_time"], k["late"], k["missing"], k["due"]) == (1, 1, 1, 3)
    assert k["on_time_rate"] == round(1 / 3, 4) and k["filed_rate"] == round(2 / 3, 4)
    assert rates["by_town"]["甲镇"]["filed_rate"] == 1.0 and rates["by_town"]["乙镇"]["filed_rate"] == 0.0
    assert rates["by_unit"]["education"]["due"] == 3
    assert rates["by_school"]["S3"]["missing"] == 1


def test_idempotent_record_and_logger_rules(sqlite_platform: Platform) -> None:
    p = sqlite_platform
    _schools(p)
    at = datetime(2025, 3, 2, tzinfo=UTC)
    first = _log(p, "S1", "micro-fire-station", "2025", date(2025, 3, 1), at, agency="fire-rescue", key="k-1")
    again = _log(p, "S1", "micro-fire-station", "2025", date(2025, 3, 1), at, agency="fire-rescue", key="k-1")
    assert again.replayed and again.id == first.id
    from events.errors import InvariantViolated, NotPermitted

    with pytest.raises(NotPermitted, match="does not log"):
        _log(p, "S1", "micro-fire-station", "2025", date(2025, 3, 1), at, agency="market-supervision")
    with pytest.raises(InvariantViolated, match="does not fit"):
        _log(p, "S1", "micro-fire-station", "2025-Q1", date(2025, 3, 1), at)
    with pytest.raises(InvariantViolated, match="does not owe"):
        _log(p, "S3", "dormitory-safety-check", "2025-02", date(2025, 2, 1), at)
