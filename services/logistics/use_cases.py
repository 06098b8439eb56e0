"""Use cases of school logistics: annual targets, recognitions, compliance records (台账),
the missing-record job, and logistics petitions (信访).

``LogisticsMixin`` adds one method per use case to ``LianxiApp`` (get -> call -> save); it uses
only what the app provides (``repository``, ``commit``, ``save``, ``agency``, ``school_exists``).
``run_compliance_sweep`` is the scheduled job: it reads the compliance read model, then records
each gap once (the gap's id derives from school, kind and period) and, for the kinds the calendar
names, opens a hazard on the rectification board with an id that derives from the same triple.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts.catalogue import Catalogue, default_catalogue
from contracts.compliance import ComplianceCalendar, PeriodError, default_calendar, period_bounds
from events.base import derive_id, local_date
from events.errors import Conflict, InvariantViolated, NotFound, NotPermitted
from events.logistics import (
    AnnualTarget,
    ComplianceGap,
    ComplianceRecord,
    Petition,
    Recognition,
    compliance_gap_id,
    compliance_record_id,
    petition_id,
    target_aggregate_id,
)
from events.schools import School, school_aggregate_id
from services.kernel.principal import Principal
from services.kernel.results import Appended, request_digest

if TYPE_CHECKING:
    from eventsourcing.persistence import Recording

    from services.platform import Platform

log = logging.getLogger(__name__)

# Units that register petitions: the petitions bureau (旗信访局) and the lead bureau.
PETITION_RECEIVERS = ("petitions", "education")
SWEEP_ACTOR = "scheduler:compliance-sweep"
SWEEP_BATCH = 200
_UNSET: Any = object()


@dataclass(frozen=True)
class Gap:
    """A (school, kind, period) whose record is absent past its grace."""

    school_id: str
    kind: str
    period: str
    due_on: date
    grace_until: date


@dataclass
class SweepResult:
    candidates: int = 0
    recorded: int = 0
    already: int = 0
    hazards: int = 0
    gap_ids: list[str] = field(default_factory=list)


def _school_flags(school: School) -> dict[str, Any]:
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
        hazard = open_hazard_for_gap(gap, calendar=calendar, catalogue=catalogue, school_exists=school_exists,
                                     now=now)
        if hazard is not None:
            out.append(hazard)
    return out


def hazard_id_for_gap(school_id: str, kind: str, period: str) -> uuid.UUID:
    return derive_id("compliance-hazard", school_id, kind, period)


def open_hazard_for_gap(
    gap: Gap, *, calendar: ComplianceCalendar, catalogue: Catalogue, school_exists: Any, now: datetime,
) -> Any | None:
    """Integration with the rectification board (events.rectifications): a missing record of a
    hazard kind is reported as a hazard by the responsible unit. Returns None when that
    context is not installed."""
    try:
        from events.rectifications import Actor, Rectification
    except ImportError:  # pragma: no cover - the board ships with the platform
        return None
    kind = calendar.kind(gap.kind)
    rule = kind.opens_hazard
    assert rule is not None
    units = {u.code for u in catalogue.units.units}
    return Rectification.report(
        item_id=hazard_id_for_gap(gap.school_id, gap.kind, gap.period),
        actor=Actor(agency=kind.responsible, lead=kind.responsible == catalogue.lead.code, logged_by=SWEEP_ACTOR),
        kind="unit", units=[kind.responsible], school_id=gap.school_id, category=rule.category,
        severity=rule.severity,
        description=f"{kind.name}({gap.period})逾期未报:应于{gap.due_on.isoformat()}前提交,"
                    f"宽限至{gap.grace_until.isoformat()}仍未提交。",
        found_on=local_date(now), categories=[c.code for c in catalogue.hazards.categories],
        severities=[s.code for s in catalogue.hazards.severities], known_unit=units.__contains__,
        school_exists=school_exists, request_digest="", now=now,
    )


class LogisticsMixin:
    """Logistics use cases on LianxiApp. The attributes below are provided by the app."""

    repository: Any
    compliance_calendar: ComplianceCalendar | None = None
    logistics_catalogue: Catalogue | None = None

    if TYPE_CHECKING:  # provided by LianxiApp; declared here for type checkers only
        def commit(self, *aggregates: Any) -> Sequence[Recording[uuid.UUID]]: ...
        def agency(self, code: str) -> Any: ...
        def school_exists(self, school_id: str) -> bool: ...
        def position_of(self, originator_id: uuid.UUID, version: int) -> int | None: ...

    @property
    def calendar(self) -> ComplianceCalendar:
        return self.compliance_calendar or default_calendar()

    @property
    def _lx_catalogue(self) -> Catalogue:
        return self.logistics_catalogue or default_catalogue()

    # -- helpers ---------------------------------------------------------------------------

    def _lx_get(self, agg_id: uuid.UUID, what: str) -> Any:
        try:
            return self.repository.get(agg_id)
        except AggregateNotFoundError:
            raise NotFound(f"unknown {what} {agg_id}") from None

    def _lx_maybe(self, agg_id: uuid.UUID) -> Any | None:
        try:
            return self.repository.get(agg_id)
        except AggregateNotFoundError:
            return None

    def _lx_school(self, school_id: str) -> School | None:
        school: School | None = self._lx_maybe(school_aggregate_id(school_id))
        return school

    def _lx_is_lead(self, principal: Principal) -> bool:
        if principal.role != "lead":
            return False
        return bool(self.agency(principal.agency).lead)

    @staticmethod
    def _lx_require_writer(principal: Principal) -> None:
        if not principal.can_write:
            raise NotPermitted("this credential may not write")

    def _lx_written(self, recordings: Sequence[Any]) -> Appended:
        last = recordings[-1]
        event: Any = last.domain_event
        return Appended(id=str(event.originator_id), position=last.notification.id)

    def _lx_commit_new(self, agg: Any, *, existing_check: Any) -> Appended:
        """Saves a new aggregate whose id is deterministic; a racing duplicate answers through
        ``existing_check`` (replay or conflict)."""
        try:
            return self._lx_written(self.commit(agg))
        except IntegrityError:
            existing = self._lx_maybe(agg.id)
            if existing is None:
                raise
            result: Appended = existing_check(existing)
            return result

    # -- targets -----------------------------------------------------------------------------

    def set_target(
        self, principal: Principal, *, code: str, year: int, scope: str = "county", value: Any = _UNSET,
        reason: str = "", now: datetime,
    ) -> Appended:
        """Sets a catalogue target for a year and scope; the value defaults to the catalogue's.
        Setting it again with another value revises it (with a reason)."""
        self._lx_require_writer(principal)
        lead = self._lx_is_lead(principal)
        try:
            target = next(t for t in self._lx_catalogue.targets.targets if t.code == code)
        except StopIteration:
            raise InvariantViolated(f"unknown target {code!r}") from None
        chosen = target.value if value is _UNSET else value
        recognition = target.recognition
        measure = self.calendar.target_measures.get(code)
        if recognition is None and measure is not None:
            recognition = measure.recognition
        agg_id = target_aggregate_id(code, year, scope)
        existing: AnnualTarget | None = self._lx_maybe(agg_id)
        if existing is not None:
            if not existing.revise(by_agency=principal.agency, by_lead=lead, value=chosen, reason=reason,
                                   set_by=principal.actor, now=now):
                return Appended(id=str(agg_id), position=None, replayed=True)
            return self._lx_written(self.commit(existing))
        agg = AnnualTarget.set_target(
            by_agency=principal.agency, by_lead=lead, target_code=code, year=year, scope=scope,
            measure=target.measure, value=chosen, direction=target.direction, recognition=recognition,
            text=target.text, set_by=principal.actor, now=now,
        )
        return self._lx_commit_new(agg, existing_check=lambda e: Appended(str(e.id), None, True))

    def set_catalogue_targets(self, principal: Principal, *, year: int, now: datetime) -> list[Appended]:
        """Every catalogue target for the county, at the catalogue's values (idempotent)."""
        return [self.set_target(principal, code=t.code, year=year, now=now) for t in self._lx_catalogue.targets.targets]

    # -- recognitions ----------------------------------------------------------------------

    def recognise_school(
        self, principal: Principal, *, school_id: str, kind: str, level: str, awarded_on: date,
        awarding_body: str, evidence: list[str], now: datetime,
    ) -> Appended:
        self._lx_require_writer(principal)
        lead = self._lx_is_lead(principal)
        school = self._lx_school(school_id)
        if school is None:
            raise InvariantViolated(f"unknown school {school_id!r}")
        known = [r.code for r in self.calendar.recognitions]
        applies = True
        if kind in known:
            flag = self.calendar.recognition(kind).applies_to
            applies = flag == "all" or bool(getattr(school, flag))
        agg = Recognition.award(
            by_agency=principal.agency, by_lead=lead, school_id=school_id, school_applies=applies, kind=kind,
            known_kinds=known, level=level, awarded_on=awarded_on, awarding_body=awarding_body,
            evidence=evidence, logged_by=principal.actor, now=now,
        )

        def check(existing: Recognition) -> Appended:
            if not existing.same_award(awarding_body=awarding_body, evidence=evidence):
                raise Conflict("this recognition (school, kind, level, date) is already recorded differently")
            return Appended(id=str(existing.id), position=self.position_of(existing.id, 1), replayed=True)

        prior: Recognition | None = self._lx_maybe(agg.id)
        if prior is not None:
            return check(prior)
        return self._lx_commit_new(agg, existing_check=check)

    def withdraw_recognition(
        self, principal: Principal, *, recognition: str, withdrawn_on: date, reason: str, now: datetime,
    ) -> Appended:
        self._lx_require_writer(principal)
        agg: Recognition = self._lx_get(_parse_uuid(recognition, "recognition"), "recognition")
        agg.withdraw(by_agency=principal.agency, by_lead=self._lx_is_lead(principal), withdrawn_on=withdrawn_on,
                     reason=reason, logged_by=principal.actor, now=now)
        return self._lx_written(self.commit(agg))

    # -- compliance records ----------------------------------------------------------------

    def log_compliance_record(
        self, principal: Principal, *, school_id: str, kind: str, period: str, occurred_on: date,
        evidence: list[str], measure: float | None, note: str, idempotency_key: str | None,
        body: dict[str, Any], now: datetime,
    ) -> Appended:
        self._lx_require_writer(principal)
        digest = request_digest(body)
        record_id = compliance_record_id(principal.agency, idempotency_key)
        if idempotency_key is not None:
            prior: ComplianceRecord | None = self._lx_maybe(record_id)
            if prior is not None:
                return self._lx_replay(prior, digest)
        try:
            rule = self.calendar.kind(kind)
        except KeyError:
            raise InvariantViolated(f"unknown compliance kind {kind!r}") from None
        try:
            start, _ = period_bounds(rule.cadence, period)
        except PeriodError as e:
            raise InvariantViolated(str(e)) from None
        school = self._lx_school(school_id)
        if school is None:
            raise InvariantViolated(f"unknown school {school_id!r}")
        bounds = None if rule.measure is None else (rule.measure.name, rule.measure.min, rule.measure.max)
        agg = ComplianceRecord.log(
            record_id=record_id, agency=principal.agency, may_log=principal.agency in rule.loggers,
            school_id=school_id, school_applies=rule.applies(**_school_flags(school)), kind=kind, period=period,
            period_start=start, occurred_on=occurred_on, evidence=evidence,
            evidence_required=rule.evidence_required, measure=measure, measure_bounds=bounds, note=note,
            logged_by=principal.actor, request_digest=digest, now=now,
        )
        return self._lx_commit_new(agg, existing_check=lambda e: self._lx_replay(e, digest))

    def _lx_replay(self, existing: Any, digest: str) -> Appended:
        if existing.request_digest != digest:
            raise Conflict("this Idempotency-Key was already used with a different request body")
        return Appended(id=str(existing.id), position=self.position_of(existing.id, 1), replayed=True)

    def record_gaps(self, gaps: Iterable[Gap], *, now: datetime) -> SweepResult:
        """Records each gap once. Saved in batches; a batch that meets a gap another instance
        already recorded falls back to one save per gap, skipping those that exist."""
        result = SweepResult()
        batch: list[Gap] = []
        for gap in gaps:
            result.candidates += 1
            batch.append(gap)
            if len(batch) >= SWEEP_BATCH:
                self._lx_save_gaps(batch, result, now)
                batch = []
        if batch:
            self._lx_save_gaps(batch, result, now)
        return result

    def _lx_gap_aggregates(self, gap: Gap, now: datetime) -> list[Any]:
        return gap_aggregates(gap, calendar=self.calendar, catalogue=self._lx_catalogue,
                              school_exists=self.school_exists, now=now)

    def _lx_save_gaps(self, batch: list[Gap], result: SweepResult, now: datetime) -> None:
        built = [(gap, self._lx_gap_aggregates(gap, now)) for gap in batch]
        try:
            cast(Any, self).save(*[a for _, aggs in built for a in aggs])
        except IntegrityError:
            # A failed save has already collected the aggregates' pending events: build
            # them afresh for the one-by-one retry.
            for gap in batch:
                aggs = self._lx_gap_aggregates(gap, now)
                try:
                    cast(Any, self).save(*aggs)
                except IntegrityError:
                    result.already += 1
                    continue
                self._lx_count(gap, aggs, result)
            return
        for gap, aggs in built:
            self._lx_count(gap, aggs, result)

    @staticmethod
    def _lx_count(gap: Gap, aggs: list[Any], result: SweepResult) -> None:
        result.recorded += 1
        result.hazards += len(aggs) - 1
        result.gap_ids.append(str(compliance_gap_id(gap.school_id, gap.kind, gap.period)))

    # -- petitions -------------------------------------------------------------------------

    def receive_petition(
        self, principal: Principal, *, reference: str, channel: str, topic: str, school_id: str | None,
        summary: str, handling_unit: str, received_on: date, body: dict[str, Any], now: datetime,
    ) -> Appended:
        self._lx_require_writer(principal)
        digest = request_digest(body)
        prior: Petition | None = self._lx_maybe(petition_id(principal.agency, reference))
        if prior is not None:
            return self._lx_replay(prior, digest)
        try:
            self.agency(handling_unit)
            known = True
        except NotFound:
            known = False
        agg = Petition.receive(
            agency=principal.agency, may_receive=principal.agency in PETITION_RECEIVERS, reference=reference,
            channel=channel, topic=topic, school_id=school_id,
            school_exists=school_id is not None and self.school_exists(school_id), summary=summary,
            handling_unit=handling_unit, handling_unit_known=known, received_on=received_on,
            logged_by=principal.actor, request_digest=digest, now=now,
        )
        return self._lx_commit_new(agg, existing_check=lambda e: self._lx_replay(e, digest))

    def answer_petition(
        self, principal: Principal, *, petition: str, answered_on: date, answer: str, now: datetime,
    ) -> Appended:
        self._lx_require_writer(principal)
        agg: Petition = self._lx_get(_parse_uuid(petition, "petition"), "petition")
        agg.answer(by_agency=principal.agency, by_lead=self._lx_is_lead(principal), answered_on=answered_on,
                   answer=answer, logged_by=principal.actor, now=now)
        return self._lx_written(self.commit(agg))

    def close_petition(
        self, principal: Principal, *, petition: str, closed_on: date, satisfaction: str, note: str,
        now: datetime,
    ) -> Appended:
        self._lx_require_writer(principal)
        agg: Petition = self._lx_get(_parse_uuid(petition, "petition"), "petition")
        agg.close(by_agency=principal.agency, by_lead=self._lx_is_lead(principal), closed_on=closed_on,
                  satisfaction=satisfaction, note=note, logged_by=principal.actor, now=now)
        return self._lx_written(self.commit(agg))


def _parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"unknown {what} {value!r}") from None


# -- the scheduled job -------------------------------------------------------------------------


def run_compliance_sweep(platform: Platform, now: datetime) -> SweepResult:
    """The missing-record job: records every due record still absent past its grace, once.

    Reads the compliance read model after catching it up, so a record logged before the
    sweep started is seen; a record logged after its grace is late either way. Safe to run
    on several instances at once and as often as wanted: gap ids derive from (school, kind,
    period), so each gap is stored once."""
    from projections.compliance import missing_candidates

    app: Any = platform.app
    for name in ("catalogue", "compliance"):
        if name in platform.runner.projections:
            platform.runner.catch_up(name)
    today = local_date(now)
    with platform.read_engine.connect() as conn:
        gaps = [Gap(**c) for c in missing_candidates(conn, app.calendar, today)]
    result: SweepResult = app.record_gaps(gaps, now=now)
    if result.recorded:
        log.info("compliance sweep %s: %d gap(s) recorded, %d hazard(s) opened, %d already recorded",
                 today, result.recorded, result.hazards, result.already)
    return result



def compliance_sweep_job(scheduler: Any, now: datetime) -> dict[str, Any]:
    """Scheduler job: the missing-record sweep (daily)."""
    r = run_compliance_sweep(scheduler.platform, now)
    return {"as_of": now.isoformat(), "candidates": r.candidates, "recorded": r.recorded, "hazards": r.hazards,
            "already_recorded": r.already}


def notify_deliver_job(scheduler: Any, now: datetime) -> dict[str, Any]:
    """Scheduler job: bring the notifications up to the log (which plans delivery records),
    then send what is due."""
    from services.notify.deliver import Deliverer

    platform = scheduler.platform
    if "notifications" in platform.runner.projections:
        platform.runner.catch_up("notifications")
    r = Deliverer(platform.write_engine).run_once(now)
    return {"as_of": now.isoformat(), "delivered": r.delivered, "failed_attempts": r.failed, "gave_up": r.gave_up,
            "expired": r.expired, "cancelled": r.cancelled}


def _daily() -> Any:
    from apscheduler.triggers.cron import CronTrigger

    from events.base import COUNTY_TZ

    # 01:30 county time: the day before is over, so a record due yesterday with its grace
    # ended yesterday is missing today.
    return CronTrigger(hour=1, minute=30, timezone=COUNTY_TZ)


def _every_minute() -> Any:
    from apscheduler.triggers.cron import CronTrigger

    from events.base import COUNTY_TZ

    return CronTrigger(minute="*", timezone=COUNTY_TZ)


# Registered by services/scheduler.py (name, description, run(scheduler, now), trigger factory).
LOGISTICS_JOBS: list[tuple[str, str, Any, Any]] = [
    ("compliance-sweep", "compliance: record each due record still missing past its grace (once per school, "
     "kind and period); some kinds also open a hazard", compliance_sweep_job, _daily),
    ("notify-deliver", "notifications: send due webhook and email deliveries, retrying with back-off",
     notify_deliver_job, _every_minute),
]
