"""The responsibility ledger (责任台账): for each unit x duty, how often it was performed,
which schools it covered, when last, counts per month/quarter/semester/year, and the duties
with no activity (责任盲区).

Two tables serve two readers:
- ``rm_ledger_monthly`` / ``rm_ledger_month_schools``: running totals for the live ledger;
- ``rm_ledger_entries`` / ``rm_ledger_entry_schools``: one row per record with both times,
  so the ledger as it stood at the end of any day is a filtered query (recorded_at <= cutoff).
A test holds them equal for today.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from eventsourcing.utils import get_topic

from events.base import COUNTY_TZ
from events.duty_log import DutyRecord
from projections.base import LoggedEvent, Projection, insert_ignore, metadata, upsert_add, utc_text
from projections.catalogue_view import applicable_school_counts, current_duties, duties_in_force
from projections.periods import Period, quarter_of, semester_of

entries = sa.Table(
    "rm_ledger_entries",
    metadata,
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("duty_code", sa.String(120), nullable=False),
    sa.Column("occurred_on", sa.String(10), nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("school_count", sa.Integer, nullable=False),
    sa.Column("findings_count", sa.Integer, nullable=False),
    sa.Index("ix_rm_ledger_entries_agency_day", "agency", "occurred_on"),
)

entry_schools = sa.Table(
    "rm_ledger_entry_schools",
    metadata,
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("school_id", sa.String(40), primary_key=True),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("duty_code", sa.String(120), nullable=False),
    sa.Column("occurred_on", sa.String(10), nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Index("ix_rm_ledger_entry_schools_agency_day", "agency", "occurred_on"),
)

monthly = sa.Table(
    "rm_ledger_monthly",
    metadata,
    sa.Column("agency", sa.String(64), primary_key=True),
    sa.Column("duty_code", sa.String(120), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("performed_count", sa.Integer, nullable=False),
    sa.Column("findings_count", sa.Integer, nullable=False),
    sa.Column("last_performed_on", sa.String(10), nullable=False),
)

month_schools = sa.Table(
    "rm_ledger_month_schools",
    metadata,
    sa.Column("agency", sa.String(64), primary_key=True),
    sa.Column("duty_code", sa.String(120), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("school_id", sa.String(40), primary_key=True),
)


def ledger_tuples(events: Sequence[LoggedEvent]) -> dict[str, list[tuple[Any, ...]]]:
    """Pure policy: the rows a batch of DutyPerformed events adds, as tuples in each
    table's column order. Monthly totals are pre-aggregated so a batch becomes one upsert
    per (unit, duty, month)."""
    out_entries: list[tuple[Any, ...]] = []
    out_entry_schools: list[tuple[Any, ...]] = []
    totals: dict[tuple[str, str, str], list[Any]] = {}
    covered: set[tuple[str, str, str, str]] = set()
    for e in events:
        d = e.data
        agency, duty, day = d["agency"], d["duty_code"], d["occurred_on"]
        month = day[:7]
        findings = int(d["findings"]["count"])
        schools = d["school_ids"]
        position, recorded_at = e.position, e.recorded_at
        out_entries.append((position, d["event_id"], agency, duty, day, recorded_at, len(schools), findings))
        for school in schools:
            out_entry_schools.append((position, school, agency, duty, day, recorded_at))
            covered.add((agency, duty, month, school))
        t = totals.get((agency, duty, month))
        if t is None:
            totals[(agency, duty, month)] = [1, findings, day]
        else:
            t[0] += 1
            t[1] += findings
            if day > t[2]:
                t[2] = day
    return {
        "entries": out_entries,
        "entry_schools": out_entry_schools,
        "monthly": [(a, du, m, c, f, last) for (a, du, m), (c, f, last) in totals.items()],
        "month_schools": list(covered),
    }


def ledger_rows(events: Sequence[LoggedEvent]) -> dict[str, list[dict[str, Any]]]:
    """``ledger_tuples`` as column-name dicts."""
    return {key: [dict(zip(_COLUMNS[key], row, strict=True)) for row in rows]
            for key, rows in ledger_tuples(events).items()}


class LedgerView(Projection):
    name = "ledger"
    version = 1
    topics = (get_topic(DutyRecord.DutyPerformed),)
    tables = (entries, entry_schools, monthly, month_schools)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        sql = _statements(conn.dialect)
        if sql is None:  # a dialect without a hand-written path: the generic helpers
            rows = ledger_rows(events)
            insert_ignore(conn, entries, rows["entries"])
            insert_ignore(conn, entry_schools, rows["entry_schools"])
            upsert_add(conn, monthly, rows["monthly"], keys=["agency", "duty_code", "month"],
                       add=["performed_count", "findings_count"], greatest=["last_performed_on"])
            insert_ignore(conn, month_schools, rows["month_schools"])
            return
        # The same statements the helpers build, written once and fed plain tuples: in a
        # rebuild SQLAlchemy's per-row parameter processing cost more than SQLite's insert.
        for key, tuples in ledger_tuples(events).items():
            if tuples:
                conn.exec_driver_sql(sql[key], tuples)


_TABLES = (("entries", entries), ("entry_schools", entry_schools), ("monthly", monthly),
           ("month_schools", month_schools))
_COLUMNS = {key: tuple(c.name for c in table.c) for key, table in _TABLES}
# ledger_tuples builds rows in this order; a change to a table must change both.
assert _COLUMNS == {
    "entries": ("position", "event_id", "agency", "duty_code", "occurred_on", "recorded_at", "school_count",
                "findings_count"),
    "entry_schools": ("position", "school_id", "agency", "duty_code", "occurred_on", "recorded_at"),
    "monthly": ("agency", "duty_code", "month", "performed_count", "findings_count", "last_performed_on"),
    "month_schools": ("agency", "duty_code", "month", "school_id"),
}, _COLUMNS
_compiled: dict[str, dict[str, str] | None] = {}


def _statements(dialect: sa.Dialect) -> dict[str, str] | None:
    """INSERT ... ON CONFLICT DO NOTHING for the per-record tables and the summing upsert
    for the monthly totals, in the driver's parameter style."""
    if dialect.name in _compiled:
        return _compiled[dialect.name]
    out: dict[str, str] | None = None
    if dialect.name in ("sqlite", "postgresql") and dialect.paramstyle in ("qmark", "format", "pyformat"):
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        larger = "max" if dialect.name == "sqlite" else "greatest"
        out = {}
        for key, table in _TABLES:
            cols = [c.name for c in table.c]
            head = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
            out[key] = head + " ON CONFLICT DO NOTHING"
        m = monthly.name
        out["monthly"] = (
            out["monthly"].removesuffix(" ON CONFLICT DO NOTHING")
            + " ON CONFLICT (agency, duty_code, month) DO UPDATE SET"
            f" performed_count = {m}.performed_count + excluded.performed_count,"
            f" findings_count = {m}.findings_count + excluded.findings_count,"
            f" last_performed_on = {larger}({m}.last_performed_on, excluded.last_performed_on)"
        )
    _compiled[dialect.name] = out
    return out


# -- queries -------------------------------------------------------------------------------


def end_of_day_utc(day: date) -> str:
    """The last instant of a county-local day, as utc_text."""
    moment = datetime.combine(day + timedelta(days=1), time(0), tzinfo=COUNTY_TZ) - timedelta(microseconds=1)
    return utc_text(moment)


def _assemble(
    agency: str, as_of: date, period: Period, duties: list[dict[str, Any]],
    per_month: dict[str, dict[str, list[Any]]], coverage: dict[str, int], applicable: dict[str, int],
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
        covered = coverage.get(code, 0)
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
    """From the running totals: everything recorded so far."""
    months = period.months()
    per_month: dict[str, dict[str, list[Any]]] = defaultdict(dict)
    q = (sa.select(monthly.c.duty_code, monthly.c.month, monthly.c.performed_count,
                   monthly.c.findings_count, monthly.c.last_performed_on)
         .where(monthly.c.agency == agency).where(monthly.c.month.in_(months)))
    for code, month, count, findings, last in conn.execute(q):
        per_month[code][month] = [count, findings, last]
    cq = (sa.select(month_schools.c.duty_code, sa.func.count(sa.distinct(month_schools.c.school_id)))
          .where(month_schools.c.agency == agency).where(month_schools.c.month.in_(months))
          .group_by(month_schools.c.duty_code))
    coverage = {code: int(n) for code, n in conn.execute(cq)}
    duties = current_duties(conn, agency) if today >= period.end else duties_in_force(conn, agency, today)
    return _assemble(agency, today, period, duties, per_month, coverage, applicable_school_counts(conn))


def asof_ledger(conn: sa.Connection, agency: str, period: Period, as_of: date) -> dict[str, Any]:
    """The ledger as it stood at the end of ``as_of``: records that had occurred and been
    recorded by then, against the duties and schools known by then."""
    cutoff = end_of_day_utc(as_of)
    last_day = min(period.end, as_of).isoformat()
    first_day = period.start.isoformat()
    month = sa.func.substr(entries.c.occurred_on, 1, 7)
    q = (sa.select(entries.c.duty_code, month, sa.func.count(), sa.func.sum(entries.c.findings_count),
                   sa.func.max(entries.c.occurred_on))
         .where(entries.c.agency == agency, entries.c.recorded_at <= cutoff,
                entries.c.occurred_on >= first_day, entries.c.occurred_on <= last_day)
         .group_by(entries.c.duty_code, month))
    per_month: dict[str, dict[str, list[Any]]] = defaultdict(dict)
    for code, m, count, findings, last in conn.execute(q):
        per_month[code][m] = [int(count), int(findings or 0), last]
    cq = (sa.select(entry_schools.c.duty_code, sa.func.count(sa.distinct(entry_schools.c.school_id)))
          .where(entry_schools.c.agency == agency, entry_schools.c.recorded_at <= cutoff,
                 entry_schools.c.occurred_on >= first_day, entry_schools.c.occurred_on <= last_day)
          .group_by(entry_schools.c.duty_code))
    coverage = {code: int(n) for code, n in conn.execute(cq)}
    duties = duties_in_force(conn, agency, min(period.end, as_of), known_by=cutoff)
    return _assemble(agency, as_of, period, duties, per_month, coverage,
                     applicable_school_counts(conn, known_by=cutoff))
