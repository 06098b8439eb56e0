"""The responsibility ledger (责任台账): for each unit x duty, how often it was performed,
which schools it covered, when last, counts per month/quarter/semester/year, and the duties
with no activity (责任盲区).

One table, ``rm_ledger_days``, serves the live ledger, the ledger as it stood at the end of
any county day (as-of) and the brief: per (unit, day performed, duty, county day recorded),
the records, their findings and the schools they covered (a sorted JSON array).

Why the recording day is enough for as-of: a record's ``occurred_on`` is never after the
county day it was recorded on (``DutyRecord.perform`` refuses future dates, on every path
that creates one), and an as-of cutoff is the end of a county day. So "recorded by the end
of ``as_of``" is ``recorded_on <= as_of``, and it implies ``occurred_on <= as_of``. A ledger
counts the whole months its period spans. Tests hold as-of(today) equal to live and as-of
equal to a brute-force filter of the log.

The live ledger reads rollups instead of the day rows (whose JSON arrays of schools grow with
the county): ``rm_ledger_months`` holds the records, findings and last day per unit, month and
duty; ``rm_ledger_school_months`` (unit, duty, school, month) answers the distinct schools of
any run of whole months, and ``rm_ledger_school_years`` (unit, duty, school, year) those of a
calendar year, whose count per unit and duty ``rm_ledger_year_coverage`` keeps, so a yearly
ledger at 20,000 schools reads a few rows per duty (bench/bench_ledger_year.py). A batch adds
the distinct keys it holds, so a rebuild writes each at most once per batch. As-of reads
the day rows (it needs the recording day).

A batch becomes one row per key: a rebuild writes about one row per eight records instead
of three per record (a row per unit x month x duty x school, the other way to keep
coverage, was most of a rebuild's cost on SQLite and PostgreSQL alike). A key that
already has a row is read and merged in Python, so a row's content never depends on how
the log was cut into batches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from events.base import COUNTY_TZ
from events.stored import DUTY_RECORD, event_topic
from projections.base import (
    LoggedEvent,
    Projection,
    StoredRow,
    county_day,
    metadata,
    recorded_text,
    utc_text,
)
from projections.catalogue_view import applicable_school_counts, current_duties, duties_in_force
from projections.periods import Period, quarter_of, semester_of

days = sa.Table(
    "rm_ledger_days",
    metadata,
    sa.Column("agency", sa.String(64), primary_key=True),
    sa.Column("occurred_on", sa.String(10), primary_key=True),
    sa.Column("duty_code", sa.String(120), primary_key=True),
    sa.Column("recorded_on", sa.String(10), primary_key=True),
    sa.Column("performed_count", sa.Integer, nullable=False),
    sa.Column("findings_count", sa.Integer, nullable=False),
    sa.Column("school_ids", sa.Text, nullable=False),  # JSON array, sorted, distinct
    sa.Index("ix_rm_ledger_days_recorded_on", "recorded_on"),  # a batch's existing keys
    sqlite_with_rowid=False,
)

school_months = sa.Table(
    "rm_ledger_school_months",
    metadata,
    sa.Column("agency", sa.String(64), primary_key=True),
    sa.Column("duty_code", sa.String(120), primary_key=True),
    sa.Column("school_id", sa.String(64), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),  # YYYY-MM performed
    sqlite_with_rowid=False,
)

school_years = sa.Table(
    "rm_ledger_school_years",
    metadata,
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("duty_code", sa.String(120), nullable=False),
    sa.Column("school_id", sa.String(64), nullable=False),
    sa.Column("year", sa.String(4), nullable=False),  # YYYY performed
    sa.PrimaryKeyConstraint("agency", "year", "duty_code", "school_id"),  # a unit's year: one range
    sqlite_with_rowid=False,
)

# The live ledger of a run of whole months reads these two instead of the day rows: per unit,
# month performed and duty, the records, findings and last day performed (sums and a max, so
# adding each batch's totals gives the same row however the log is cut); and per unit, year
# and duty, how many rows ``rm_ledger_school_years`` holds (its distinct schools), counted up by
# the rows each batch actually inserts, so a year's coverage is a row per duty, not a count
# over up to 20,000 school rows per duty.
months = sa.Table(
    "rm_ledger_months",
    metadata,
    sa.Column("agency", sa.String(64), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),  # YYYY-MM performed
    sa.Column("duty_code", sa.String(120), primary_key=True),
    sa.Column("performed_count", sa.Integer, nullable=False),
    sa.Column("findings_count", sa.Integer, nullable=False),
    sa.Column("last_occurred_on", sa.String(10), nullable=False),
    sqlite_with_rowid=False,
)

year_coverage = sa.Table(
    "rm_ledger_year_coverage",
    metadata,
    sa.Column("agency", sa.String(64), primary_key=True),
    sa.Column("year", sa.String(4), primary_key=True),
    sa.Column("duty_code", sa.String(120), primary_key=True),
    sa.Column("schools_covered", sa.Integer, nullable=False),
    sqlite_with_rowid=False,
)

Key = tuple[str, str, str, str]  # agency, occurred_on, duty_code, recorded_on
Totals = tuple[int, int, set[str]]  # records, findings, schools
DayRow = tuple[str, str, str, str, int, int, str]  # the table's columns, in order


def ledger_totals(records: Iterable[tuple[dict[str, Any], str]]) -> dict[Key, Totals]:
    """Pure policy: what a batch of DutyPerformed adds per key, from each record's payload
    and recorded time (UTC text)."""
    totals: dict[Key, list[Any]] = {}
    hour = day = ""
    for d, recorded_at in records:
        if recorded_at[:13] != hour:  # the UTC hour decides the county day; the log comes in time order
            hour = recorded_at[:13]
            day = county_day(recorded_at)
        key = (d["agency"], d["occurred_on"], d["duty_code"], day)
        t = totals.get(key)
        if t is None:
            totals[key] = [1, d["findings"]["count"], set(d["school_ids"])]
        else:
            t[0] += 1
            t[1] += d["findings"]["count"]
            t[2].update(d["school_ids"])
    return {k: (n, f, s) for k, (n, f, s) in totals.items()}


def merged_rows(batch: dict[Key, Totals], existing: Iterable[DayRow]) -> list[DayRow]:
    """Pure: the rows to write, the batch's totals added to the rows its keys already have."""
    totals = dict(batch)
    for agency, occurred_on, duty, recorded_on, n, findings, school_ids in existing:
        key = (agency, occurred_on, duty, recorded_on)
        new = totals.get(key)
        if new is not None:
            totals[key] = (new[0] + n, new[1] + findings, new[2] | set(orjson.loads(school_ids)))
    return [(*k, n, f, orjson.dumps(sorted(s)).decode()) for k, (n, f, s) in totals.items()]


def school_periods(batch: dict[Key, Totals], width: int) -> list[tuple[str, str, str, list[str]]]:
    """Pure: per (unit, duty, month or year performed) of a batch, in that order, its
    distinct schools, sorted; ``width`` 7 cuts the day to its month, 4 to its year. Each
    is written as one statement's rows (a JSON array of schools), not as a row of
    parameters per school."""
    out: dict[tuple[str, str, str], set[str]] = {}
    for (agency, occurred_on, duty, _), (_, _, schools) in batch.items():
        if not schools:
            continue
        group = (agency, duty, occurred_on[:width])
        have = out.get(group)
        if have is None:
            out[group] = set(schools)
        else:
            have |= schools
    return [(*group, sorted(schools)) for group, schools in sorted(out.items())]


MonthRow = tuple[str, str, str, int, int, str]  # rm_ledger_months' columns, in order


def month_rows(batch: dict[Key, Totals]) -> list[MonthRow]:
    """Pure: what a batch adds per (unit, month performed, duty): records, findings, last day."""
    out: dict[tuple[str, str, str], list[Any]] = {}
    for (agency, occurred_on, duty, _), (n, findings, _) in batch.items():
        key = (agency, occurred_on[:7], duty)
        row = out.get(key)
        if row is None:
            out[key] = [n, findings, occurred_on]
        else:
            row[0] += n
            row[1] += findings
            row[2] = max(row[2], occurred_on)
    return [(*k, n, f, last) for k, (n, f, last) in out.items()]


def _stored_records(rows: Sequence[StoredRow]) -> Iterable[tuple[dict[str, Any], str]]:
    loads = orjson.loads
    for row in rows:
        d = loads(row[4])
        ts: str = d["timestamp"]
        yield d, ts if ts.endswith("+00:00") else recorded_text(ts)  # a UTC hour is what county_day reads


class LedgerView(Projection):
    name = "ledger"
    version = 5  # 5: rm_ledger_months and rm_ledger_year_coverage
    topics = (event_topic(DUTY_RECORD, "DutyPerformed"),)
    tables = (days, school_months, school_years, months, year_coverage)
    retired_tables = ("rm_ledger_entries", "rm_ledger_entry_schools", "rm_ledger_monthly", "rm_ledger_month_schools")

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        _write(conn, ledger_totals((e.data, e.recorded_at) for e in events))

    def apply_stored(self, conn: sa.Connection, rows: Sequence[StoredRow]) -> None:
        """Decodes the stored JSON straight into the policy (a rebuild's hot path)."""
        _write(conn, ledger_totals(_stored_records(rows)))


def _write(conn: sa.Connection, batch: dict[Key, Totals]) -> None:
    """Reads the rows the batch's keys already have (every key of a batch was recorded on
    or after its earliest recording day), then writes the merged rows: SQLite through
    executemany, PostgreSQL as one JSON parameter (psycopg dumps a list parameter
    element by element in Python)."""
    if not batch:
        return
    since = min(k[3] for k in batch)
    existing = conn.execute(sa.select(*days.c).where(days.c.recorded_on >= since)).tuples()
    rows = merged_rows(batch, existing)
    pg = conn.dialect.name == "postgresql"
    if pg:
        conn.exec_driver_sql(_PG_UPSERT, (orjson.dumps(rows).decode(),))
    else:
        conn.exec_driver_sql(_SQLITE_UPSERT, rows)
    if pg:
        conn.exec_driver_sql(_PG_MONTHS, (orjson.dumps(month_rows(batch)).decode(),))
    else:
        conn.exec_driver_sql(_SQLITE_MONTHS, month_rows(batch))
    months_of = school_periods(batch, 7)  # none when no record of the batch names a school
    if months_of and pg:
        conn.exec_driver_sql(_PG_MONTH_ROLLUP, (_pg_groups(months_of),))
    elif months_of:
        conn.exec_driver_sql(_SQLITE_MONTH_ROLLUP, [(a, d, m, orjson.dumps(s).decode()) for a, d, m, s in months_of])
    years_of = school_periods(batch, 4)
    if years_of and pg:  # the rows inserted, counted per (unit, year, duty) in the same statement
        conn.exec_driver_sql(_PG_YEAR_ROLLUP, (_pg_groups(years_of),))
    elif years_of:
        _sqlite_year_rollup(conn, years_of)


def _pg_groups(groups: list[tuple[str, str, str, list[str]]]) -> str:
    """The rollup's JSON parameter on PostgreSQL: records, which json_to_recordset parses once
    (``g->>0`` on a ``json`` element parses that element again for each of its schools)."""
    return orjson.dumps([{"a": a, "d": d, "p": p, "s": schools} for a, d, p, schools in groups]).decode()


def _sqlite_year_rollup(conn: sa.Connection, groups: list[tuple[str, str, str, list[str]]]) -> None:
    """One statement per (unit, duty, year), on the driver's cursor: its rowcount is the
    rows inserted (a key already there changes nothing), which the coverage counter adds.
    (One INSERT ... RETURNING for the whole batch, counted here, cost more than these few
    hundred statements: what made them slow was SQLAlchemy's overhead on each.)"""
    added = []
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for agency, duty, year, schools in groups:
            cur.execute(_SQLITE_YEAR_ROLLUP, (agency, duty, year, orjson.dumps(schools).decode()))
            if cur.rowcount:
                added.append((agency, year, duty, cur.rowcount))
    finally:
        cur.close()
    if added:
        conn.exec_driver_sql(_SQLITE_COVERAGE, added)


_COLUMNS = ", ".join(c.name for c in days.c)
_SET = "performed_count = excluded.performed_count, findings_count = excluded.findings_count, " \
       "school_ids = excluded.school_ids"
_CONFLICT = f"ON CONFLICT (agency, occurred_on, duty_code, recorded_on) DO UPDATE SET {_SET}"
_SQLITE_UPSERT = f"INSERT INTO {days.name} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) {_CONFLICT}"
_PG_UPSERT = (f"INSERT INTO {days.name} ({_COLUMNS}) SELECT r->>0, r->>1, r->>2, r->>3, (r->>4)::int, "
              f"(r->>5)::int, r->>6 FROM jsonb_array_elements(%s::jsonb) r {_CONFLICT}")

_MONTH_COLUMNS = ", ".join(c.name for c in months.c)
_MONTH_CONFLICT = (
    "ON CONFLICT (agency, month, duty_code) DO UPDATE SET "
    f"performed_count = {months.name}.performed_count + excluded.performed_count, "
    f"findings_count = {months.name}.findings_count + excluded.findings_count, "
    f"last_occurred_on = {{greatest}}({months.name}.last_occurred_on, excluded.last_occurred_on)")
_SQLITE_MONTHS = (f"INSERT INTO {months.name} ({_MONTH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
                  + _MONTH_CONFLICT.format(greatest="max"))
_PG_MONTHS = (f"INSERT INTO {months.name} ({_MONTH_COLUMNS}) SELECT r->>0, r->>1, r->>2, (r->>3)::int, "
              "(r->>4)::int, r->>5 FROM jsonb_array_elements(%s::jsonb) r "
              + _MONTH_CONFLICT.format(greatest="greatest"))


# The rollups: per (unit, duty, month or year), a JSON array of its schools, which becomes
# a row per school. (A row of parameters per school cost a third more on SQLite: a tuple
# to build and four values to bind for each.)
_SQLITE_ROLLUP = ("INSERT INTO {table} (agency, duty_code, {period}, school_id) SELECT ?, ?, ?, value "
                  "FROM json_each(?) WHERE true ON CONFLICT DO NOTHING")
_PG_ROLLUP = ("INSERT INTO {table} (agency, duty_code, {period}, school_id) SELECT g.a, g.d, g.p, s.school "
              "FROM json_to_recordset(%s::json) g(a text, d text, p text, s json), "
              "json_array_elements_text(g.s) s(school) "
              "ON CONFLICT DO NOTHING")
_SQLITE_MONTH_ROLLUP = _SQLITE_ROLLUP.format(table=school_months.name, period="month")
_SQLITE_YEAR_ROLLUP = _SQLITE_ROLLUP.format(table=school_years.name, period="year")
_PG_MONTH_ROLLUP = _PG_ROLLUP.format(table=school_months.name, period="month")
_SQLITE_COVERAGE = (
    f"INSERT INTO {year_coverage.name} (agency, year, duty_code, schools_covered) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (agency, year, duty_code) DO UPDATE SET "
    f"schools_covered = {year_coverage.name}.schools_covered + excluded.schools_covered")
_PG_YEAR_ROLLUP = (
    f"WITH added AS ({_PG_ROLLUP.format(table=school_years.name, period='year')} "
    "RETURNING agency, year, duty_code) "
    f"INSERT INTO {year_coverage.name} SELECT agency, year, duty_code, count(*) FROM added "
    "GROUP BY agency, year, duty_code ON CONFLICT (agency, year, duty_code) DO UPDATE SET "
    f"schools_covered = {year_coverage.name}.schools_covered + excluded.schools_covered")


# -- queries -------------------------------------------------------------------------------


def end_of_day_utc(day: date) -> str:
    """The last instant of a county-local day, as utc_text."""
    moment = datetime.combine(day + timedelta(days=1), time(0), tzinfo=COUNTY_TZ) - timedelta(microseconds=1)
    return utc_text(moment)


def _assemble(
    agency: str, as_of: date, period: Period, duties: list[dict[str, Any]],
    per_month: dict[str, dict[str, list[Any]]], covered_by_duty: dict[str, int], applicable: dict[str, int],
) -> dict[str, Any]:
    out = []
    blind = []
    for duty in duties:
        code = duty["code"]
        months = per_month.get(code, {})
        count = sum(v[0] for v in months.values())
        by_month = {m: v[0] for m, v in sorted(months.items())}
        by_quarter: dict[str, int] = defaultdict(int)
        by_semester: dict[str, int] = defaultdict(int)
        for m, n in by_month.items():
            by_quarter[quarter_of(m)] += n
            by_semester[semester_of(m)] += n
        applies_to = duty["applies_to"]
        denominator = applicable.get(applies_to) if applies_to != "none" else None
        covered = covered_by_duty.get(code, 0)
        out.append({
            "duty_code": code,
            "text": duty["text"],
            "applies_to": applies_to,
            "performed_count": count,
            "findings_count": sum(v[1] for v in months.values()),
            "schools_covered": covered,
            "schools_applicable": denominator,
            "coverage_ratio": (round(covered / denominator, 4) if denominator else None),
            "last_performed_on": max((v[2] for v in months.values()), default=None),
            "by_month": by_month,
            "by_quarter": dict(by_quarter),
            "by_semester": dict(by_semester),
        })
        if count == 0:
            blind.append(code)
    return {
        "agency": agency, "as_of": as_of.isoformat(), "period": period.label,
        "period_start": period.start.isoformat(), "period_end": period.end.isoformat(),
        "duties": out, "blind_spots": blind,
    }


def live_ledger(conn: sa.Connection, agency: str, period: Period, today: date) -> dict[str, Any]:
    """Everything recorded so far."""
    per_month, covered = _totals(conn, agency, period, recorded_by=None)
    duties = current_duties(conn, agency) if today >= period.end else duties_in_force(conn, agency, today)
    return _assemble(agency, today, period, duties, per_month, covered, applicable_school_counts(conn))


def asof_ledger(conn: sa.Connection, agency: str, period: Period, as_of: date) -> dict[str, Any]:
    """The ledger as it stood at the end of ``as_of``: records that had been recorded by then
    (and so had occurred by then), against the duties and schools known by then."""
    cutoff = end_of_day_utc(as_of)
    per_month, covered = _totals(conn, agency, period, recorded_by=as_of.isoformat())
    duties = duties_in_force(conn, agency, min(period.end, as_of), known_by=cutoff)
    return _assemble(agency, as_of, period, duties, per_month, covered,
                     applicable_school_counts(conn, known_by=cutoff))


def _totals(
    conn: sa.Connection, agency: str, period: Period, recorded_by: str | None,
) -> tuple[dict[str, dict[str, list[Any]]], dict[str, int]]:
    """Per duty: [records, findings, last day performed] per month, and distinct schools
    covered, over the whole months of ``period``; only what was recorded by the end of the
    county day ``recorded_by``, when given."""
    span = period.months()
    t = days.c
    where = [t.agency == agency, t.occurred_on >= f"{span[0]}-01", t.occurred_on <= f"{span[-1]}-31"]
    if recorded_by is None:  # live: the month totals
        m = months.c
        q = (sa.select(m.duty_code, m.month, m.performed_count, m.findings_count, m.last_occurred_on)
             .where(m.agency == agency, m.month >= span[0], m.month <= span[-1]))
    else:
        where.append(t.recorded_on <= recorded_by)
        month = sa.func.substr(t.occurred_on, 1, 7)
        q = (sa.select(t.duty_code, month, sa.func.sum(t.performed_count), sa.func.sum(t.findings_count),
                       sa.func.max(t.occurred_on))
             .where(*where).group_by(t.duty_code, month))
    per_month: dict[str, dict[str, list[Any]]] = defaultdict(dict)
    for code, mo, n, findings, last in conn.execute(q):
        per_month[code][mo] = [int(n), int(findings), last]
    if recorded_by is None and span == [f"{span[0][:4]}-{i:02d}" for i in range(1, 13)]:  # live, a year
        y = year_coverage.c
        cq = sa.select(y.duty_code, y.schools_covered).where(y.agency == agency, y.year == span[0][:4])
    elif recorded_by is None:  # live, other whole months
        r = school_months.c
        cq = (sa.select(r.duty_code, sa.func.count(sa.distinct(r.school_id)))
              .where(r.agency == agency, r.month >= span[0], r.month <= span[-1]).group_by(r.duty_code))
    else:
        school = _schools(conn)
        cq = (sa.select(t.duty_code, sa.func.count(sa.distinct(school.c.value)))
              .select_from(days.join(school, sa.true())).where(*where).group_by(t.duty_code))
    return per_month, {code: int(n) for code, n in conn.execute(cq)}


def activity(conn: sa.Connection, start: date, end: date) -> dict[str, dict[str, int]]:
    """Per unit, over the days ``start``..``end`` performed (everything recorded so far):
    records, findings, and distinct schools covered."""
    t = days.c
    where = [t.occurred_on >= start.isoformat(), t.occurred_on <= end.isoformat()]
    out: dict[str, dict[str, int]] = {}
    q = sa.select(t.agency, sa.func.sum(t.performed_count), sa.func.sum(t.findings_count)).where(*where)
    for agency, n, findings in conn.execute(q.group_by(t.agency)):
        out[agency] = {"records": int(n), "findings": int(findings), "schools": 0}
    school = _schools(conn)
    q2 = (sa.select(t.agency, sa.func.count(sa.distinct(school.c.value))).select_from(days.join(school, sa.true()))
          .where(*where).group_by(t.agency))
    for agency, n in conn.execute(q2):
        out[agency]["schools"] = int(n)
    return out


def _schools(conn: sa.Connection) -> Any:
    """The elements of each row's ``school_ids``, as a table joined to the row (one row
    per school; a row with none drops out, which is what a distinct count wants)."""
    if conn.dialect.name == "postgresql":
        return sa.func.json_array_elements_text(sa.cast(days.c.school_ids, sa.JSON)).table_valued("value")
    return sa.func.json_each(days.c.school_ids).table_valued("value")
