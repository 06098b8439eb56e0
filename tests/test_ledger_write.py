"""The ledger's write path (projections/ledger.py ``_write``) against a brute force of the
records: every table's rows, however the records are cut into batches, on SQLite and
PostgreSQL; and its pure helpers on the cases the fast paths could get wrong (a county day
that changes back and forth between records, groups of schools, records without schools)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import orjson
import sqlalchemy as sa

from projections import ledger
from projections.base import LoggedEvent, StoredRow, county_day, utc_text
from services.platform import Platform

TOPIC = "events.duty_log:DutyRecord.DutyPerformed"
UNITS = {"education": ["education.drinking-water", "education.canteen"], "fire-rescue": ["fire-rescue.inspection"],
         "public-security": ["public-security.patrol", "public-security.gate"]}


def _records(n: int, seed: int) -> list[tuple[dict[str, Any], datetime]]:
    """Records over two years (so two coverage years per unit and duty), some without
    schools, recorded up to 40 days after the day performed, around county midnights."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        unit = rng.choice(sorted(UNITS))
        occurred = date(2024, 11, 1) + timedelta(days=rng.randrange(120))
        recorded = datetime(occurred.year, occurred.month, occurred.day, 15, 30, tzinfo=UTC) + timedelta(
            days=rng.randrange(40), minutes=rng.randrange(60))  # 23:30..00:30 in the county
        schools = rng.sample([f"S{i:03d}" for i in range(12)], rng.choice([0, 1, 1, 2, 5]))
        out.append(({"agency": unit, "occurred_on": occurred.isoformat(), "duty_code": rng.choice(UNITS[unit]),
                     "school_ids": schools, "findings": {"count": rng.randrange(3), "text": ""}}, recorded))
    out.sort(key=lambda r: r[1])  # the log's order
    return out


def _expected(records: list[tuple[dict[str, Any], datetime]]) -> dict[str, list[tuple[Any, ...]]]:
    """Every ledger table's rows, straight from the records (no code of the module's)."""
    days: dict[tuple[str, ...], list[Any]] = defaultdict(lambda: [0, 0, set()])
    school_months, school_years = set(), set()
    months: dict[tuple[str, ...], list[Any]] = defaultdict(lambda: [0, 0, ""])
    for d, recorded in records:
        local = recorded.astimezone(timezone(timedelta(hours=8))).date().isoformat()
        row = days[(d["agency"], d["occurred_on"], d["duty_code"], local)]
        row[0] += 1
        row[1] += d["findings"]["count"]
        row[2].update(d["school_ids"])
        m = months[(d["agency"], d["occurred_on"][:7], d["duty_code"])]
        m[0] += 1
        m[1] += d["findings"]["count"]
        m[2] = max(m[2], d["occurred_on"])
        for s in d["school_ids"]:
            school_months.add((d["agency"], d["duty_code"], s, d["occurred_on"][:7]))
            school_years.add((d["agency"], d["duty_code"], s, d["occurred_on"][:4]))
    coverage: dict[tuple[str, ...], int] = defaultdict(int)
    for agency, duty, _, year in school_years:
        coverage[(agency, year, duty)] += 1
    return {
        "days": sorted((*k, n, f, orjson.dumps(sorted(s)).decode()) for k, (n, f, s) in days.items()),
        "school_months": sorted(school_months),
        "school_years": sorted(school_years),
        "months": sorted((*k, *v) for k, v in months.items()),
        "year_coverage": sorted((*k, n) for k, n in coverage.items()),
    }


def _tables(platform: Platform) -> dict[str, list[tuple[Any, ...]]]:
    t = {"days": ledger.days, "school_months": ledger.school_months, "school_years": ledger.school_years,
         "months": ledger.months, "year_coverage": ledger.year_coverage}
    with platform.read_engine.connect() as conn:
        return {name: sorted(tuple(r) for r in conn.execute(sa.select(table))) for name, table in t.items()}


def _events(records: list[tuple[dict[str, Any], datetime]]) -> list[LoggedEvent]:
    return [LoggedEvent(i + 1, "00000000-0000-0000-0000-000000000000", 1, TOPIC, "DutyPerformed",
                        utc_text(recorded), d) for i, (d, recorded) in enumerate(records)]


def test_the_written_rows_are_a_brute_force_of_the_records_however_the_batches_fall(platform: Platform) -> None:
    records = _records(600, seed=7)
    expected = _expected(records)
    assert len(expected["year_coverage"]) > len(UNITS)  # two years for some duty
    assert any(not d["school_ids"] for d, _ in records)
    view = platform.runner.projections["ledger"]
    events = _events(records)
    for sizes in ([600], [1, 2, 3, 50, 97, 447], [37] * 16 + [8]):
        platform.runner.reset("ledger")
        with platform.write_engine.begin() as conn:
            assert not conn.execute(sa.select(ledger.days)).first()
        start = 0
        for size in sizes:
            with platform.write_engine.begin() as conn:
                view.apply(conn, events[start:start + size])
            start += size
        assert start == len(events)
        assert _tables(platform) == expected, sizes


def test_stored_rows_with_any_utc_offset_give_the_same_rows(platform: Platform) -> None:
    """The rebuild's path decodes stored JSON; a timestamp stored with another offset lands
    on the same county day as its UTC text."""
    records = _records(300, seed=11)
    rows: list[StoredRow] = []
    for i, (d, recorded) in enumerate(records):
        tz = timezone(timedelta(hours=8)) if i % 3 == 0 else UTC
        state = orjson.dumps({**d, "timestamp": recorded.astimezone(tz).isoformat()})
        rows.append((i + 1, "00000000-0000-0000-0000-000000000000", 1, TOPIC, state))
    assert any(b"+08:00" in r[4] for r in rows) and any(b"+00:00" in r[4] for r in rows)
    view = platform.runner.projections["ledger"]
    platform.runner.reset("ledger")
    for i in range(0, len(rows), 64):
        with platform.write_engine.begin() as conn:
            view.apply_stored(conn, rows[i:i + 64])
    assert _tables(platform) == _expected(records)


def test_ledger_totals_follows_the_county_day_back_and_forth() -> None:
    """Records alternating across a county midnight (16:00 UTC) and back, out of time order:
    each lands on its own county day."""
    before, after = "2025-03-01T15:59:59.999999Z", "2025-03-01T16:00:00.000000Z"
    d = {"agency": "education", "occurred_on": "2025-03-01", "duty_code": "education.canteen",
         "findings": {"count": 1}}
    records = [({**d, "school_ids": ["A"]}, before), ({**d, "school_ids": ["B"]}, after),
               ({**d, "school_ids": ["C"]}, before), ({**d, "school_ids": []}, "2025-02-28T16:00:00.000000Z")]
    totals = ledger.ledger_totals(records)
    key = ("education", "2025-03-01", "education.canteen")
    assert county_day(before) == "2025-03-01" and county_day(after) == "2025-03-02"
    assert totals == {(*key, "2025-03-01"): (3, 3, {"A", "C"}), (*key, "2025-03-02"): (1, 1, {"B"})}


def test_school_periods_groups_distinct_sorted_schools_and_skips_records_without() -> None:
    batch: dict[ledger.Key, ledger.Totals] = {
        ("u", "2025-03-02", "u.b", "2025-03-02"): (1, 0, {"S2", "S1"}),
        ("u", "2025-03-09", "u.b", "2025-03-10"): (2, 0, {"S3", "S1"}),
        ("u", "2025-04-01", "u.b", "2025-04-01"): (1, 0, {"S9"}),
        ("u", "2025-04-01", "u.a", "2025-04-01"): (1, 0, set()),
        ("a", "2024-12-31", "a.x", "2025-01-01"): (1, 0, {"S1"}),
    }
    assert ledger.school_periods(batch, 7) == [
        ("a", "a.x", "2024-12", ["S1"]), ("u", "u.b", "2025-03", ["S1", "S2", "S3"]), ("u", "u.b", "2025-04", ["S9"])]
    assert ledger.school_periods(batch, 4) == [
        ("a", "a.x", "2024", ["S1"]), ("u", "u.b", "2025", ["S1", "S2", "S3", "S9"])]
    assert ledger.month_rows(batch) == [
        ("u", "2025-03", "u.b", 3, 0, "2025-03-09"), ("u", "2025-04", "u.b", 1, 0, "2025-04-01"),
        ("u", "2025-04", "u.a", 1, 0, "2025-04-01"), ("a", "2024-12", "a.x", 1, 0, "2024-12-31")]
