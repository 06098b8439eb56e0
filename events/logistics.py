"""School logistics (后勤保障): annual targets, school recognitions, periodic compliance
records (台账) with the gaps the missing-record job finds, and logistics petitions (信访).

Every aggregate is small and most writes are a single append:
- ``AnnualTarget``: one per (target, year, scope); set, then revised with a reason;
- ``Recognition``: one per award (school, kind, level, award date); it can be withdrawn;
- ``ComplianceRecord``: one per record logged (its id derives from an idempotency key);
- ``ComplianceGap``: one per (school, kind, period) found missing; its id derives from
  those three, so the scheduled job, a retry or a second instance records it exactly once;
- ``Petition``: received, answered, closed with the petitioner's satisfaction.

Minors and petitioners are never named: events refer to schools by id and to people by
role; free text that carries a phone or ID number is refused.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate

from events.base import Recorded, RecordedCreated, derive_id, local_date
from events.errors import Conflict, InvariantViolated, NotPermitted
from events.evidence import clean_refs

RECOGNITION_LEVELS = ("county", "city", "province", "national")
TARGET_MEASURES = ("share", "count")
PETITION_CHANNELS = ("visit", "letter", "phone", "online", "hotline")
PETITION_TOPICS = (
    "drinking-water", "canteen", "dormitory", "school-bus", "insurance", "uniforms-supplies", "fees",
    "environment", "facilities", "other",
)
SATISFACTION = ("satisfied", "basically-satisfied", "unsatisfied", "not-evaluated")
# 信访条例: a petition is concluded within 60 days of acceptance.
PETITION_HANDLING_DAYS = 60
SCOPE_PATTERN = re.compile(r"^(county|town:\S.{0,98})$")
REFERENCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_/-]{0,59}$")
# Mainland mobile numbers and resident ID numbers: never stored in free text.
_PERSONAL = re.compile(r"(?<!\d)(1[3-9]\d{9}|\d{17}[\dXx]|\d{15})(?!\d)")


def check_no_personal_data(text: str, field: str) -> None:
    if _PERSONAL.search(text):
        raise InvariantViolated(f"{field} must not carry a phone or ID number; refer to people by role")


# -- annual targets ------------------------------------------------------------------------------


def target_aggregate_id(code: str, year: int, scope: str) -> uuid.UUID:
    return derive_id("annual-target", code, str(year), scope)


class AnnualTarget(Aggregate):
    class TargetSet(RecordedCreated):
        target_code: str
        year: int
        scope: str  # "county" or "town:<town name>"
        measure: str  # share | count
        value: float | None  # None: improve on last year (direction)
        direction: str | None
        recognition: str | None
        text: str
        set_by: str

    class TargetRevised(Recorded):
        value: float | None
        reason: str
        set_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.value = self.value

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, target_code: str, year: int, scope: str,
        measure: str, value: float | None, direction: str | None, recognition: str | None, text: str,
        set_by: str,
    ) -> None:
        self.target_code = target_code
        self.year = year
        self.scope = scope
        self.measure = measure
        self.value = value

    @staticmethod
    def _check_value(measure: str, value: float | None, direction: str | None) -> None:
        if measure not in TARGET_MEASURES:
            raise InvariantViolated(f"target measure {measure!r} is not share or count")
        if value is None:
            if direction is None:
                raise InvariantViolated("a target without a value needs a direction (increase)")
            return
        if value < 0:
            raise InvariantViolated("a target value must not be negative")
        if measure == "share" and value > 1:
            raise InvariantViolated("a share target is a fraction between 0 and 1")
        if measure == "count" and value != int(value):
            raise InvariantViolated("a count target is a whole number")

    @classmethod
    def set_target(
        cls, *, by_agency: str, by_lead: bool, target_code: str, year: int, scope: str, measure: str,
        value: float | None, direction: str | None, recognition: str | None, text: str, set_by: str,
        now: datetime,
    ) -> AnnualTarget:
        if not by_lead:
            raise NotPermitted("only the lead unit sets annual targets")
        if not 2000 <= year <= 2100:
            raise InvariantViolated(f"year {year} is out of range")
        if not SCOPE_PATTERN.match(scope):
            raise InvariantViolated(f"scope {scope!r} must be 'county' or 'town:<town name>'")
        cls._check_value(measure, value, direction)
        agg_id = target_aggregate_id(target_code, year, scope)
        return cls._create(
            cls.TargetSet, id=agg_id, timestamp=now, event_id=str(agg_id), agency=by_agency,
            occurred_on=local_date(now).isoformat(), target_code=target_code, year=year, scope=scope,
            measure=measure, value=value, direction=direction, recognition=recognition, text=text,
            set_by=set_by,
        )

    def revise(self, *, by_agency: str, by_lead: bool, value: float | None, reason: str, set_by: str,
               now: datetime) -> bool:
        """Returns False when the value is unchanged (setting it again records nothing)."""
        if not by_lead:
            raise NotPermitted("only the lead unit sets annual targets")
        if value == self.value:
            return False
        self._check_value(self.measure, value, "increase" if value is None else None)
        if not reason.strip():
            raise InvariantViolated("changing a target needs a reason")
        self.trigger_event(
            self.TargetRevised, timestamp=now,
            event_id=str(derive_id("target-revised", str(self.id), str(self.version + 1))),
            agency=by_agency, occurred_on=local_date(now).isoformat(), value=value, reason=reason.strip(),
            set_by=set_by,
        )
        return True


# -- recognitions -----------------------------------------------------------------------------


def recognition_id(school_id: str, kind: str, level: str, awarded_on: str) -> uuid.UUID:
    return derive_id("recognition", school_id, kind, level, awarded_on)


class Recognition(Aggregate):
    class SchoolRecognised(RecordedCreated):
        school_id: str
        kind: str
        level: str
        awarded_on: str
        awarding_body: str
        evidence: list[str]
        logged_by: str

    class RecognitionWithdrawn(Recorded):
        reason: str
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.withdrawn_on = self.occurred_on

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, school_id: str, kind: str, level: str,
        awarded_on: str, awarding_body: str, evidence: list[str], logged_by: str,
    ) -> None:
        self.school_id = school_id
        self.kind = kind
        self.level = level
        self.awarded_on = awarded_on
        self.awarding_body = awarding_body
        self.evidence = list(evidence)
        self.withdrawn_on: str | None = None

    @classmethod
    def award(
        cls, *, by_agency: str, by_lead: bool, school_id: str, school_applies: bool, kind: str,
        known_kinds: Iterable[str], level: str, awarded_on: date, awarding_body: str, evidence: list[str],
        logged_by: str, now: datetime,
    ) -> Recognition:
        if not by_lead:
            raise NotPermitted("only the lead unit records recognitions")
        kinds = tuple(known_kinds)
        if kind not in kinds:
            raise InvariantViolated(f"recognition {kind!r} is not one of {', '.join(kinds)}")
        if level not in RECOGNITION_LEVELS:
            raise InvariantViolated(f"level {level!r} is not one of {', '.join(RECOGNITION_LEVELS)}")
        if awarded_on > local_date(now):
            raise InvariantViolated(f"awarded_on {awarded_on.isoformat()} is in the future")
        if not school_applies:
            raise InvariantViolated(f"school {school_id!r} lacks the facility that {kind!r} recognises")
        body = awarding_body.strip()
        check_no_personal_data(body, "awarding_body")
        agg_id = recognition_id(school_id, kind, level, awarded_on.isoformat())
        return cls._create(
            cls.SchoolRecognised, id=agg_id, timestamp=now, event_id=str(agg_id), agency=by_agency,
            occurred_on=awarded_on.isoformat(), school_id=school_id, kind=kind, level=level,
            awarded_on=awarded_on.isoformat(), awarding_body=body, evidence=clean_refs(evidence),
            logged_by=logged_by,
        )

    def same_award(self, *, awarding_body: str, evidence: list[str]) -> bool:
        return self.awarding_body == awarding_body.strip() and self.evidence == clean_refs(evidence)

    def withdraw(self, *, by_agency: str, by_lead: bool, withdrawn_on: date, reason: str, logged_by: str,
                 now: datetime) -> None:
        if not by_lead:
            raise NotPermitted("only the lead unit withdraws recognitions")
        if self.withdrawn_on is not None:
            raise Conflict(f"this recognition was already withdrawn on {self.withdrawn_on}")
        if withdrawn_on > local_date(now):
            raise InvariantViolated(f"withdrawn_on {withdrawn_on.isoformat()} is in the future")
        if withdrawn_on.isoformat() < self.awarded_on:
            raise InvariantViolated("a recognition cannot be withdrawn before it was awarded")
        if not reason.strip():
            raise InvariantViolated("a withdrawal needs a reason")
        check_no_personal_data(reason, "reason")
        self.trigger_event(
            self.RecognitionWithdrawn, timestamp=now,
            event_id=str(derive_id("recognition-withdrawn", str(self.id))), agency=by_agency,
            occurred_on=withdrawn_on.isoformat(), reason=reason.strip(), logged_by=logged_by,
        )


# -- compliance records ---------------------------------------------------------------------------


def compliance_record_id(agency: str, idempotency_key: str | None) -> uuid.UUID:
    if idempotency_key is None:
        return uuid.uuid4()
    return derive_id("compliance-record", agency, idempotency_key)


def compliance_gap_id(school_id: str, kind: str, period: str) -> uuid.UUID:
    return derive_id("compliance-missing", school_id, kind, period)


class ComplianceRecord(Aggregate):
    class ComplianceRecordLogged(RecordedCreated):
        school_id: str
        kind: str
        period: str
        evidence: list[str]
        measure: float | None
        note: str
        logged_by: str
        request_digest: str

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, school_id: str, kind: str, period: str,
        evidence: list[str], measure: float | None, note: str, logged_by: str, request_digest: str,
    ) -> None:
        self.request_digest = request_digest

    @classmethod
    def log(
        cls, *, record_id: uuid.UUID, agency: str, may_log: bool, school_id: str, school_applies: bool,
        kind: str, period: str, period_start: date, occurred_on: date, evidence: list[str],
        evidence_required: bool, measure: float | None, measure_bounds: tuple[str, float, float] | None,
        note: str, logged_by: str, request_digest: str, now: datetime,
    ) -> ComplianceRecord:
        """``period`` was parsed against the kind's cadence by the caller (period_start is its
        first day); ``measure_bounds`` is (name, min, max) when the kind carries a number."""
        today = local_date(now)
        if not may_log:
            raise NotPermitted(f"{agency!r} does not log {kind!r} records")
        if not school_applies:
            raise InvariantViolated(f"school {school_id!r} does not owe {kind!r} records")
        if occurred_on > today:
            raise InvariantViolated(f"occurred_on {occurred_on.isoformat()} is in the future")
        # A record may be filed ahead of its period (an insurance policy before the school
        # year), but not more than a quarter ahead.
        if period_start > today + timedelta(days=92):
            raise InvariantViolated(f"period {period} starts more than three months from now")
        refs = clean_refs(evidence)
        if evidence_required and not refs:
            raise InvariantViolated(f"a {kind!r} record needs at least one evidence reference")
        if measure_bounds is None:
            if measure is not None:
                raise InvariantViolated(f"a {kind!r} record carries no measure")
        else:
            name, low, high = measure_bounds
            if measure is None:
                raise InvariantViolated(f"a {kind!r} record needs its measure {name!r}")
            if not low <= measure <= high:
                raise InvariantViolated(f"{name} {measure:g} is outside {low:g}..{high:g} for {kind!r}")
        check_no_personal_data(note, "note")
        return cls._create(
            cls.ComplianceRecordLogged, id=record_id, timestamp=now, event_id=str(record_id), agency=agency,
            occurred_on=occurred_on.isoformat(), school_id=school_id, kind=kind, period=period,
            evidence=refs, measure=measure, note=note.strip(), logged_by=logged_by,
            request_digest=request_digest,
        )


class ComplianceGap(Aggregate):
    class ComplianceRecordMissing(RecordedCreated):
        school_id: str
        kind: str
        period: str
        due_on: str
        missing_since: str
        opens_hazard: bool

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, school_id: str, kind: str, period: str,
        due_on: str, missing_since: str, opens_hazard: bool,
    ) -> None:
        self.school_id = school_id
        self.kind = kind
        self.period = period

    @classmethod
    def declare(
        cls, *, responsible: str, school_id: str, kind: str, period: str, due_on: date, grace_until: date,
        opens_hazard: bool, now: datetime,
    ) -> ComplianceGap:
        """Every field derives from (school, kind, period) and the calendar, so two
        instances of the job build the same event; only one can be stored."""
        missing_since = grace_until + timedelta(days=1)
        if local_date(now) < missing_since:
            raise InvariantViolated(f"{kind!r} for {period} is still within its grace period")
        gap_id = compliance_gap_id(school_id, kind, period)
        return cls._create(
            cls.ComplianceRecordMissing, id=gap_id, timestamp=now, event_id=str(gap_id), agency=responsible,
            occurred_on=missing_since.isoformat(), school_id=school_id, kind=kind, period=period,
            due_on=due_on.isoformat(), missing_since=missing_since.isoformat(), opens_hazard=opens_hazard,
        )


# -- petitions ------------------------------------------------------------------------------------


def petition_id(receiving_agency: str, reference: str) -> uuid.UUID:
    return derive_id("petition", receiving_agency, reference)


class Petition(Aggregate):
    class PetitionReceived(RecordedCreated):
        reference: str  # the petition's case number (信访件编号), never a person
        channel: str
        topic: str
        school_id: str | None
        summary: str
        handling_unit: str
        due_on: str
        logged_by: str
        request_digest: str

    class PetitionAnswered(Recorded):
        answer: str
        on_time: bool
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.answered_on = self.occurred_on

    class PetitionClosed(Recorded):
        satisfaction: str
        note: str
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.closed_on = self.occurred_on

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, reference: str, channel: str, topic: str,
        school_id: str | None, summary: str, handling_unit: str, due_on: str, logged_by: str,
        request_digest: str,
    ) -> None:
        self.receiving_unit = agency
        self.received_on = occurred_on
        self.handling_unit = handling_unit
        self.due_on = due_on
        self.request_digest = request_digest
        self.answered_on: str | None = None
        self.closed_on: str | None = None

    @classmethod
    def receive(
        cls, *, agency: str, may_receive: bool, reference: str, channel: str, topic: str,
        school_id: str | None, school_exists: bool, summary: str, handling_unit: str,
        handling_unit_known: bool, received_on: date, logged_by: str, request_digest: str, now: datetime,
    ) -> Petition:
        if not may_receive:
            raise NotPermitted(f"{agency!r} does not register petitions")
        if not REFERENCE_PATTERN.match(reference):
            raise InvariantViolated("reference must be 1-60 letters, digits, '-', '_' or '/'")
        if channel not in PETITION_CHANNELS:
            raise InvariantViolated(f"channel {channel!r} is not one of {', '.join(PETITION_CHANNELS)}")
        if topic not in PETITION_TOPICS:
            raise InvariantViolated(f"topic {topic!r} is not one of {', '.join(PETITION_TOPICS)}")
        if school_id is not None and not school_exists:
            raise InvariantViolated(f"unknown school {school_id!r}")
        if not handling_unit_known:
            raise InvariantViolated(f"unknown member unit {handling_unit!r}")
        if received_on > local_date(now):
            raise InvariantViolated(f"received_on {received_on.isoformat()} is in the future")
        if not summary.strip():
            raise InvariantViolated("a petition needs a summary of the request")
        check_no_personal_data(summary, "summary")
        agg_id = petition_id(agency, reference)
        return cls._create(
            cls.PetitionReceived, id=agg_id, timestamp=now, event_id=str(agg_id), agency=agency,
            occurred_on=received_on.isoformat(), reference=reference, channel=channel, topic=topic,
            school_id=school_id, summary=summary.strip(), handling_unit=handling_unit,
            due_on=(received_on + timedelta(days=PETITION_HANDLING_DAYS)).isoformat(), logged_by=logged_by,
            request_digest=request_digest,
        )

    def answer(self, *, by_agency: str, by_lead: bool, answered_on: date, answer: str, logged_by: str,
               now: datetime) -> None:
        if by_agency != self.handling_unit and not by_lead:
            raise NotPermitted("only the handling unit or the lead answers a petition")
        if self.closed_on is not None:
            raise Conflict("this petition is already closed")
        if self.answered_on is not None:
            raise Conflict(f"this petition was already answered on {self.answered_on}")
        if answered_on > local_date(now):
            raise InvariantViolated(f"answered_on {answered_on.isoformat()} is in the future")
        if answered_on.isoformat() < self.received_on:
            raise InvariantViolated("a petition cannot be answered before it was received")
        if not answer.strip():
            raise InvariantViolated("an answer needs its content")
        check_no_personal_data(answer, "answer")
        self.trigger_event(
            self.PetitionAnswered, timestamp=now, event_id=str(derive_id("petition-answered", str(self.id))),
            agency=by_agency, occurred_on=answered_on.isoformat(), answer=answer.strip(),
            on_time=answered_on.isoformat() <= self.due_on, logged_by=logged_by,
        )

    def close(self, *, by_agency: str, by_lead: bool, closed_on: date, satisfaction: str, note: str,
              logged_by: str, now: datetime) -> None:
        if by_agency not in (self.handling_unit, self.receiving_unit) and not by_lead:
            raise NotPermitted("only the receiving or handling unit, or the lead, closes a petition")
        if self.closed_on is not None:
            raise Conflict(f"this petition was already closed on {self.closed_on}")
        if self.answered_on is None:
            raise InvariantViolated("a petition is answered before it is closed")
        if satisfaction not in SATISFACTION:
            raise InvariantViolated(f"satisfaction {satisfaction!r} is not one of {', '.join(SATISFACTION)}")
        if closed_on > local_date(now):
            raise InvariantViolated(f"closed_on {closed_on.isoformat()} is in the future")
        if closed_on.isoformat() < self.answered_on:
            raise InvariantViolated("a petition cannot be closed before it was answered")
        check_no_personal_data(note, "note")
        self.trigger_event(
            self.PetitionClosed, timestamp=now, event_id=str(derive_id("petition-closed", str(self.id))),
            agency=by_agency, occurred_on=closed_on.isoformat(), satisfaction=satisfaction, note=note.strip(),
            logged_by=logged_by,
        )
