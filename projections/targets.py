"""Annual targets (年度目标) and school recognitions, and progress against every target for the
county and each town: value, target, gap, and the trend month by month.

How a target is measured (the calendar's ``target_measures`` fills in what targets.yaml leaves
open):
- a recognition, ``share``: schools holding it / schools it can apply to, at each month end;
- a recognition, ``count``: schools awarded it during the year and still holding it;
- a compliance kind: schools with the latest period due by that day on file / schools owing it;
- petitions: the handling rate (办结率) of the year's petitions; with no level set, the target
  is to beat last year's rate.

``target_progress`` and ``logistics_overview`` are the query functions the lead's dashboard,
the brief and the review call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from contracts.catalogue import Target
from contracts.compliance import ComplianceCalendar, period_bounds, periods_overlapping
from events.stored import ANNUAL_TARGET, RECOGNITION, event_topics
from projections.base import LoggedEvent, Projection, insert_ignore, metadata
from projections.compliance import cells, compliance_matrix, compliance_rates, owes, school_rows
from projections.petitions import petition_rates

targets = sa.Table(
    "rm_targets",
    metadata,
    sa.Column("target_id", sa.String(36), primary_key=True),
    sa.Column("code", sa.String(60), nullable=False),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("scope", sa.String(110), nullable=False),
    sa.Column("measure", sa.String(10), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("direction", sa.String(20), nullable=True),
    sa.Column("recognition", sa.String(60), nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("set_on", sa.String(10), nullable=False),
    sa.Column("revised_on", sa.String(10), nullable=True),
    sa.Column("revisions", sa.Integer, nullable=False),
    sa.Index("ix_rm_targets_year", "year"),
)

recognitions = sa.Table(
    "rm_recognitions",
    metadata,
    sa.Column("recognition_id", sa.String(36), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("school_id", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(60), nullable=False),
    sa.Column("level", sa.String(20), nullable=False),
    sa.Column("awarded_on", sa.String(10), nullable=False),
    sa.Column("awarding_body", sa.String(200), nullable=False),
    sa.Column("withdrawn_on", sa.String(10), nullable=True),
    sa.Column("withdrawal_reason", sa.Text, nullable=True),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Index("ix_rm_recognitions_kind", "kind"),
    sa.Index("ix_rm_recognitions_school", "school_id"),
)


class TargetsView(Projection):
    name = "targets"
    version = 1
    topics = (*event_topics(ANNUAL_TARGET, "TargetSet", "TargetRevised"),
              *event_topics(RECOGNITION, "SchoolRecognised", "RecognitionWithdrawn"))
    tables = (targets, recognitions)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        for e in events:
            d = e.data
            oid = e.record_id
            if e.type == "TargetSet":
                insert_ignore(conn, targets, [{
                    "target_id": oid, "code": d["target_code"], "year": d["year"], "scope": d["scope"],
                    "measure": d["measure"], "value": d["value"], "direction": d["direction"],
                    "recognition": d["recognition"], "text": d["text"], "set_on": d["occurred_on"],
                    "revised_on": None, "revisions": 0,
                }])
            elif e.type == "TargetRevised":
                conn.execute(targets.update().where(targets.c.target_id == oid).values(
                    value=d["value"], revised_on=d["occurred_on"], revisions=targets.c.revisions + 1))
            elif e.type == "SchoolRecognised":
                insert_ignore(conn, recognitions, [{
                    "recognition_id": oid, "position": e.position, "school_id": d["school_id"],
                    "kind": d["kind"], "level": d["level"], "awarded_on": d["awarded_on"],
                    "awarding_body": d["awarding_body"], "recorded_at": e.recorded_at,
                }])
            elif e.type == "RecognitionWithdrawn":
                conn.execute(recognitions.update().where(recognitions.c.recognition_id == oid).values(
                    withdrawn_on=d["occurred_on"], withdrawal_reason=d["reason"]))


# -- queries -------------------------------------------------------------------------------------


def list_targets(conn: sa.Connection, year: int) -> list[dict[str, Any]]:
    q = sa.select(targets).where(targets.c.year == year).order_by(targets.c.code, targets.c.scope)
    return [dict(r) for r in conn.execute(q).mappings()]


def list_recognitions(
    conn: sa.Connection, *, school: str | None = None, kind: str | None = None, active_on: date | None = None,
    after: int | None = None, limit: int = 100,
) -> list[dict[str, Any]]:
    q = sa.select(recognitions).order_by(recognitions.c.position.desc()).limit(limit)
    if school is not None:
        q = q.where(recognitions.c.school_id == school)
    if kind is not None:
        q = q.where(recognitions.c.kind == kind)
    if active_on is not None:
        day = active_on.isoformat()
        q = q.where(recognitions.c.awarded_on <= day).where(
            sa.or_(recognitions.c.withdrawn_on.is_(None), recognitions.c.withdrawn_on > day))
    if after is not None:
        q = q.where(recognitions.c.position < after)
    return [dict(r) for r in conn.execute(q).mappings()]


def month_ends(year: int, last: date) -> list[tuple[str, date]]:
    """(YYYY-MM, the month's last day capped at ``last``) for each month of ``year`` begun by ``last``."""
    out = []
    for m in range(1, 13):
        first = date(year, m, 1)
        if first > last:
            break
        end = date(year + (m == 12), m % 12 + 1, 1) - timedelta(days=1)
        out.append((f"{year:04d}-{m:02d}", min(end, last)))
    return out


def _share(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


class _Measurer:
    """Values of one measure for a set of schools at a given day."""

    def __init__(self, conn: sa.Connection, calendar: ComplianceCalendar, year: int,
                 schools: list[dict[str, Any]]) -> None:
        self.conn = conn
        self.calendar = calendar
        self.year = year
        self.schools = schools
        self._recs: dict[str, list[tuple[str, str, str | None]]] = {}
        self._cells: dict[tuple[str, str], dict[str, str | None]] = {}

    def _recognitions(self, kind: str) -> list[tuple[str, str, str | None]]:
        if kind not in self._recs:
            q = sa.select(recognitions.c.school_id, recognitions.c.awarded_on, recognitions.c.withdrawn_on).where(
                recognitions.c.kind == kind)
            self._recs[kind] = [(r[0], r[1], r[2]) for r in self.conn.execute(q)]
        return self._recs[kind]

    def _filed(self, kind: str, label: str) -> dict[str, str | None]:
        key = (kind, label)
        if key not in self._cells:
            q = sa.select(cells.c.school_id, cells.c.first_recorded_on).where(
                cells.c.kind == kind, cells.c.period == label, cells.c.records > 0)
            self._cells[key] = {r[0]: r[1] for r in self.conn.execute(q)}
        return self._cells[key]

    def recognition(self, kind: str, measure: str, schools: list[dict[str, Any]], day: date) -> tuple[int, int]:
        """(numerator, denominator); the denominator of a count is 0."""
        d = day.isoformat()
        ids = {s["school_id"] for s in schools if s["registered_on"] <= d}
        year_start = f"{self.year:04d}-01-01"
        held = set()
        for school, awarded, withdrawn in self._recognitions(kind):
            if school not in ids or awarded > d or (withdrawn is not None and withdrawn <= d):
                continue
            if measure == "count" and awarded < year_start:
                continue
            held.add(school)
        if measure == "count":
            return len(held), 0
        try:
            flag = self.calendar.recognition(kind).applies_to
        except KeyError:
            flag = "all"
        den = sum(1 for s in schools if s["school_id"] in ids and (flag == "all" or s[flag]))
        return len(held), den

    def compliance(self, kind: str, schools: list[dict[str, Any]], day: date) -> tuple[int, int, str | None]:
        """(on file, owing, period) for the latest period overlapping the year that was due by ``day``."""
        rule = self.calendar.kind(kind)
        labels = [p for p in periods_overlapping(rule.cadence, date(self.year, 1, 1), date(self.year, 12, 31))
                  if rule.due_on(p) <= day and period_bounds(rule.cadence, p)[1] >= self.calendar.effective_from]
        if not labels:
            return 0, 0, None
        label = labels[-1]
        filed = self._filed(kind, label)
        d = day.isoformat()
        owing = [s for s in schools if s["registered_on"] <= d and owes(rule, s, label, self.calendar.new_school_days)]
        on_file = sum(1 for s in owing if (filed.get(s["school_id"]) or "9999") <= d)
        return on_file, len(owing), label


def _result(value: float | None, target: float | None, num: int | None, den: int | None,
            trend: dict[str, float | None], direction: str | None, **extra: Any) -> dict[str, Any]:
    gap = None if value is None or target is None else round(target - value, 4)
    if direction == "increase" and target is not None and value is not None:
        met: bool | None = value > target
    else:
        met = None if gap is None else gap <= 1e-9
    return {"value": value, "target": target, "gap": gap, "met": met, "numerator": num, "denominator": den,
            "trend": trend, **extra}


def target_progress(
    conn: sa.Connection, calendar: ComplianceCalendar, year: int, today: date,
    catalogue_targets: Sequence[Target] = (),
) -> dict[str, Any]:
    """Progress against every target of ``year`` (those the lead set, and the catalogue's not
    yet set, marked ``set: false``), for the county and each town, as of ``today`` (or the
    year's end), with the value at each month end."""
    last = min(today, date(year, 12, 31))
    months = month_ends(year, last)
    rows = list_targets(conn, year)
    county_rows = {r["code"]: r for r in rows if r["scope"] == "county"}
    town_rows: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        if r["scope"].startswith("town:"):
            town_rows[r["code"]][r["scope"][5:]] = r
    defs: dict[str, dict[str, Any]] = {}
    for t in catalogue_targets:
        defs[t.code] = {"code": t.code, "text": t.text, "measure": t.measure, "value": t.value,
                        "direction": t.direction, "recognition": t.recognition, "set": False}
    for code, r in county_rows.items():
        defs[code] = {"code": code, "text": r["text"], "measure": r["measure"], "value": r["value"],
                      "direction": r["direction"], "recognition": r["recognition"], "set": True}
    for code in town_rows:
        if code not in defs:
            any_row = next(iter(town_rows[code].values()))
            defs[code] = {"code": code, "text": any_row["text"], "measure": any_row["measure"], "value": None,
                          "direction": any_row["direction"], "recognition": any_row["recognition"], "set": False}
    schools = school_rows(conn)
    by_town: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in schools:
        by_town[s["town"]].append(s)
    measurer = _Measurer(conn, calendar, year, schools)
    petitions = petition_rates(conn, year, last)
    out = []
    for code in sorted(defs):
        spec = defs[code]
        m = calendar.target_measures.get(code)
        recognition = spec["recognition"] or (m.recognition if m else None)
        compliance_kind = m.compliance_kind if m else None
        entry: dict[str, Any] = {k: spec[k] for k in ("code", "text", "measure", "direction", "set")}
        entry["measured_by"] = (
            {"recognition": recognition} if recognition else {"compliance_kind": compliance_kind}
            if compliance_kind else {"petitions": m.petitions} if m and m.petitions else None
        )

        def measure_at(group: list[dict[str, Any]], day: date,
                       recognition: str | None = recognition, compliance_kind: str | None = compliance_kind,
                       measure: str = spec["measure"]) -> tuple[float | None, int | None, int | None, str | None]:
            if recognition:
                num, den = measurer.recognition(recognition, measure, group, day)
                return (float(num), num, None, None) if measure == "count" else (_share(num, den), num, den, None)
            if compliance_kind:
                num, den, label = measurer.compliance(compliance_kind, group, day)
                return _share(num, den), num, den, label
            return None, None, None, None

        if m is not None and m.petitions:
            value = petitions[m.petitions]
            baseline = petitions["previous_year"][m.petitions]
            target_value = spec["value"] if spec["value"] is not None else baseline
            trend = {mo: r[m.petitions] for mo, r in petitions["by_month"].items()}
            entry["county"] = _result(value, target_value, petitions["closed"], petitions["received"], trend,
                                      spec["direction"] if spec["value"] is None else None,
                                      baseline_previous_year=baseline,
                                      satisfaction_rate=petitions["satisfaction_rate"],
                                      satisfaction_previous_year=petitions["previous_year"]["satisfaction_rate"])
            entry["towns"] = []
            out.append(entry)
            continue
        value, num, den, label = measure_at(schools, last)
        trend = {mo: measure_at(schools, day)[0] for mo, day in months}
        entry["county"] = _result(value, spec["value"], num, den, trend, spec["direction"], period=label)
        towns = []
        for town in sorted(by_town):
            group = by_town[town]
            own = town_rows.get(code, {}).get(town)
            if own is not None:
                town_target = own["value"]
            elif spec["measure"] == "share":
                town_target = spec["value"]
            else:
                town_target = None
            tv, tn, td, tl = measure_at(group, last)
            ttrend = {mo: measure_at(group, day)[0] for mo, day in months}
            towns.append({"town": town, **_result(tv, town_target, tn, td, ttrend, spec["direction"], period=tl),
                          "target_set_for_town": own is not None})
        entry["towns"] = towns
        out.append(entry)
    return {"year": year, "as_of": last.isoformat(), "targets": out}


def logistics_overview(
    conn: sa.Connection, calendar: ComplianceCalendar, year: int, today: date,
    catalogue_targets: Sequence[Target] = (),
) -> dict[str, Any]:
    """One call for the lead's dashboard, the joint-meeting brief and the annual review:
    target progress, the year's compliance rates and the petition rates."""
    last = min(today, date(year, 12, 31))
    matrix = compliance_matrix(conn, calendar, last, year=year)
    return {
        "year": year,
        "as_of": last.isoformat(),
        "targets": target_progress(conn, calendar, year, last, catalogue_targets)["targets"],
        "compliance": compliance_rates(matrix, per_school=False),
        "petitions": petition_rates(conn, year, last),
    }
