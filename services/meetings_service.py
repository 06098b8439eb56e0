"""Use cases for campaigns (专项整治), early warnings (预警), joint meetings and their tasks,
mixed into LianxiApp; and the scheduler jobs of those contexts.

Each method is get -> call the aggregate -> commit. Self-check problems and joint-inspection
findings are reported as hazards (``Rectification.report``) in the same commit as the
self-check or inspection, with ids the campaign domain derived, so a retry cannot report a
hazard twice; inspection findings are assigned to the responsible unit at once.

Schools have no credentials of their own: they act (self-checks, acknowledging a warning)
through the unit that registers them, the lead bureau (教育局), with a liaison or lead token.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.cron import CronTrigger
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.catalogue import default_catalogue
from contracts.escalation import EscalationRules, WarningRules, default_warning_rules
from events.base import COUNTY_TZ, derive_id, local_date
from events.campaigns import Campaign, JointInspection, PhaseReminder, SelfCheck
from events.errors import Conflict, InvariantViolated, NotFound, NotPermitted
from events.meetings import Meeting, Task
from events.rectifications import Actor, Rectification
from events.warnings import EarlyWarning, WarningAcknowledgement
from services.kernel.principal import Principal

if TYPE_CHECKING:
    from eventsourcing.application import Repository
    from eventsourcing.persistence import Recording

    from services.scheduler import LianxiScheduler

log = logging.getLogger(__name__)

ATTEMPTS = 3


class MeetingsSettings(BaseSettings):
    """LIANXI_AGENDA_DRAFT_DAYS: the scheduler drafts a meeting's agenda this many days
    before it; LIANXI_CAMPAIGN_REMINDER_DAYS: phase reminders start this many days before a
    phase deadline."""

    model_config = SettingsConfigDict(env_prefix="LIANXI_", extra="ignore")
    agenda_draft_days: int = 7
    campaign_reminder_days: int = 7


@dataclass(frozen=True)
class Written:
    """What a write answers: the aggregate, the last event it appended, its log position."""

    id: str
    event_id: str
    type: str
    position: int | None
    status: str | None = None
    related: tuple[str, ...] = ()  # ids of aggregates created alongside (hazards, tasks)


def _written(agg_id: uuid.UUID, recordings: Sequence[Any], *, status: str | None = None,
             related: Sequence[str] = ()) -> Written:
    last = [r for r in recordings if r.domain_event.originator_id == agg_id][-1]
    event: Any = last.domain_event
    return Written(id=str(agg_id), event_id=event.event_id, type=type(event).__name__,
                   position=last.notification.id, status=status, related=tuple(related))


class MeetingsUseCases:
    """Mixin for LianxiApp (which provides repository, commit, agency, school_exists)."""

    if TYPE_CHECKING:
        repository: Repository[uuid.UUID]

        def commit(self, *aggregates: Any) -> Sequence[Recording[uuid.UUID]]: ...
        def agency(self, code: str) -> Any: ...
        def school_exists(self, school_id: str) -> bool: ...
        def _known_unit(self, code: str) -> bool: ...
        @property
        def escalation_rules(self) -> EscalationRules: ...

    _warning_rules: WarningRules | None = None

    @property
    def warning_rules(self) -> WarningRules:
        return self._warning_rules or default_warning_rules()

    @warning_rules.setter
    def warning_rules(self, rules: WarningRules) -> None:
        self._warning_rules = rules

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _mtg_writer(principal: Principal) -> None:
        if not principal.can_write:
            raise NotPermitted(f"a {principal.role} credential is read-only")

    def _mtg_is_lead(self, principal: Principal) -> bool:
        return principal.role == "lead" and bool(self.agency(principal.agency).lead)

    def _mtg_lead_code(self) -> str:
        return default_catalogue().lead.code

    def _mtg_acts_for_schools(self, principal: Principal) -> bool:
        return principal.can_write and principal.agency == self._mtg_lead_code()

    def _mtg_unit_codes(self) -> list[str]:
        return [u.code for u in default_catalogue().units.units if self._known_unit(u.code)]

    def _mtg_get(self, agg_id: uuid.UUID, cls: type, what: str) -> Any:
        try:
            agg: Any = self.repository.get(agg_id)
        except AggregateNotFoundError:
            raise NotFound(f"unknown {what} {agg_id}") from None
        if not isinstance(agg, cls):
            raise NotFound(f"unknown {what} {agg_id}")
        return agg

    def _mtg_act(self, agg_id: uuid.UUID, cls: type, what: str, command: Callable[[Any], Any]) -> Written:
        """Load, decide, save; a stale save is decided again from a fresh load."""
        for _ in range(ATTEMPTS):
            agg = self._mtg_get(agg_id, cls, what)
            command(agg)
            try:
                recordings = self.commit(agg)
            except IntegrityError:
                continue
            return _written(agg.id, recordings, status=getattr(agg, "status", None))
        raise Conflict(f"{what} {agg_id} kept changing while this request was processed; retry")

    def _mtg_create(self, agg_id: uuid.UUID, what: str, *aggs: Any, related: Sequence[str] = ()) -> Written:
        try:
            recordings = self.commit(*aggs)
        except IntegrityError:
            raise Conflict(f"{what} {agg_id} is already recorded") from None
        return _written(agg_id, recordings, related=related)

    # -- campaigns -------------------------------------------------------------------------

    def campaign(self, cid: uuid.UUID) -> Campaign:
        agg: Campaign = self._mtg_get(cid, Campaign, "campaign")
        return agg

    def launch_campaign(
        self, principal: Principal, *, year: int, template: str, school_ids: Sequence[str], now: datetime,
    ) -> Written:
        self._mtg_writer(principal)
        try:
            tpl = next(c for c in default_catalogue().campaigns.campaigns if c.code == template)
        except StopIteration:
            codes = ", ".join(c.code for c in default_catalogue().campaigns.campaigns)
            raise InvariantViolated(f"unknown campaign template {template!r}; known: {codes}") from None
        agg = Campaign.launch(lead=principal.agency, is_lead=self._mtg_is_lead(principal), year=year, template=tpl,
                              school_ids=school_ids, school_exists=self.school_exists, now=now)
        return self._mtg_create(agg.id, "campaign", agg)

    def submit_self_check(
        self, principal: Principal, campaign_id: uuid.UUID, *, school_id: str, occurred_on: date,
        results: Sequence[dict[str, Any]], now: datetime,
    ) -> Written:
        """Problems become hazards reported by the school's self-check (category of the campaign)."""
        self._mtg_writer(principal)
        campaign = self.campaign(campaign_id)
        check = SelfCheck.submit(campaign=campaign, by_agency=principal.agency,
                                 acts_for_schools=self._mtg_acts_for_schools(principal), school_id=school_id,
                                 occurred_on=occurred_on, results=results, logged_by=principal.actor, now=now)
        actor = Actor(agency=principal.agency, lead=self._mtg_is_lead(principal), logged_by=principal.actor)
        aspects = {a: t for a, t in _aspect_texts(campaign)}
        hazards = [
            self._mtg_hazard(actor, uuid.UUID(p["hazard_id"]), kind="self-check", units=[], school_id=school_id,
                         category=campaign.hazard_category, severity=p["severity"],
                         description=f"【{campaign.name}·自查】{aspects[aspect]}:{p['description']}",
                         found_on=occurred_on, now=now)
            for aspect, p in check.problems()
        ]
        return self._mtg_create(check.id, "self-check of this school for this campaign", check, *hazards,
                            related=[str(h.id) for h in hazards])

    def conduct_joint_inspection(
        self, principal: Principal, campaign_id: uuid.UUID, *, units: Sequence[str], school_ids: Sequence[str],
        occurred_on: date, summary: str, findings: Sequence[dict[str, Any]], idempotency_key: str | None,
        now: datetime,
    ) -> Written:
        """Findings become hazards reported by the joint inspection and assigned at once to
        the responsible unit with the inspectors' deadline (整改责任、时限)."""
        self._mtg_writer(principal)
        campaign = self.campaign(campaign_id)
        inspection_id = (derive_id("joint-inspection", principal.agency, idempotency_key)
                         if idempotency_key else uuid.uuid4())
        lead = self._mtg_lead_code()
        inspection = JointInspection.conduct(
            inspection_id=inspection_id, campaign=campaign, by_agency=principal.agency, units=units,
            school_ids=school_ids, occurred_on=occurred_on, summary=summary, findings=findings,
            known_units=self._mtg_unit_codes(), lead=lead, logged_by=principal.actor, now=now,
        )
        actor = Actor(agency=principal.agency, lead=self._mtg_is_lead(principal), logged_by=principal.actor)
        # The assignment follows from the inspection itself; it is recorded in the lead
        # bureau's name (assignment is the lead's act) and names the inspection it came from.
        assigner = Actor(agency=lead, lead=True, logged_by=f"joint-inspection:{inspection_id}")
        aspects = {a: t for a, t in _aspect_texts(campaign)}
        today = local_date(now)
        hazards = []
        for f in inspection.findings:
            hazard = self._mtg_hazard(
                actor, uuid.UUID(f["hazard_id"]), kind="joint-inspection", units=inspection.units,
                school_id=f["school_id"], category=campaign.hazard_category, severity=f["severity"],
                description=f"【{campaign.name}·联合督查】{aspects[f['aspect']]}:{f['description']}",
                found_on=occurred_on, now=now)
            hazard.assign(
                actor=assigner, lead_unit=f["responsible_unit"], cooperating_units=[],
                deadline=max(date.fromisoformat(f["deadline"]), today),
                measures=[f"按联合督查意见整改:{f['description']}"],
                funds={"amount_cny": "0.00", "source": "责任单位自筹(待核定)"},
                known_unit=self._known_unit, now=now,
            )
            hazards.append(hazard)
        return self._mtg_create(inspection.id, "joint inspection", inspection, *hazards,
                            related=[str(h.id) for h in hazards])

    def _mtg_hazard(self, actor: Actor, item_id: uuid.UUID, *, kind: str, units: Sequence[str], school_id: str,
                category: str, severity: str, description: str, found_on: date, now: datetime) -> Rectification:
        hz = default_catalogue().hazards
        return Rectification.report(
            item_id=item_id, actor=actor, kind=kind, units=units, school_id=school_id, category=category,
            severity=severity, description=description, found_on=found_on,
            categories=[c.code for c in hz.categories], severities=[s.code for s in hz.severities],
            known_unit=self._known_unit, school_exists=self.school_exists, request_digest="", now=now,
        )

    def issue_phase_reminder(
        self, *, campaign_id: uuid.UUID, template: str, phase: str, kind: str, deadline: str,
        school_ids: Sequence[str], now: datetime,
    ) -> bool:
        """The scheduler's phase reminder: once per (campaign, phase, kind). False when it
        was already issued (by this or another instance)."""
        agg = PhaseReminder.issue(campaign_id=campaign_id, template=template, phase=phase, kind=kind,
                                  deadline=deadline, school_ids=school_ids, lead=self._mtg_lead_code(), now=now)
        try:
            self.commit(agg)
        except IntegrityError:
            return False
        return True

    # -- warnings --------------------------------------------------------------------------

    def issue_warning(
        self, principal: Principal, *, warning_type: str, level: str, title: str, towns: Sequence[str],
        valid_from: datetime, valid_until: datetime, measures: Sequence[str], units: Sequence[str] | None,
        school_ids: Sequence[str], idempotency_key: str | None, now: datetime,
    ) -> Written:
        """``school_ids``: the schools of the covered towns, looked up by the caller."""
        self._mtg_writer(principal)
        wid = derive_id("warning", principal.agency, idempotency_key) if idempotency_key else uuid.uuid4()
        rules = self.warning_rules
        agg = EarlyWarning.issue(
            warning_id=wid, agency=self.agency(principal.agency), issuing_duties=rules.issuing_duties,
            warning_type=warning_type, level=level, title=title, towns=list(towns), valid_from=valid_from,
            valid_until=valid_until, measures=list(measures), school_ids=list(school_ids),
            units=list(units if units is not None else rules.default_units), known_units=self._mtg_unit_codes(),
            now=now,
        )
        return self._mtg_create(wid, "warning", agg)

    def acknowledge_warning(
        self, principal: Principal, warning_id: uuid.UUID, *, recipient_kind: str, recipient: str | None,
        measures_taken: Sequence[str], note: str, now: datetime,
    ) -> Written:
        self._mtg_writer(principal)
        warning: EarlyWarning = self._mtg_get(warning_id, EarlyWarning, "warning")
        who = recipient if recipient is not None else principal.agency
        ack = WarningAcknowledgement.acknowledge(
            warning=warning, by_agency=principal.agency, acts_for_schools=self._mtg_acts_for_schools(principal),
            recipient_kind=recipient_kind, recipient=who, measures_taken=list(measures_taken), note=note,
            logged_by=principal.actor, now=now,
        )
        try:
            recordings = self.commit(ack)
        except IntegrityError:
            raise Conflict(f"{recipient_kind} {who!r} already acknowledged this warning") from None
        return _written(ack.id, recordings)

    def escalate_warning(
        self, warning_id: uuid.UUID, *, schools: Sequence[str], units: Sequence[str], now: datetime,
    ) -> bool:
        """The scheduler's escalation to the lead: once per warning. False when it was
        already escalated (by this or another instance)."""
        for _ in range(ATTEMPTS):
            warning: EarlyWarning = self._mtg_get(warning_id, EarlyWarning, "warning")
            if warning.escalated:
                return False
            warning.escalate(lead=self._mtg_lead_code(), unacknowledged_schools=list(schools),
                             unacknowledged_units=list(units), now=now)
            try:
                self.commit(warning)
            except IntegrityError:
                continue
            return True
        return False

    # -- meetings --------------------------------------------------------------------------

    def meeting(self, mid: uuid.UUID) -> Meeting:
        agg: Meeting = self._mtg_get(mid, Meeting, "meeting")
        return agg

    def schedule_meeting(
        self, principal: Principal, *, number: int, title: str, scheduled_for: date, place: str, now: datetime,
    ) -> Written:
        self._mtg_writer(principal)
        agg = Meeting.schedule(lead=principal.agency, is_lead=self._mtg_is_lead(principal),
                               year=scheduled_for.year, number=number, title=title, scheduled_for=scheduled_for,
                               place=place, now=now)
        try:
            recordings = self.commit(agg)
        except IntegrityError:
            raise Conflict(f"meeting number {number} of {scheduled_for.year} is already scheduled") from None
        return _written(agg.id, recordings, status="scheduled")

    def propose_agenda_item(
        self, principal: Principal, mid: uuid.UUID, *, title: str, detail: str, related_event_ids: Sequence[str],
        now: datetime,
    ) -> Written:
        self._mtg_writer(principal)
        return self._mtg_act(mid, Meeting, "meeting", lambda m: m.propose_item(
            unit=principal.agency, title=title, detail=detail, related_event_ids=related_event_ids, now=now))

    def record_agenda_draft(
        self, mid: uuid.UUID, *, period_start: date, period_end: date, sections: list[Any], now: datetime,
    ) -> bool:
        """The scheduler's draft agenda: once per meeting. False when already drafted."""
        for _ in range(ATTEMPTS):
            m = self.meeting(mid)
            if m.drafted or m.held_on is not None:
                return False
            m.record_draft(lead=self._mtg_lead_code(), period_start=period_start, period_end=period_end,
                           sections=sections, now=now)
            try:
                self.commit(m)
            except IntegrityError:
                continue
            return True
        return False

    def hold_meeting(
        self, principal: Principal, mid: uuid.UUID, *, held_on: date, attendance: Sequence[str],
        absent: Sequence[str], minutes: str, now: datetime,
    ) -> Written:
        self._mtg_writer(principal)
        is_lead = self._mtg_is_lead(principal)
        known = self._mtg_unit_codes()
        return self._mtg_act(mid, Meeting, "meeting", lambda m: m.hold(
            lead=principal.agency, is_lead=is_lead, held_on=held_on, attendance=attendance, absent=absent,
            minutes=minutes, known_units=known, now=now))

    def adopt_resolution(
        self, principal: Principal, mid: uuid.UUID, *, text: str, agenda_item_ids: Sequence[str],
        tasks: Sequence[dict[str, Any]], now: datetime,
    ) -> Written:
        """A resolution and its tasks (TaskAssigned) in one commit."""
        self._mtg_writer(principal)
        is_lead = self._mtg_is_lead(principal)
        known = self._mtg_unit_codes()
        for _ in range(ATTEMPTS):
            m = self.meeting(mid)
            resolution_id, specs = m.adopt_resolution(
                lead=principal.agency, is_lead=is_lead, text=text, agenda_item_ids=agenda_item_ids, tasks=tasks,
                known_units=known, now=now)
            created = [Task.assign(spec=s, meeting_id=str(mid), resolution_id=resolution_id, lead=principal.agency,
                                   now=now) for s in specs]
            try:
                recordings = self.commit(m, *created)
            except IntegrityError:
                continue
            w = _written(m.id, recordings, related=[s["task_id"] for s in specs])
            return Written(id=resolution_id, event_id=w.event_id, type=w.type, position=w.position,
                           related=w.related)
        raise Conflict(f"meeting {mid} kept changing while this request was processed; retry")

    # -- tasks -----------------------------------------------------------------------------

    def task(self, tid: uuid.UUID) -> Task:
        agg: Task = self._mtg_get(tid, Task, "task")
        return agg

    def report_task_progress(
        self, principal: Principal, tid: uuid.UUID, *, note: str, percent: int, occurred_on: date | None,
        now: datetime,
    ) -> Written:
        self._mtg_writer(principal)
        day = occurred_on or local_date(now)
        return self._mtg_act(tid, Task, "task", lambda t: t.report_progress(
            unit=principal.agency, note=note, percent=percent, occurred_on=day, now=now))

    def complete_task(
        self, principal: Principal, tid: uuid.UUID, *, summary: str, evidence: Sequence[str],
        occurred_on: date | None, now: datetime,
    ) -> Written:
        self._mtg_writer(principal)
        day = occurred_on or local_date(now)
        return self._mtg_act(tid, Task, "task", lambda t: t.complete(
            unit=principal.agency, summary=summary, evidence=evidence, occurred_on=day, now=now))

    def verify_task(self, principal: Principal, tid: uuid.UUID, *, note: str, now: datetime) -> Written:
        self._mtg_writer(principal)
        is_lead = self._mtg_is_lead(principal)
        return self._mtg_act(tid, Task, "task", lambda t: t.verify(lead=principal.agency, is_lead=is_lead, note=note,
                                                               now=now))

    def reject_task(
        self, principal: Principal, tid: uuid.UUID, *, reason: str, new_deadline: date, now: datetime,
    ) -> Written:
        self._mtg_writer(principal)
        is_lead = self._mtg_is_lead(principal)
        return self._mtg_act(tid, Task, "task", lambda t: t.reject(
            lead=principal.agency, is_lead=is_lead, reason=reason, new_deadline=new_deadline, now=now))

    def extend_task_deadline(
        self, principal: Principal, tid: uuid.UUID, *, reason: str, new_deadline: date, now: datetime,
    ) -> Written:
        self._mtg_writer(principal)
        is_lead = self._mtg_is_lead(principal)
        limit = self.escalation_rules.max_extensions
        return self._mtg_act(tid, Task, "task", lambda t: t.extend(
            lead=principal.agency, is_lead=is_lead, reason=reason, new_deadline=new_deadline,
            max_extensions=limit, now=now))

    def sweep_tasks(self, task_ids: Sequence[uuid.UUID], *, now: datetime, rules: EscalationRules) -> dict[str, int]:
        """Marks overdue and escalates each task with the rectifications' escalation rules.
        Steps are the aggregate's decision, once per (task, deadline, level)."""
        steps = rules.domain_steps()
        out = {"candidates": len(task_ids), "events": 0, "conflicts": 0}
        for tid in task_ids:
            for _ in range(ATTEMPTS):
                try:
                    t = self.task(tid)
                except NotFound:
                    break
                n = t.sweep(steps=steps, now=now, rules_version=rules.version)
                if not n:
                    break
                try:
                    self.commit(t)
                except IntegrityError:
                    out["conflicts"] += 1
                    continue
                out["events"] += n
                break
        return out


def _aspect_texts(campaign: Campaign) -> list[tuple[str, str]]:
    tpl = next((c for c in default_catalogue().campaigns.campaigns if c.code == campaign.template), None)
    texts = {a.code: a.text for a in tpl.aspects} if tpl else {}
    return [(a, texts.get(a, a)) for a in campaign.aspects]


# -- scheduler jobs --------------------------------------------------------------------------
# Registered by services/scheduler.py from MEETING_JOBS. Each finds candidates in a read model
# (after catching it up) and lets the aggregates decide; ids derive from what the step
# follows from, so re-runs and concurrent instances never repeat a step.


def warning_escalation_job(scheduler: LianxiScheduler, now: datetime) -> dict[str, Any]:
    from projections.warning_response import due_for_escalation

    platform = scheduler.platform
    platform.runner.catch_up("warning_response")
    with platform.read_engine.connect() as conn:
        due = due_for_escalation(conn, now, platform.app.warning_rules)
    escalated = sum(
        platform.app.escalate_warning(uuid.UUID(w["warning_id"]), schools=w["schools"], units=w["units"], now=now)
        for w in due
    )
    return {"as_of": now.isoformat(), "candidates": len(due), "escalated": escalated}


def agenda_draft_job(scheduler: LianxiScheduler, now: datetime) -> dict[str, Any]:
    from projections.meetings import assemble_agenda, list_meetings

    platform = scheduler.platform
    days = MeetingsSettings().agenda_draft_days
    today = local_date(now)
    platform.runner.catch_up()
    drafted = 0
    with platform.read_engine.connect() as conn:
        due = [m for m in list_meetings(conn) if m["status"] == "scheduled" and m["drafted_event_id"] is None
               and today <= date.fromisoformat(m["scheduled_for"]) <= today + timedelta(days=days)]
        agendas = [assemble_agenda(conn, m["meeting_id"], today) for m in due]
    for m, agenda in zip(due, agendas, strict=True):
        if agenda is None:
            continue
        drafted += platform.app.record_agenda_draft(
            uuid.UUID(m["meeting_id"]), period_start=date.fromisoformat(agenda["period_start"]),
            period_end=date.fromisoformat(agenda["period_end"]), sections=agenda["counts"], now=now)
    return {"as_of": now.isoformat(), "candidates": len(due), "drafted": drafted}


def campaign_reminder_job(scheduler: LianxiScheduler, now: datetime) -> dict[str, Any]:
    from projections.campaign_progress import reminders_due

    platform = scheduler.platform
    platform.runner.catch_up("campaign_progress")
    with platform.read_engine.connect() as conn:
        due = reminders_due(conn, local_date(now), MeetingsSettings().campaign_reminder_days)
    issued = sum(
        platform.app.issue_phase_reminder(
            campaign_id=uuid.UUID(r["campaign_id"]), template=r["template"], phase=r["phase"], kind=r["kind"],
            deadline=r["deadline"], school_ids=r["school_ids"], now=now)
        for r in due
    )
    return {"as_of": now.isoformat(), "candidates": len(due), "issued": issued}


def task_overdue_job(scheduler: LianxiScheduler, now: datetime) -> dict[str, Any]:
    from projections.meetings import task_overdue_candidates

    platform = scheduler.platform
    platform.runner.catch_up("meetings")
    with platform.read_engine.connect() as conn:
        ids = task_overdue_candidates(conn, local_date(now), scheduler.rules.level_due)
    result = platform.app.sweep_tasks([uuid.UUID(i) for i in ids], now=now, rules=scheduler.rules)
    return {"as_of": now.isoformat(), **result}


# (name, description, run, trigger factory) — see services/scheduler.py JobSpec.
MEETING_JOBS: list[tuple[str, str, Callable[[Any, datetime], dict[str, Any]], Callable[[], Any]]] = [
    # Every 15 minutes: the shortest escalation window (red) is counted in hours.
    ("warning-escalation", "warnings: escalate unacknowledged warnings to the lead",
     warning_escalation_job, lambda: CronTrigger(minute="*/15", timezone=COUNTY_TZ)),
    ("agenda-draft", "meetings: assemble the draft agenda N days before each meeting",
     agenda_draft_job, lambda: CronTrigger(hour=7, minute=0, timezone=COUNTY_TZ)),
    ("campaign-reminders", "campaigns: phase-deadline reminders for schools behind schedule",
     campaign_reminder_job, lambda: CronTrigger(hour=8, minute=0, timezone=COUNTY_TZ)),
    ("task-overdue", "tasks: mark overdue and escalate (督办 → 通报 → 纳入考核)",
     task_overdue_job, lambda: CronTrigger(minute=5, timezone=COUNTY_TZ)),
]
