"""The duty log (履职记录): a member unit records a duty it performed.

One aggregate per record keeps every write a single append with no load, and gives an
idempotency key a natural home: the record's id derives from (unit, key).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from datetime import date, datetime
from functools import cache
from typing import TypedDict

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from events.agencies import Agency
from events.base import RecordedCreated, derive_id, local_date
from events.errors import InvariantViolated

MAX_SCHOOLS_PER_RECORD = 500


class Findings(TypedDict):
    count: int
    text: str


def duty_record_id(agency: str, idempotency_key: str | None) -> uuid.UUID:
    if idempotency_key is None:
        return random_uuid4()
    return derive_id("duty-record", agency, idempotency_key)


class _RandomIds:
    """``uuid.uuid4()``, made the same way from the same source (``os.urandom``) but read 256
    ids at a time. Every ``os.urandom`` call releases the GIL, and on the API's event loop
    taking it back waits for whichever thread holds it then (the group committer): up to
    the 5 ms switch interval, on the hottest write (bench/RESULTS.md §1)."""

    BATCH = 256

    def __init__(self) -> None:
        self._ids: list[uuid.UUID] = []
        # A forked child must not hand out its parent's ids.
        os.register_at_fork(after_in_child=self._ids.clear)

    def next(self) -> uuid.UUID:
        ids = self._ids
        try:
            return ids.pop()  # atomic: threads never get the same id
        except IndexError:
            raw = os.urandom(16 * self.BATCH)
            fresh = [uuid.UUID(bytes=raw[i:i + 16], version=4) for i in range(0, len(raw), 16)]
            ids.extend(fresh[1:])
            return fresh[0]


random_uuid4 = _RandomIds().next


class DutyRecord(Aggregate):
    class DutyPerformed(RecordedCreated):
        duty_code: str
        school_ids: list[str]
        summary: str
        findings: Findings
        evidence: list[str]
        logged_by: str
        request_digest: str

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, duty_code: str, school_ids: list[str],
        summary: str, findings: Findings, evidence: list[str], logged_by: str, request_digest: str,
    ) -> None:
        self.agency = agency
        self.duty_code = duty_code
        self.occurred_on = occurred_on
        self.request_digest = request_digest

    @classmethod
    def perform(
        cls, *, record_id: uuid.UUID, agency: Agency, duty_code: str, school_ids: Iterable[str],
        occurred_on: date, summary: str, findings: Findings, evidence: list[str], logged_by: str,
        request_digest: str, school_exists: Callable[[str], bool], now: datetime,
    ) -> DutyRecord:
        schools = list(dict.fromkeys(school_ids))  # keep order, drop repeats
        if occurred_on > local_date(now):
            raise InvariantViolated(f"occurred_on {occurred_on.isoformat()} is in the future")
        in_force = agency.duties_on(occurred_on)
        if duty_code not in in_force:
            raise InvariantViolated(
                f"duty {duty_code!r} is not among the duties of {agency.code!r} in force on "
                f"{occurred_on.isoformat()}"
            )
        if len(schools) > MAX_SCHOOLS_PER_RECORD:
            raise InvariantViolated(f"a record covers at most {MAX_SCHOOLS_PER_RECORD} schools")
        missing = [s for s in schools if not school_exists(s)]
        if missing:
            raise InvariantViolated(f"unknown school(s): {', '.join(missing[:10])}")
        if not summary.strip():
            raise InvariantViolated("summary must not be blank")
        if findings["count"] < 0:
            raise InvariantViolated("findings.count must not be negative")
        return cls._performed(cls.DutyPerformed(  # type: ignore[call-arg]
            originator_topic=_topic(cls), originator_id=record_id, originator_version=cls.INITIAL_VERSION,
            timestamp=now, event_id=str(record_id), agency=agency.code, occurred_on=occurred_on.isoformat(),
            duty_code=duty_code, school_ids=schools, summary=summary.strip(), findings=findings,
            evidence=list(evidence), logged_by=logged_by, request_digest=request_digest,
        ))

    @classmethod
    def _performed(cls, event: DutyRecord.DutyPerformed) -> DutyRecord:
        """What ``cls._create(cls.DutyPerformed, ...)`` does, without its generic per-call work
        (the id factory's argument filter, the topic resolved back to this class, the event's
        fields filtered twice against the two init methods' signatures): the hottest write
        builds one of these per request. The same event, so the same stored bytes
        (tests/test_domain_duty_log.py compares them)."""
        record = cls.__new__(cls)
        record.__base_init__(event.originator_id, event.originator_version, event.timestamp)
        record.__init__(  # type: ignore[misc]
            event_id=event.event_id, agency=event.agency, occurred_on=event.occurred_on,
            duty_code=event.duty_code, school_ids=event.school_ids, summary=event.summary,
            findings=event.findings, evidence=event.evidence, logged_by=event.logged_by,
            request_digest=event.request_digest,
        )
        event.apply(record)
        record.pending_events.append(event)
        return record


@cache
def _topic(cls: type) -> str:
    return get_topic(cls)
