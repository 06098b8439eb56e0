"""Use cases of school logistics: annual targets, recognitions, compliance records (台账),
recording missing records (the sweep's use case), and logistics petitions (信访)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError

from contracts.compliance import ComplianceCalendar, PeriodError, default_calendar, period_bounds
from events.errors import Conflict, InvariantViolated
from events.logistics import (
    AnnualTarget,
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
from services.kernel.results import Written, request_digest, written
from services.kernel.use_cases import UseCases, parse_id
from services.logistics.gaps import Gap, gap_aggregates, school_flags

log = logging.getLogger(__name__)

# Units that register petitions: the petitions bureau (旗信访局) and the lead bureau.
PETITION_RECEIVERS = ("petitions", "education")
SWEEP_BATCH = 200
_UNSET: Any = object()


@dataclass
class SweepResult:
    candidates: int = 0
    recorded: int = 0
    already: int = 0
    hazards: int = 0
    gap_ids: list[str] = field(default_factory=list)


class LogisticsUseCases(UseCases):
    @property
    def calendar(self) -> ComplianceCalendar:
        return default_calendar()

    def _school(self, school_id: str) -> School | None:
        school: School | None = self.maybe(school_aggregate_id(school_id))
        return school

    # -- targets -----------------------------------------------------------------------------

    def set_target(
        self, principal: Principal, *, code: str, year: int, scope: str = "county", value: Any = _UNSET,
        reason: str = "", now: datetime,
    ) -> Written:
        """Sets a catalogue target for a year and scope; the value defaults to the catalogue's.
        Setting it again with another value revises it (with a reason)."""
        self.require_writer(principal)
        lead = self.is_lead(principal)
        try:
            target = next(t for t in self.catalogue.targets.targets if t.code == code)
        except StopIteration:
            raise InvariantViolated(f"unknown target {code!r}") from None
        chosen = target.value if value is _UNSET else value
        recognition = target.recognition
        measure = self.calendar.target_measures.get(code)
        if recognition is None and measure is not None:
            recognition = measure.recognition
        agg_id = target_aggregate_id(code, year, scope)
        existing: AnnualTarget | None = self.maybe(agg_id)
        if existing is not None:
            if not existing.revise(by_agency=principal.agency, by_lead=lead, value=chosen, reason=reason,
                                   set_by=principal.actor, now=now):
                return Written(id=str(agg_id), position=None, replayed=True)
            return written(existing.id, self.commit(existing))
        agg = AnnualTarget.set_target(
            by_agency=principal.agency, by_lead=lead, target_code=code, year=year, scope=scope,
            measure=target.measure, value=chosen, direction=target.direction, recognition=recognition,
            text=target.text, set_by=principal.actor, now=now,
        )
        return self.create_or_replay(agg, lambda e: Written(id=str(e.id), position=None, replayed=True))

    def set_catalogue_targets(self, principal: Principal, *, year: int, now: datetime) -> list[Written]:
        """Every catalogue target for the county, at the catalogue's values (idempotent)."""
        return [self.set_target(principal, code=t.code, year=year, now=now) for t in self.catalogue.targets.targets]

    # -- recognitions ----------------------------------------------------------------------

    def recognise_school(
        self, principal: Principal, *, school_id: str, kind: str, level: str, awarded_on: date,
        awarding_body: str, evidence: list[str], now: datetime,
    ) -> Written:
        self.require_writer(principal)
        self.require_evidence(principal, evidence)
        lead = self.is_lead(principal)
        school = self._school(school_id)
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

        def check(existing: Recognition) -> Written:
            if not existing.same_award(awarding_body=awarding_body, evidence=evidence):
                raise Conflict("this recognition (school, kind, level, date) is already recorded differently")
            return Written(id=str(existing.id), position=self.position_of(existing.id, 1), replayed=True)

        prior: Recognition | None = self.maybe(agg.id)
        if prior is not None:
            return check(prior)
        return self.create_or_replay(agg, check)

    def withdraw_recognition(
        self, principal: Principal, *, recognition: str, withdrawn_on: date, reason: str, now: datetime,
    ) -> Written:
        self.require_writer(principal)
        agg = self.load(parse_id(recognition, "recognition"), Recognition, "recognition")
        agg.withdraw(by_agency=principal.agency, by_lead=self.is_lead(principal), withdrawn_on=withdrawn_on,
                     reason=reason, logged_by=principal.actor, now=now)
        return written(agg.id, self.commit(agg))

    # -- compliance records ----------------------------------------------------------------

    def log_compliance_record(
        self, principal: Principal, *, school_id: str, kind: str, period: str, occurred_on: date,
        evidence: list[str], measure: float | None, note: str, idempotency_key: str | None,
        body: dict[str, Any], now: datetime,
    ) -> Written:
        self.require_writer(principal)
        digest = request_digest(body)
        record_id = compliance_record_id(principal.agency, idempotency_key)
        if idempotency_key is not None:
            prior: ComplianceRecord | None = self.maybe(record_id)
            if prior is not None:
                return self.replay(prior, digest)
        self.require_evidence(principal, evidence)
        try:
            rule = self.calendar.kind(kind)
        except KeyError:
            raise InvariantViolated(f"unknown compliance kind {kind!r}") from None
        try:
            start, _ = period_bounds(rule.cadence, period)
        except PeriodError as e:
            raise InvariantViolated(str(e)) from None
        school = self._school(school_id)
        if school is None:
            raise InvariantViolated(f"unknown school {school_id!r}")
        bounds = None if rule.measure is None else (rule.measure.name, rule.measure.min, rule.measure.max)
        agg = ComplianceRecord.log(
            record_id=record_id, agency=principal.agency, may_log=principal.agency in rule.loggers,
            school_id=school_id, school_applies=rule.applies(**school_flags(school)), kind=kind, period=period,
            period_start=start, occurred_on=occurred_on, evidence=evidence,
            evidence_required=rule.evidence_required, measure=measure, measure_bounds=bounds, note=note,
            logged_by=principal.actor, request_digest=digest, now=now,
        )
        return self.create_or_replay(agg, lambda e: self.replay(e, digest))

    def record_gaps(self, gaps: Iterable[Gap], *, now: datetime) -> SweepResult:
        """Records each gap once. Saved in batches; a batch that meets a gap another instance
        already recorded falls back to one save per gap, skipping those that exist."""
        result = SweepResult()
        batch: list[Gap] = []
        for gap in gaps:
            result.candidates += 1
            batch.append(gap)
            if len(batch) >= SWEEP_BATCH:
                self._save_gaps(batch, result, now)
                batch = []
        if batch:
            self._save_gaps(batch, result, now)
        return result

    def _gap_aggregates(self, gap: Gap, now: datetime) -> list[Any]:
        return gap_aggregates(gap, calendar=self.calendar, catalogue=self.catalogue,
                              school_exists=self.school_exists, now=now)

    def _save_gaps(self, batch: list[Gap], result: SweepResult, now: datetime) -> None:
        built = [(gap, self._gap_aggregates(gap, now)) for gap in batch]
        try:
            self.save(*[a for _, aggs in built for a in aggs])
        except IntegrityError:
            # A failed save has already collected the aggregates' pending events: build
            # them afresh for the one-by-one retry.
            for gap in batch:
                aggs = self._gap_aggregates(gap, now)
                try:
                    self.save(*aggs)
                except IntegrityError:
                    result.already += 1
                    continue
                self._count_gap(gap, aggs, result)
            return
        for gap, aggs in built:
            self._count_gap(gap, aggs, result)

    @staticmethod
    def _count_gap(gap: Gap, aggs: list[Any], result: SweepResult) -> None:
        result.recorded += 1
        result.hazards += len(aggs) - 1
        result.gap_ids.append(str(compliance_gap_id(gap.school_id, gap.kind, gap.period)))

    # -- petitions -------------------------------------------------------------------------

    def receive_petition(
        self, principal: Principal, *, reference: str, channel: str, topic: str, school_id: str | None,
        summary: str, handling_unit: str, received_on: date, body: dict[str, Any], now: datetime,
    ) -> Written:
        self.require_writer(principal)
        digest = request_digest(body)
        prior: Petition | None = self.maybe(petition_id(principal.agency, reference))
        if prior is not None:
            return self.replay(prior, digest)
        known = self.known_unit(handling_unit)
        agg = Petition.receive(
            agency=principal.agency, may_receive=principal.agency in PETITION_RECEIVERS, reference=reference,
            channel=channel, topic=topic, school_id=school_id,
            school_exists=school_id is not None and self.school_exists(school_id), summary=summary,
            handling_unit=handling_unit, handling_unit_known=known, received_on=received_on,
            logged_by=principal.actor, request_digest=digest, now=now,
        )
        return self.create_or_replay(agg, lambda e: self.replay(e, digest))

    def answer_petition(
        self, principal: Principal, *, petition: str, answered_on: date, answer: str, now: datetime,
    ) -> Written:
        self.require_writer(principal)
        agg = self.load(parse_id(petition, "petition"), Petition, "petition")
        agg.answer(by_agency=principal.agency, by_lead=self.is_lead(principal), answered_on=answered_on,
                   answer=answer, logged_by=principal.actor, now=now)
        return written(agg.id, self.commit(agg))

    def close_petition(
        self, principal: Principal, *, petition: str, closed_on: date, satisfaction: str, note: str,
        now: datetime,
    ) -> Written:
        self.require_writer(principal)
        agg = self.load(parse_id(petition, "petition"), Petition, "petition")
        agg.close(by_agency=principal.agency, by_lead=self.is_lead(principal), closed_on=closed_on,
                  satisfaction=satisfaction, note=note, logged_by=principal.actor, now=now)
        return written(agg.id, self.commit(agg))
