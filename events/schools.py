"""Schools registry. Only the lead unit registers schools; schools are referred to by id,
and events never carry a student's name or ID number."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from events.base import Recorded, RecordedCreated, derive_id, local_date
from events.errors import InvariantViolated

SCHOOL_KINDS = ("kindergarten", "primary", "junior", "senior", "vocational")
SCHOOL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


def school_aggregate_id(school_id: str) -> uuid.UUID:
    return derive_id("school", school_id)


class School(Aggregate):
    class SchoolRegistered(RecordedCreated):
        school_id: str
        name: str
        town: str
        kind: str
        boarding: bool
        canteen: bool
        school_bus: bool

    class SchoolUpdated(Recorded):
        name: str
        town: str
        kind: str
        boarding: bool
        canteen: bool
        school_bus: bool

        def apply(self, aggregate: Any) -> None:
            for field in ("name", "town", "kind", "boarding", "canteen", "school_bus"):
                setattr(aggregate, field, getattr(self, field))

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, school_id: str, name: str, town: str,
        kind: str, boarding: bool, canteen: bool, school_bus: bool,
    ) -> None:
        self.school_id = school_id
        self.name = name
        self.town = town
        self.kind = kind
        self.boarding = boarding
        self.canteen = canteen
        self.school_bus = school_bus

    @classmethod
    def register(
        cls, *, by_agency: str, by_lead: bool, school_id: str, name: str, town: str, kind: str,
        boarding: bool, canteen: bool, school_bus: bool, now: datetime,
    ) -> School:
        if not by_lead:
            raise InvariantViolated("only the lead unit registers schools")
        if not SCHOOL_ID_PATTERN.match(school_id):
            raise InvariantViolated(
                f"school id {school_id!r} must be 1-40 letters, digits, '-' or '_'"
            )
        if kind not in SCHOOL_KINDS:
            raise InvariantViolated(f"school kind {kind!r} is not one of {', '.join(SCHOOL_KINDS)}")
        if not name.strip() or not town.strip():
            raise InvariantViolated("a school needs a name and a town")
        return cls._create(
            cls.SchoolRegistered, id=school_aggregate_id(school_id), timestamp=now,
            event_id=str(derive_id("school-registered", school_id)), agency=by_agency,
            occurred_on=local_date(now).isoformat(), school_id=school_id, name=name.strip(),
            town=town.strip(), kind=kind, boarding=boarding, canteen=canteen, school_bus=school_bus,
        )
