"""Missing compliance records (台账缺失): what a gap records, shared by the scheduled sweep and
the demo generator. A gap's ids derive from (school, kind, period), so it is stored once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from contracts.catalogue import Catalogue
from contracts.compliance import ComplianceCalendar
from events.base import derive_id, local_date
from events.logistics import ComplianceGap
from events.rectifications import Actor, Rectification
from events.schools import School

SWEEP_ACTOR = "scheduler:compliance-sweep"


@dataclass(frozen=True)
class Gap:
    """A (school, kind, period) whose record is absent past its grace."""

    school_id: str
    kind: str
    period: str
    due_on: date
    grace_until: date


def school_flags(school: School) -> dict[str, Any]:
    return {"kind": school.kind, "canteen": school.canteen, "boarding": school.boarding,
            "school_bus": school.school_bus}


def gap_aggregates(
    gap: Gap, *, calendar: ComplianceCalendar, catalogue: Catalogue, school_exists: Any, now: datetime,
) -> list[Any]:
    """The aggregates a gap records: the ComplianceRecordMissing event, and, for the kinds the
    calendar names, a hazard reported in the responsible unit's name. Both ids derive from
    (school, kind, period); the demo generator and the job share this function."""
    kind = calendar.kind(gap.kind)
    out: list[Any] = [ComplianceGap.declare(
        responsible=kind.responsible, school_id=gap.school_id, kind=gap.kind, period=gap.period,
        due_on=gap.due_on, grace_until=gap.grace_until, opens_hazard=kind.opens_hazard is not None, now=now,
    )]
    if kind.opens_hazard is not None:
        out.append(open_hazard_for_gap(gap, calendar=calendar, catalogue=catalogue, school_exists=school_exists,
                                       now=now))
    return out


def hazard_id_for_gap(school_id: str, kind: str, period: str) -> uuid.UUID:
    return derive_id("compliance-hazard", school_id, kind, period)


def open_hazard_for_gap(
    gap: Gap, *, calendar: ComplianceCalendar, catalogue: Catalogue, school_exists: Any, now: datetime,
) -> Rectification:
    """A missing record of a hazard kind is reported on the rectification board as a hazard
    by the responsible unit."""
    kind = calendar.kind(gap.kind)
    rule = kind.opens_hazard
    assert rule is not None
    units = {u.code for u in catalogue.units.units}
    return Rectification.report(
        item_id=hazard_id_for_gap(gap.school_id, gap.kind, gap.period),
        actor=Actor(agency=kind.responsible, lead=kind.responsible == catalogue.lead.code, logged_by=SWEEP_ACTOR),
        kind="unit", units=[kind.responsible], school_id=gap.school_id, category=rule.category,
        severity=rule.severity,
        description=f"{kind.name}（{gap.period}）逾期未报：应于{gap.due_on.isoformat()}前提交，"
                    f"宽限至{gap.grace_until.isoformat()}仍未提交。",
        found_on=local_date(now), categories=[c.code for c in catalogue.hazards.categories],
        severities=[s.code for s in catalogue.hazards.severities], known_unit=units.__contains__,
        school_exists=school_exists, request_digest="", now=now,
    )
