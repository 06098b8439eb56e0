"""The compliance matrix (台账): school x kind x period -> on time / late / missing / pending,
with rates per kind, per town, per school and per responsible unit.

The projection stores facts only: every record logged, and per (school, kind, period) cell the
number of records, when the first was logged and whether the missing-record job flagged it.
Status depends on the calendar (data) and on today, so it is computed when read:
- on_time: the first record was logged on or before the due day;
- late: logged after the due day (even after the cell was flagged missing);
- missing: nothing logged and the grace has passed (``flagged`` says whether the job has
  recorded ComplianceRecordMissing yet);
- pending: nothing logged yet, still before the end of grace.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from contracts.compliance import ComplianceCalendar, ComplianceKind, period_bounds, periods_overlapping
from events.base import COUNTY_TZ
from events.stored import COMPLIANCE_GAP, COMPLIANCE_RECORD, event_topic
from projections.base import (
    LoggedEvent,
    Projection,
    county_day,
    dialect_insert,
    execute_many,
    insert_ignore,
    metadata,
)
from projections.catalogue_view import schools as schools_table

STATUSES = ("on_time", "late", "missing", "pending")

records = sa.Table(
    "rm_compliance_records",
    metadata,
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("record_id", sa.String(36), nullable=False, unique=True),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("school_id", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(60), nullable=False),
    sa.Column("period", sa.String(12), nullable=False),
    sa.Column("occurred_on", sa.String(10), nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("evidence_count", sa.Integer, nullable=False),
    sa.Column("measure", sa.Float, nullable=True),
    sa.Index("ix_rm_compliance_records_cell", "school_id", "kind", "period"),
)

cells = sa.Table(
    "rm_compliance_cells",
    metadata,
    sa.Column("school_id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(60), primary_key=True),
    sa.Column("period", sa.String(12), primary_key=True),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("first_recorded_on", sa.String(10), nullable=True),  # county-local date
    sa.Column("first_recorded_at", sa.String(32), nullable=True),  # utc_text
    sa.Column("last_occurred_on", sa.String(10), nullable=True),
    sa.Column("measure", sa.Float, nullable=True),  # of the latest record
    sa.Column("missing_since", sa.String(10), nullable=True),
    sa.Column("missing_recorded_at", sa.String(32), nullable=True),
    sa.Index("ix_rm_compliance_cells_kind_period", "kind", "period"),
)


def local_day_of(recorded_at: str) -> str:
    """utc_text -> the county-local date it falls on."""
    moment = datetime.strptime(recorded_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return moment.astimezone(COUNTY_TZ).date().isoformat()


def _least(conn: sa.Connection, a: Any, b: Any) -> Any:
    fn = sa.func.least if conn.dialect.name == "postgresql" else sa.func.min
    return fn(sa.func.coalesce(a, b), b)


def _greatest(conn: sa.Connection, a: Any, b: Any) -> Any:
    fn = sa.func.greatest if conn.dialect.name == "postgresql" else sa.func.max
    return fn(sa.func.coalesce(a, b), b)


class ComplianceView(Projection):
    name = "compliance"
    version = 1
    topics = (event_topic(COMPLIANCE_RECORD, "ComplianceRecordLogged"),
              event_topic(COMPLIANCE_GAP, "ComplianceRecordMissing"))
    tables = (records, cells)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        rows: list[dict[str, Any]] = []
        logged: dict[tuple[str, str, str], dict[str, Any]] = {}
        missing: dict[tuple[str, str, str], dict[str, Any]] = {}
        for e in events:
            d = e.data
            key = (d["school_id"], d["kind"], d["period"])
            if e.type == "ComplianceRecordLogged":
                day = county_day(e.recorded_at)
                rows.append({
                    "position": e.position, "record_id": d["event_id"], "agency": d["agency"],
                    "school_id": key[0], "kind": key[1], "period": key[2], "occurred_on": d["occurred_on"],
                    "recorded_at": e.recorded_at, "evidence_count": len(d["evidence"]), "measure": d["measure"],
                })
                cell = logged.setdefault(key, {
                    "school_id": key[0], "kind": key[1], "period": key[2], "records": 0,
                    "first_recorded_on": day, "first_recorded_at": e.recorded_at,
                    "last_occurred_on": d["occurred_on"], "measure": None,
                })
                cell["records"] += 1
                cell["first_recorded_on"] = min(cell["first_recorded_on"], day)
                cell["first_recorded_at"] = min(cell["first_recorded_at"], e.recorded_at)
                cell["last_occurred_on"] = max(cell["last_occurred_on"], d["occurred_on"])
                cell["measure"] = d["measure"]
            elif e.type == "ComplianceRecordMissing":
                missing.setdefault(key, {
                    "school_id": key[0], "kind": key[1], "period": key[2], "records": 0,
                    "missing_since": d["missing_since"], "missing_recorded_at": e.recorded_at,
                })
        insert_ignore(conn, records, rows)
        if logged:
            ins = dialect_insert(conn, cells)
            x = ins.excluded
            execute_many(conn, cells, ins.on_conflict_do_update(index_elements=["school_id", "kind", "period"], set_={
                "records": cells.c.records + x.records,
                "first_recorded_on": _least(conn, cells.c.first_recorded_on, x.first_recorded_on),
                "first_recorded_at": _least(conn, cells.c.first_recorded_at, x.first_recorded_at),
                "last_occurred_on": _greatest(conn, cells.c.last_occurred_on, x.last_occurred_on),
                "measure": x.measure,
            }), list(logged.values()))
        if missing:
            ins = dialect_insert(conn, cells)
            x = ins.excluded
            execute_many(conn, cells, ins.on_conflict_do_update(index_elements=["school_id", "kind", "period"], set_={
                "missing_since": x.missing_since, "missing_recorded_at": x.missing_recorded_at,
            }), list(missing.values()))


# -- schools as the calendar sees them -------------------------------------------------------------


def school_rows(conn: sa.Connection, *, school: str | None = None, town: str | None = None) -> list[dict[str, Any]]:
    q = sa.select(schools_table.c.school_id, schools_table.c.town, schools_table.c.kind,
                  schools_table.c.canteen, schools_table.c.boarding, schools_table.c.school_bus,
                  schools_table.c.registered_at).order_by(schools_table.c.school_id)
    if school is not None:
        q = q.where(schools_table.c.school_id == school)
    if town is not None:
        q = q.where(schools_table.c.town == town)
    out = []
    for r in conn.execute(q).mappings():
        row = dict(r)
        row["registered_on"] = local_day_of(row.pop("registered_at"))
        out.append(row)
    return out


def owes(rule: ComplianceKind, school: dict[str, Any], label: str, new_school_days: int) -> bool:
    """Whether a school owes a record of this kind for this period: the kind applies to it,
    and it was registered at least ``new_school_days`` before the due day."""
    if not rule.applies(kind=school["kind"], canteen=school["canteen"], boarding=school["boarding"],
                        school_bus=school["school_bus"]):
        return False
    registered = date.fromisoformat(school["registered_on"])
    return registered + timedelta(days=new_school_days) <= rule.due_on(label)


def _cell_rows(conn: sa.Connection, kinds: Iterable[str], labels: Iterable[str],
               school: str | None = None) -> dict[tuple[str, str, str], dict[str, Any]]:
    q = sa.select(cells).where(cells.c.kind.in_(list(kinds)), cells.c.period.in_(list(labels)))
    if school is not None:
        q = q.where(cells.c.school_id == school)
    return {(r["school_id"], r["kind"], r["period"]): dict(r) for r in conn.execute(q).mappings()}


def missing_candidates(
    conn: sa.Connection, calendar: ComplianceCalendar, today: date, lookback_days: int = 400,
) -> list[dict[str, Any]]:
    """Cells whose grace has passed with no record and no gap recorded yet, over periods that
    started within ``lookback_days`` (and not before the calendar took effect)."""
    first = max(calendar.effective_from, today - timedelta(days=lookback_days))
    schools = school_rows(conn)
    out: list[dict[str, Any]] = []
    for rule in calendar.kinds:
        labels = [p for p in periods_overlapping(rule.cadence, first, today)
                  if rule.missing_after(p) < today and period_bounds(rule.cadence, p)[0] >= calendar.effective_from]
        if not labels:
            continue
        known = _cell_rows(conn, [rule.code], labels)
        for label in labels:
            for s in schools:
                if (s["school_id"], rule.code, label) in known:
                    continue
                if owes(rule, s, label, calendar.new_school_days):
                    out.append({"school_id": s["school_id"], "kind": rule.code, "period": label,
                                "due_on": rule.due_on(label), "grace_until": rule.missing_after(label)})
    return out


# -- the matrix ------------------------------------------------------------------------------------


def cell_status(rule: ComplianceKind, label: str, cell: dict[str, Any] | None, today: date) -> str:
    if cell is not None and cell["records"] > 0:
        return "on_time" if cell["first_recorded_on"] <= rule.due_on(label).isoformat() else "late"
    if (cell is not None and cell["missing_since"]) or today > rule.missing_after(label):
        return "missing"
    return "pending"


def compliance_matrix(
    conn: sa.Connection, calendar: ComplianceCalendar, today: date, *, year: int | None = None,
    school: str | None = None, kind: str | None = None, period: str | None = None, town: str | None = None,
    kinds: Iterable[str] | None = None, as_of: date | None = None,
) -> list[dict[str, Any]]:
    """Every cell a school owes (or has filed) in the chosen periods: ``period`` (a label) or
    else every period of ``year`` (default: this year) that has begun by today. ``as_of``
    evaluates statuses as they stood at the end of that day."""
    when = as_of or today
    rules = [r for r in calendar.kinds if (kind is None or r.code == kind) and (kinds is None or r.code in set(kinds))]
    schools = school_rows(conn, school=school, town=town)
    chosen_year = year or when.year
    out: list[dict[str, Any]] = []
    for rule in rules:
        if period is not None:
            try:
                period_bounds(rule.cadence, period)
            except ValueError:
                continue
            labels = [period]
        else:
            labels = periods_overlapping(rule.cadence, date(chosen_year, 1, 1), min(date(chosen_year, 12, 31), when))
            labels = [p for p in labels if period_bounds(rule.cadence, p)[0] <= when]
        labels = [p for p in labels if period_bounds(rule.cadence, p)[1] >= calendar.effective_from]
        if not labels:
            continue
        known = _cell_rows(conn, [rule.code], labels, school=school)
        for label in labels:
            due = rule.due_on(label)
            for s in schools:
                cell = known.get((s["school_id"], rule.code, label))
                if as_of is not None and cell is not None:
                    cell = _as_of(cell, as_of)
                has_records = cell is not None and cell["records"] > 0
                if not has_records and not owes(rule, s, label, calendar.new_school_days):
                    continue
                if as_of is not None and s["registered_on"] > as_of.isoformat():
                    continue
                out.append({
                    "school_id": s["school_id"], "town": s["town"], "kind": rule.code, "period": label,
                    "responsible": rule.responsible, "due_on": due.isoformat(),
                    "missing_after": rule.missing_after(label).isoformat(),
                    "status": cell_status(rule, label, cell, when),
                    "records": cell["records"] if cell else 0,
                    "first_recorded_on": cell["first_recorded_on"] if cell else None,
                    "flagged_missing": bool(cell and cell["missing_since"]),
                    "measure": cell["measure"] if cell else None,
                })
    out.sort(key=lambda c: (c["school_id"], c["kind"], c["period"]))
    return out


def _as_of(cell: dict[str, Any], day: date) -> dict[str, Any] | None:
    """A cell as known at the end of ``day``: a first record logged later did not exist yet,
    nor a gap recorded later. (The count of records is not cut; only presence matters.)"""
    out = dict(cell)
    if out["first_recorded_on"] is not None and out["first_recorded_on"] > day.isoformat():
        out["records"] = 0
        out["first_recorded_on"] = None
    if out["missing_recorded_at"] is not None and local_day_of(out["missing_recorded_at"]) > day.isoformat():
        out["missing_since"] = None
    return out


def _rate(counts: dict[str, int]) -> dict[str, Any]:
    due = counts["on_time"] + counts["late"] + counts["missing"]
    return {
        **counts, "due": due,
        "on_time_rate": round(counts["on_time"] / due, 4) if due else None,
        "filed_rate": round((counts["on_time"] + counts["late"]) / due, 4) if due else None,
    }


def compliance_rates(matrix: Sequence[dict[str, Any]], *, per_school: bool = True) -> dict[str, Any]:
    """Counts and rates of a matrix: overall and per kind, town, responsible unit and school.
    ``due`` counts the cells that are settled (on time + late + missing): past their grace, or
    already filed (a record filed ahead of its due day counts as on time); pending ones wait.
    ``on_time_rate`` = on time / due; ``filed_rate`` = (on time + late) / due."""
    zero = dict.fromkeys(STATUSES, 0)
    overall = dict(zero)
    groups: dict[str, dict[str, dict[str, int]]] = {g: defaultdict(lambda: dict(zero))
                                                    for g in ("kind", "town", "unit", "school")}
    for c in matrix:
        st = c["status"]
        overall[st] += 1
        groups["kind"][c["kind"]][st] += 1
        groups["town"][c["town"]][st] += 1
        groups["unit"][c["responsible"]][st] += 1
        if per_school:
            groups["school"][c["school_id"]][st] += 1
    out: dict[str, Any] = {"overall": _rate(overall)}
    for g, by in groups.items():
        if g == "school" and not per_school:
            continue
        out[f"by_{g}"] = {k: _rate(v) for k, v in sorted(by.items())}
    return out
