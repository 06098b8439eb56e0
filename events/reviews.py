"""Appeals against the annual review (考核申诉).

A unit appeals one deduction of its own review (``ReviewAppealFiled``); the lead bureau
decides it, with a reason (``ReviewAppealDecided``). An upheld appeal takes that deduction
out of the unit's score the next time the review is replayed: the score changes through
events, never by editing a result.

A deduction is named by (year, unit, clause, item) — the same key the review prints for it
— and the appeal's id derives from that key, so each deduction is appealed at most once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from events.base import Recorded, RecordedCreated, derive_id, local_date
from events.errors import Conflict, InvariantViolated, NotPermitted

MAX_REASON = 4000


def appeal_id(year: int, unit: str, clause: str, item: str) -> uuid.UUID:
    return derive_id("review-appeal", str(year), unit, clause, item)


def _reason(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise InvariantViolated(f"{what} must not be blank")
    if len(text) > MAX_REASON:
        raise InvariantViolated(f"{what} is longer than {MAX_REASON} characters")
    return text


class ReviewAppeal(Aggregate):
    class ReviewAppealFiled(RecordedCreated):
        year: int
        unit: str
        clause: str
        item: str
        points: float  # the deduction as the review showed it when the appeal was filed
        rules: str  # the rules set (id.vN) that review used
        reason: str
        logged_by: str

    class ReviewAppealDecided(Recorded):
        year: int
        unit: str
        clause: str
        item: str
        upheld: bool
        reason: str
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.decided = True
            aggregate.upheld = self.upheld

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, year: int, unit: str, clause: str, item: str,
        points: float, rules: str, reason: str, logged_by: str,
    ) -> None:
        self.year = year
        self.unit = unit
        self.clause = clause
        self.item = item
        self.decided = False
        self.upheld: bool | None = None

    @classmethod
    def file(
        cls, *, unit: str, year: int, clause: str, item: str, points: float, rules: str, reason: str,
        logged_by: str, now: datetime,
    ) -> ReviewAppeal:
        """The caller has checked that (clause, item) is one of ``unit``'s deductions."""
        if year > local_date(now).year:
            raise InvariantViolated(f"year {year} has not begun")
        if points <= 0:
            raise InvariantViolated("only a deduction can be appealed")
        aid = appeal_id(year, unit, clause, item)
        return cls._create(
            cls.ReviewAppealFiled, id=aid, timestamp=now, event_id=str(aid), agency=unit,
            occurred_on=local_date(now).isoformat(), year=year, unit=unit, clause=clause, item=item,
            points=float(points), rules=rules, reason=_reason(reason, "an appeal's reason"), logged_by=logged_by,
        )

    def decide(self, *, lead: str, is_lead: bool, upheld: bool, reason: str, logged_by: str, now: datetime) -> None:
        if not is_lead:
            raise NotPermitted("only the lead bureau decides review appeals")
        if self.decided:
            raise Conflict("this appeal was already decided")
        self.trigger_event(
            self.ReviewAppealDecided, timestamp=now, event_id=str(derive_id("review-appeal-decided", str(self.id))),
            agency=lead, occurred_on=local_date(now).isoformat(), year=self.year, unit=self.unit,
            clause=self.clause, item=self.item, upheld=upheld, reason=_reason(reason, "a decision's reason"),
            logged_by=logged_by,
        )
