"""Appeals of the annual review (events/reviews.py): a unit appeals one of its own
deductions, the lead bureau decides. The review checks that the deduction exists."""

from __future__ import annotations

import uuid
from datetime import datetime

from eventsourcing.persistence import IntegrityError

from events.errors import Conflict, NotFound
from events.reviews import ReviewAppeal
from services.kernel.principal import Principal
from services.kernel.results import Written, written
from services.kernel.use_cases import UseCases


class ReviewAppealUseCases(UseCases):
    def file_review_appeal(
        self, principal: Principal, *, year: int, clause: str, item: str, points: float, rules: str, reason: str,
        now: datetime,
    ) -> Written:
        """The unit is the token's."""
        self.require_writer(principal)
        appeal = ReviewAppeal.file(unit=principal.agency, year=year, clause=clause, item=item, points=points,
                                   rules=rules, reason=reason, logged_by=principal.actor, now=now)
        try:
            return written(appeal.id, self.commit(appeal))
        except IntegrityError:
            raise Conflict("this deduction was already appealed") from None

    def decide_review_appeal(
        self, principal: Principal, appeal_id: uuid.UUID, *, year: int, upheld: bool, reason: str, now: datetime,
    ) -> Written:
        """The lead bureau upholds or rejects an appeal of ``year``'s review, with a reason."""
        self.require_lead(principal, "decides review appeals")
        appeal = self.load(appeal_id, ReviewAppeal, "appeal")
        if appeal.year != year:
            raise NotFound(f"unknown appeal {appeal_id} of the {year} review")
        lead = self.agency(principal.agency)
        appeal.decide(lead=lead.code, is_lead=lead.lead, upheld=upheld, reason=reason, logged_by=principal.actor,
                      now=now)
        try:
            return written(appeal.id, self.commit(appeal))
        except IntegrityError:
            raise Conflict("this appeal was already decided") from None
