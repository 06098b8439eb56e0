"""Early warnings (预警): a unit with a warning duty (the 气象局 above all) issues a warning
for some towns; the schools in those towns and the named member units acknowledge it with
the measures they took; a warning left unacknowledged too long is escalated to the lead.

Three small aggregates keep every write a single append:
- ``EarlyWarning`` (issue, then at most one escalation);
- ``WarningAcknowledgement``, one per (warning, recipient): its id derives from both, so a
  second acknowledgement by the same recipient can never be stored;
- the escalation lives on the warning with an id that derives from the warning, so two
  scheduler instances cannot both escalate it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from events.agencies import Agency
from events.base import Recorded, RecordedCreated, derive_id, local_date
from events.errors import Conflict, InvariantViolated, NotPermitted

WARNING_TYPES = ("rainstorm", "gale", "lightning", "heat", "cold", "heavy-pollution", "other")
WARNING_LEVELS = ("blue", "yellow", "orange", "red")
RECIPIENT_KINDS = ("school", "unit")
MAX_TOWNS = 200
MAX_MEASURES = 20


def warning_ack_id(warning_id: uuid.UUID, kind: str, recipient: str) -> uuid.UUID:
    return derive_id("warning-ack", str(warning_id), kind, recipient)


def _utc_iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise InvariantViolated("timestamps must be timezone-aware")
    return moment.isoformat()


class EarlyWarning(Aggregate):
    class WarningIssued(RecordedCreated):
        warning_type: str
        level: str
        title: str
        towns: list[str]
        valid_from: str  # ISO datetime with offset
        valid_until: str
        measures: list[str]
        duty_code: str
        issued_at: str  # ISO datetime: latency is measured from here
        school_ids: list[str]  # schools of the covered towns at issue time
        units: list[str]  # member units asked to acknowledge
        # Hash of the request that issued it: a retry with the same Idempotency-Key and body is
        # answered with this warning, one with another body is a conflict ("" before 2025-07).
        request_digest: str = ""

    class WarningEscalated(Recorded):
        escalated_to: str
        hours_after_issue: float
        unacknowledged_schools: list[str]
        unacknowledged_units: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate.escalated = True

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, warning_type: str, level: str, title: str,
        towns: list[str], valid_from: str, valid_until: str, measures: list[str], duty_code: str,
        issued_at: str, school_ids: list[str], units: list[str], request_digest: str = "",
    ) -> None:
        self.issued_by = agency
        self.request_digest = request_digest
        self.level = level
        self.issued_at = issued_at
        self.valid_until = valid_until
        self.school_ids = set(school_ids)
        self.units = set(units)
        self.escalated = False

    @classmethod
    def issue(
        cls, *, warning_id: uuid.UUID, agency: Agency, issuing_duties: Iterable[str], warning_type: str,
        level: str, title: str, towns: list[str], valid_from: datetime, valid_until: datetime,
        measures: list[str], school_ids: list[str], units: list[str], known_units: Iterable[str],
        now: datetime, request_digest: str = "",
    ) -> EarlyWarning:
        today = local_date(now)
        held = [c for c in agency.duties_on(today) if c in set(issuing_duties)]
        if not held:
            raise NotPermitted(f"{agency.code!r} has no warning duty in force on {today.isoformat()}")
        if warning_type not in WARNING_TYPES:
            raise InvariantViolated(f"warning type {warning_type!r} is not one of {', '.join(WARNING_TYPES)}")
        if level not in WARNING_LEVELS:
            raise InvariantViolated(f"warning level {level!r} is not one of {', '.join(WARNING_LEVELS)}")
        towns = list(dict.fromkeys(t.strip() for t in towns if t.strip()))
        if not towns:
            raise InvariantViolated("a warning covers at least one town")
        if len(towns) > MAX_TOWNS:
            raise InvariantViolated(f"a warning covers at most {MAX_TOWNS} towns")
        if valid_until <= valid_from:
            raise InvariantViolated("valid_until must be after valid_from")
        if valid_until <= now:
            raise InvariantViolated("the warning has already expired")
        measures = [m.strip() for m in measures if m.strip()]
        if not measures or len(measures) > MAX_MEASURES:
            raise InvariantViolated(f"a warning requires 1 to {MAX_MEASURES} measures")
        if not title.strip():
            raise InvariantViolated("a warning needs a title")
        known = set(known_units)
        units = list(dict.fromkeys(units))
        unknown = [u for u in units if u not in known]
        if unknown:
            raise InvariantViolated(f"unknown member unit(s): {', '.join(unknown)}")
        return cls._create(
            cls.WarningIssued, id=warning_id, timestamp=now, event_id=str(warning_id), agency=agency.code,
            occurred_on=today.isoformat(), warning_type=warning_type, level=level, title=title.strip(),
            towns=towns, valid_from=_utc_iso(valid_from), valid_until=_utc_iso(valid_until),
            measures=measures, duty_code=sorted(held)[0], issued_at=_utc_iso(now),
            school_ids=sorted(set(school_ids)), units=units, request_digest=request_digest,
        )

    def is_recipient(self, kind: str, recipient: str) -> bool:
        return recipient in (self.school_ids if kind == "school" else self.units)

    def escalate(
        self, *, lead: str, unacknowledged_schools: list[str], unacknowledged_units: list[str],
        now: datetime,
    ) -> None:
        """Exactly once per warning: the event id derives from the warning."""
        if self.escalated:
            raise Conflict("this warning was already escalated")
        if not unacknowledged_schools and not unacknowledged_units:
            raise InvariantViolated("every recipient has acknowledged; nothing to escalate")
        hours = (now - datetime.fromisoformat(self.issued_at)).total_seconds() / 3600
        self.trigger_event(
            self.WarningEscalated, timestamp=now, event_id=str(derive_id("warning-escalated", str(self.id))),
            agency=lead, occurred_on=local_date(now).isoformat(), escalated_to=lead,
            hours_after_issue=round(hours, 2), unacknowledged_schools=sorted(unacknowledged_schools),
            unacknowledged_units=sorted(unacknowledged_units),
        )


class WarningAcknowledgement(Aggregate):
    class WarningAcknowledged(RecordedCreated):
        warning_id: str
        recipient_kind: str  # school | unit
        recipient: str  # school id or unit code
        measures_taken: list[str]
        note: str
        acknowledged_at: str
        logged_by: str

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, warning_id: str, recipient_kind: str,
        recipient: str, measures_taken: list[str], note: str, acknowledged_at: str, logged_by: str,
    ) -> None:
        self.warning_id = warning_id
        self.recipient_kind = recipient_kind
        self.recipient = recipient

    @classmethod
    def acknowledge(
        cls, *, warning: EarlyWarning, by_agency: str, acts_for_schools: bool, recipient_kind: str,
        recipient: str, measures_taken: list[str], note: str, logged_by: str, now: datetime,
    ) -> WarningAcknowledgement:
        """Schools act through the unit that registers them (the lead bureau); a unit
        acknowledges only for itself."""
        if recipient_kind not in RECIPIENT_KINDS:
            raise InvariantViolated(f"recipient kind {recipient_kind!r} is not school or unit")
        if recipient_kind == "unit" and recipient != by_agency:
            raise NotPermitted("a unit acknowledges only for itself")
        if recipient_kind == "school" and not acts_for_schools:
            raise NotPermitted("schools acknowledge through the lead bureau's credentials")
        if not warning.is_recipient(recipient_kind, recipient):
            raise InvariantViolated(f"{recipient_kind} {recipient!r} is not a recipient of this warning")
        measures = [m.strip() for m in measures_taken if m.strip()]
        if not measures:
            raise InvariantViolated("an acknowledgement states the measures taken")
        ack_id = warning_ack_id(warning.id, recipient_kind, recipient)
        return cls._create(
            cls.WarningAcknowledged, id=ack_id, timestamp=now, event_id=str(ack_id), agency=by_agency,
            occurred_on=local_date(now).isoformat(), warning_id=str(warning.id),
            recipient_kind=recipient_kind, recipient=recipient, measures_taken=measures,
            note=note.strip(), acknowledged_at=_utc_iso(now), logged_by=logged_by,
        )
