"""Special rectification campaigns (专项整治, seed 004).

A ``Campaign`` for a year is launched by the lead from a catalogue template: three phases
with deadlines (自查提升 by end of March, 全面检查 April-October, 督导评估 November-December),
five problem aspects, and the schools in scope. Schools submit one ``SelfCheck`` per
campaign (per aspect: pass, or the problems found); member units conduct
``JointInspection``s of several schools together. Every problem and finding carries the id
of the hazard it becomes (derived, so a retry never reports a hazard twice); the
application reports those hazards into the rectification lifecycle in the same commit.

``PhaseReminder`` records the scheduler's reminders about a phase deadline, once per
(campaign, phase, kind).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, TypedDict

from eventsourcing.domain import Aggregate

from events.base import RecordedCreated, derive_id, local_date
from events.errors import InvariantViolated, NotPermitted
from events.evidence import clean_refs

SEVERITIES = ("general", "major", "critical")  # 一般 / 较大 / 重大
MAX_SCHOOLS_PER_INSPECTION = 500
MAX_FINDINGS = 500
# Days a unit gets to rectify an inspection finding when the inspectors set no deadline.
DEFAULT_RECTIFY_DAYS = 30
# Who rectifies an inspection finding by default, per campaign hazard category (seed 003's
# duties): the unit if it took part in the inspection, otherwise the lead.
DEFAULT_RESPONSIBLE = {
    "fire": "fire-rescue",
    "food": "market-supervision",
    "school-bus": "public-security",
    "surroundings": "urban-management",
}
REMINDER_KINDS = ("due-soon", "missed")


class AspectSpec(TypedDict):
    code: str
    text: str


class PhaseSpec(TypedDict):
    code: str
    name: str
    starts: str
    deadline: str


class Problem(TypedDict):
    hazard_id: str
    description: str
    severity: str


class AspectResult(TypedDict):
    aspect: str
    passed: bool
    problems: list[Problem]


class Finding(TypedDict):
    hazard_id: str
    school_id: str
    aspect: str
    description: str
    severity: str
    responsible_unit: str
    deadline: str


def campaign_id(year: int, template: str) -> uuid.UUID:
    return derive_id("campaign", str(year), template)


def self_check_id(campaign: uuid.UUID, school_id: str) -> uuid.UUID:
    return derive_id("self-check", str(campaign), school_id)


def reminder_id(campaign: uuid.UUID, phase: str, kind: str) -> uuid.UUID:
    return derive_id("campaign-reminder", str(campaign), phase, kind)


def _month_day(year: int, md: str) -> date:
    return date(year, int(md[:2]), int(md[3:5]))


class Campaign(Aggregate):
    class CampaignLaunched(RecordedCreated):
        year: int
        template: str
        name: str
        hazard_category: str
        inspecting_units: list[str]
        aspects: list[AspectSpec]
        phases: list[PhaseSpec]
        school_ids: list[str]

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, year: int, template: str, name: str,
        hazard_category: str, inspecting_units: list[str], aspects: list[AspectSpec], phases: list[PhaseSpec],
        school_ids: list[str],
    ) -> None:
        self.year = year
        self.template = template
        self.name = name
        self.hazard_category = hazard_category
        self.inspecting_units = list(inspecting_units)
        self.aspects = [a["code"] for a in aspects]
        self.phases = list(phases)
        self.school_ids = set(school_ids)
        self.launched_on = occurred_on

    @classmethod
    def launch(
        cls, *, lead: str, is_lead: bool, year: int, template: Any, school_ids: Sequence[str],
        school_exists: Any, now: datetime,
    ) -> Campaign:
        """``template`` is a catalogue CampaignTemplate (code, name, hazard_category,
        inspecting_units, aspects, phases with month-day windows)."""
        if not is_lead:
            raise NotPermitted("only the lead unit launches campaigns")
        today = local_date(now)
        if year < today.year:
            raise InvariantViolated(f"year {year} is over; a campaign is launched for this year or a later one")
        schools = list(dict.fromkeys(school_ids))
        if not schools:
            raise InvariantViolated("a campaign covers at least one school")
        missing = [s for s in schools if not school_exists(s)]
        if missing:
            raise InvariantViolated(f"unknown school(s): {', '.join(missing[:10])}")
        phases: list[PhaseSpec] = [
            {"code": p.code, "name": p.name, "starts": _month_day(year, p.starts).isoformat(),
             "deadline": _month_day(year, p.ends).isoformat()}
            for p in template.phases
        ]
        cid = campaign_id(year, template.code)
        return cls._create(
            cls.CampaignLaunched, id=cid, timestamp=now, event_id=str(cid), agency=lead,
            occurred_on=today.isoformat(), year=year, template=template.code, name=template.name,
            hazard_category=template.hazard_category, inspecting_units=list(template.inspecting_units),
            aspects=[{"code": a.code, "text": a.text} for a in template.aspects], phases=phases,
            school_ids=schools,
        )

    def phase(self, code: str) -> PhaseSpec:
        for p in self.phases:
            if p["code"] == code:
                return p
        raise InvariantViolated(f"campaign has no phase {code!r}")

    def inspection_phase_on(self, day: date) -> str:
        """Inspections before the inspection window count toward it; after it, toward evaluation."""
        later = [p for p in self.phases[1:] if day.isoformat() >= p["starts"]]
        return (later[-1] if later else self.phases[1])["code"]

    def in_scope(self, school_id: str) -> bool:
        return school_id in self.school_ids

    def check_day(self, day: date, now: datetime) -> None:
        if day > local_date(now):
            raise InvariantViolated(f"occurred_on {day.isoformat()} is in the future")
        if day.isoformat() < self.launched_on:
            raise InvariantViolated(f"occurred_on {day.isoformat()} is before the campaign was launched")
        if day.year != self.year:
            raise InvariantViolated(f"occurred_on {day.isoformat()} is outside the campaign year {self.year}")


def _severity(value: str, where: str) -> str:
    if value not in SEVERITIES:
        raise InvariantViolated(f"{where}: severity {value!r} is not one of {', '.join(SEVERITIES)}")
    return value


def _text(value: str, where: str, limit: int = 2000) -> str:
    value = value.strip()
    if not value:
        raise InvariantViolated(f"{where} must not be blank")
    if len(value) > limit:
        raise InvariantViolated(f"{where} is longer than {limit} characters")
    return value


class SelfCheck(Aggregate):
    class SelfCheckSubmitted(RecordedCreated):
        campaign_id: str
        year: int
        template: str
        phase: str
        school_id: str
        results: list[AspectResult]
        logged_by: str
        evidence: list[str]  # since v2 (photos and the signed record); v1 self-checks had none

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["evidence"] = []

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, campaign_id: str, year: int, template: str,
        phase: str, school_id: str, results: list[AspectResult], logged_by: str, evidence: list[str],
    ) -> None:
        self.campaign_id = campaign_id
        self.school_id = school_id
        self.results = results
        self.evidence = list(evidence)

    @classmethod
    def submit(
        cls, *, campaign: Campaign, by_agency: str, acts_for_schools: bool, school_id: str,
        occurred_on: date, results: Sequence[dict[str, Any]], logged_by: str, now: datetime,
        evidence: Sequence[str] = (),
    ) -> SelfCheck:
        """``results``: {aspect, passed, problems: [{description, severity}]} for every aspect."""
        if not acts_for_schools:
            raise NotPermitted("schools submit self-checks through the lead bureau's credentials")
        if not campaign.in_scope(school_id):
            raise InvariantViolated(f"school {school_id!r} is not in the campaign's scope")
        campaign.check_day(occurred_on, now)
        sid = self_check_id(campaign.id, school_id)
        by_aspect: dict[str, AspectResult] = {}
        for i, r in enumerate(results):
            aspect = str(r["aspect"])
            if aspect not in campaign.aspects:
                raise InvariantViolated(f"results[{i}]: aspect {aspect!r} is not one of the campaign's")
            if aspect in by_aspect:
                raise InvariantViolated(f"results[{i}]: aspect {aspect!r} is reported twice")
            raw = list(r.get("problems") or [])
            if bool(r["passed"]) == bool(raw):
                raise InvariantViolated(f"results[{i}]: a passed aspect lists no problems, a failed one lists some")
            problems: list[Problem] = [
                {"hazard_id": str(derive_id("self-check-problem", str(sid), aspect, str(j))),
                 "description": _text(str(p["description"]), f"results[{i}].problems[{j}].description"),
                 "severity": _severity(str(p.get("severity", "general")), f"results[{i}].problems[{j}]")}
                for j, p in enumerate(raw)
            ]
            by_aspect[aspect] = {"aspect": aspect, "passed": bool(r["passed"]), "problems": problems}
        missing = [a for a in campaign.aspects if a not in by_aspect]
        if missing:
            raise InvariantViolated(f"a self-check reports every aspect; missing: {', '.join(missing)}")
        return cls._create(
            cls.SelfCheckSubmitted, id=sid, timestamp=now, event_id=str(sid), agency=by_agency,
            occurred_on=occurred_on.isoformat(), campaign_id=str(campaign.id), year=campaign.year,
            template=campaign.template, phase=campaign.phases[0]["code"], school_id=school_id,
            results=[by_aspect[a] for a in campaign.aspects], logged_by=logged_by, evidence=clean_refs(evidence),
        )

    def problems(self) -> list[tuple[str, Problem]]:
        return [(r["aspect"], p) for r in self.results for p in r["problems"]]


class JointInspection(Aggregate):
    class JointInspectionConducted(RecordedCreated):
        campaign_id: str
        year: int
        template: str
        phase: str
        units: list[str]
        school_ids: list[str]
        summary: str
        findings: list[Finding]
        logged_by: str
        evidence: list[str]  # since v2 (photos and the signed record); v1 inspections had none
        # Hash of the request: a retry with the same Idempotency-Key and body is answered with
        # this inspection, one with another body is a conflict ("" before 2025-07).
        request_digest: str = ""

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["evidence"] = []

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, campaign_id: str, year: int, template: str,
        phase: str, units: list[str], school_ids: list[str], summary: str, findings: list[Finding],
        logged_by: str, evidence: list[str], request_digest: str = "",
    ) -> None:
        self.request_digest = request_digest
        self.evidence = list(evidence)
        self.campaign_id = campaign_id
        self.units = list(units)
        self.findings = findings
        self.occurred_on = occurred_on

    @classmethod
    def conduct(
        cls, *, inspection_id: uuid.UUID, campaign: Campaign, by_agency: str, units: Iterable[str],
        school_ids: Sequence[str], occurred_on: date, summary: str, findings: Sequence[dict[str, Any]],
        known_units: Iterable[str], lead: str, logged_by: str, now: datetime, request_digest: str = "",
        evidence: Sequence[str] = (),
    ) -> JointInspection:
        """``findings``: {school_id, aspect, description, severity, responsible_unit?, deadline?}.
        The responsible unit and deadline are the inspectors' proposal; the lead bureau assigns."""
        known = set(known_units)
        team = list(dict.fromkeys(units))
        if by_agency not in team:
            team.insert(0, by_agency)
        if len(team) < 2:
            raise InvariantViolated("a joint inspection is conducted by at least two units")
        unknown = [u for u in team if u not in known]
        if unknown:
            raise InvariantViolated(f"unknown member unit(s): {', '.join(unknown)}")
        schools = list(dict.fromkeys(school_ids))
        if not schools:
            raise InvariantViolated("a joint inspection covers at least one school")
        if len(schools) > MAX_SCHOOLS_PER_INSPECTION:
            raise InvariantViolated(f"an inspection covers at most {MAX_SCHOOLS_PER_INSPECTION} schools")
        outside = [s for s in schools if not campaign.in_scope(s)]
        if outside:
            raise InvariantViolated(f"school(s) not in the campaign's scope: {', '.join(outside[:10])}")
        campaign.check_day(occurred_on, now)
        if len(findings) > MAX_FINDINGS:
            raise InvariantViolated(f"an inspection lists at most {MAX_FINDINGS} findings")
        default_unit = DEFAULT_RESPONSIBLE.get(campaign.hazard_category, lead)
        if default_unit not in team:
            default_unit = lead
        out: list[Finding] = []
        for i, f in enumerate(findings):
            school = str(f["school_id"])
            if school not in schools:
                raise InvariantViolated(f"findings[{i}]: school {school!r} was not inspected")
            aspect = str(f["aspect"])
            if aspect not in campaign.aspects:
                raise InvariantViolated(f"findings[{i}]: aspect {aspect!r} is not one of the campaign's")
            unit = str(f.get("responsible_unit") or default_unit)
            if unit not in known:
                raise InvariantViolated(f"findings[{i}]: unknown responsible unit {unit!r}")
            deadline: date = f.get("deadline") or occurred_on + timedelta(days=DEFAULT_RECTIFY_DAYS)
            if deadline < occurred_on:
                raise InvariantViolated(f"findings[{i}]: deadline is before the inspection")
            out.append({
                "hazard_id": str(derive_id("inspection-finding", str(inspection_id), str(i))),
                "school_id": school, "aspect": aspect,
                "description": _text(str(f["description"]), f"findings[{i}].description"),
                "severity": _severity(str(f.get("severity", "general")), f"findings[{i}]"),
                "responsible_unit": unit, "deadline": deadline.isoformat(),
            })
        return cls._create(
            cls.JointInspectionConducted, id=inspection_id, timestamp=now, event_id=str(inspection_id),
            agency=by_agency, occurred_on=occurred_on.isoformat(), campaign_id=str(campaign.id),
            year=campaign.year, template=campaign.template, phase=campaign.inspection_phase_on(occurred_on),
            units=team, school_ids=schools, summary=_text(summary, "summary"), findings=out,
            logged_by=logged_by, evidence=clean_refs(evidence), request_digest=request_digest,
        )


class PhaseReminder(Aggregate):
    class CampaignPhaseReminderIssued(RecordedCreated):
        campaign_id: str
        template: str
        phase: str
        kind: str  # due-soon | missed
        deadline: str
        school_ids: list[str]

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, campaign_id: str, template: str, phase: str,
        kind: str, deadline: str, school_ids: list[str],
    ) -> None:
        self.school_ids = school_ids

    @classmethod
    def issue(
        cls, *, campaign_id: uuid.UUID, template: str, phase: str, kind: str, deadline: str,
        school_ids: Sequence[str], lead: str, now: datetime,
    ) -> PhaseReminder:
        if kind not in REMINDER_KINDS:
            raise InvariantViolated(f"reminder kind {kind!r} is not one of {', '.join(REMINDER_KINDS)}")
        if not school_ids:
            raise InvariantViolated("a reminder names the schools behind schedule")
        rid = reminder_id(campaign_id, phase, kind)
        return cls._create(
            cls.CampaignPhaseReminderIssued, id=rid, timestamp=now, event_id=str(rid), agency=lead,
            occurred_on=local_date(now).isoformat(), campaign_id=str(campaign_id), template=template,
            phase=phase, kind=kind, deadline=deadline, school_ids=sorted(school_ids),
        )
