"""Member units (成员单位) of the joint meeting and their duties (职责).

A unit's duty list is versioned by ``effective_on`` so the ledger as of any date shows
the duties in force on that date.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, TypedDict

from eventsourcing.domain import Aggregate

from events.base import Recorded, RecordedCreated, derive_id, local_date
from events.errors import InvariantViolated

APPLIES_TO = ("all", "canteen", "boarding", "school_bus", "none")


class Duty(TypedDict):
    code: str
    text: str
    applies_to: str


def agency_id(code: str) -> uuid.UUID:
    return derive_id("agency", code)


def _check_duties(code: str, duties: list[Duty]) -> None:
    seen: set[str] = set()
    for duty in duties:
        if not duty["code"].startswith(code + "."):
            raise InvariantViolated(f"duty {duty['code']!r} must start with '{code}.'")
        if duty["code"] in seen:
            raise InvariantViolated(f"duty {duty['code']!r} is listed twice")
        if duty["applies_to"] not in APPLIES_TO:
            raise InvariantViolated(f"duty {duty['code']!r} has unknown applies_to {duty['applies_to']!r}")
        seen.add(duty["code"])


class Agency(Aggregate):
    class AgencyRegistered(RecordedCreated):
        code: str
        name: str
        name_en: str
        lead: bool
        duties: list[Duty]

    class AgencyDutiesRevised(Recorded):
        duties: list[Duty]
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.duty_history.append((self.occurred_on, list(self.duties)))

    class AgencyRenamed(Recorded):
        name: str
        name_en: str

        def apply(self, aggregate: Any) -> None:
            aggregate.name = self.name
            aggregate.name_en = self.name_en

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, code: str, name: str, name_en: str,
        lead: bool, duties: list[Duty],
    ) -> None:
        self.code = code
        self.name = name
        self.name_en = name_en
        self.lead = lead
        # (effective_on ISO date, duties) in the order they were recorded.
        self.duty_history: list[tuple[str, list[Duty]]] = [(occurred_on, list(duties))]

    @classmethod
    def register(
        cls, *, code: str, name: str, name_en: str, lead: bool, duties: list[Duty],
        effective_on: date, now: datetime,
    ) -> Agency:
        _check_duties(code, duties)
        return cls._create(
            cls.AgencyRegistered, id=agency_id(code), timestamp=now,
            event_id=str(derive_id("agency-registered", code)), agency=code,
            occurred_on=effective_on.isoformat(), code=code, name=name, name_en=name_en, lead=lead,
            duties=list(duties),
        )

    @property
    def current_duties(self) -> list[Duty]:
        return self.duty_history[-1][1]

    def duties_on(self, day: date) -> dict[str, Duty]:
        """The duties in force on ``day``; empty before the unit's first duty list."""
        in_force: list[Duty] = []
        for effective_on, duties in sorted(self.duty_history, key=lambda h: h[0]):
            if effective_on <= day.isoformat():
                in_force = duties
        return {d["code"]: d for d in in_force}

    def revise(
        self, *, name: str, name_en: str, duties: list[Duty], effective_on: date, reason: str,
        now: datetime,
    ) -> bool:
        """Brings the unit in line with the catalogue. Returns False when nothing changed,
        so registering the same catalogue twice records nothing."""
        changed = False
        if (name, name_en) != (self.name, self.name_en):
            self.trigger_event(
                self.AgencyRenamed, timestamp=now,
                event_id=str(derive_id("agency-renamed", self.code, str(self.version + 1))),
                agency=self.code, occurred_on=local_date(now).isoformat(), name=name, name_en=name_en,
            )
            changed = True
        if list(duties) != self.current_duties:
            _check_duties(self.code, duties)
            if not reason.strip():
                raise InvariantViolated("a revision of duties needs a reason")
            self.trigger_event(
                self.AgencyDutiesRevised, timestamp=now,
                event_id=str(derive_id("agency-duties-revised", self.code, str(self.version + 1))),
                agency=self.code, occurred_on=effective_on.isoformat(), duties=list(duties), reason=reason,
            )
            changed = True
        return changed
