"""Use cases of early warnings (预警): the meteorological bureau issues, schools and units
acknowledge, and the scheduler escalates what stays unacknowledged to the lead."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from eventsourcing.persistence import IntegrityError

from contracts.escalation import WarningRules, default_warning_rules
from events.base import derive_id
from events.errors import Conflict, DomainError
from events.warnings import EarlyWarning, WarningAcknowledgement
from services.kernel.principal import Principal
from services.kernel.results import Written, written
from services.kernel.use_cases import UseCases


class WarningUseCases(UseCases):
    warning_rules_override: WarningRules | None = None

    @property
    def warning_rules(self) -> WarningRules:
        return self.warning_rules_override or default_warning_rules()

    @warning_rules.setter
    def warning_rules(self, rules: WarningRules) -> None:
        self.warning_rules_override = rules

    def issue_warning(
        self, principal: Principal, *, warning_type: str, level: str, title: str, towns: Sequence[str],
        valid_from: datetime, valid_until: datetime, measures: Sequence[str], units: Sequence[str] | None,
        school_ids: Sequence[str], idempotency_key: str | None, now: datetime, request_digest: str = "",
    ) -> Written:
        """``school_ids``: the schools of the covered towns, looked up by the caller.
        ``request_digest``: the request body's hash; a retry with the same Idempotency-Key and
        body is answered with the first warning, even once the warning has expired."""
        self.require_writer(principal)
        wid = derive_id("warning", principal.agency, idempotency_key) if idempotency_key else uuid.uuid4()
        rules = self.warning_rules
        try:
            agg = EarlyWarning.issue(
                warning_id=wid, agency=self.agency(principal.agency), issuing_duties=rules.issuing_duties,
                warning_type=warning_type, level=level, title=title, towns=list(towns), valid_from=valid_from,
                valid_until=valid_until, measures=list(measures), school_ids=list(school_ids),
                units=list(units if units is not None else rules.default_units), known_units=self.unit_codes(),
                now=now, request_digest=request_digest,
            )
        except DomainError:
            prior = self.maybe(wid) if idempotency_key else None
            if prior is None:
                raise
            return self.replay(prior, request_digest)
        if not idempotency_key:
            return self.create(wid, "warning", agg)
        return self.create_or_replay(agg, lambda existing: self.replay(existing, request_digest))

    def acknowledge_warning(
        self, principal: Principal, warning_id: uuid.UUID, *, recipient_kind: str, recipient: str | None,
        measures_taken: Sequence[str], note: str, now: datetime,
    ) -> Written:
        self.require_writer(principal)
        warning: EarlyWarning = self.load(warning_id, EarlyWarning, "warning")
        who = recipient if recipient is not None else principal.agency
        ack = WarningAcknowledgement.acknowledge(
            warning=warning, by_agency=principal.agency, acts_for_schools=self.acts_for_schools(principal),
            recipient_kind=recipient_kind, recipient=who, measures_taken=list(measures_taken), note=note,
            logged_by=principal.actor, now=now,
        )
        try:
            recordings = self.commit(ack)
        except IntegrityError:
            raise Conflict(f"{recipient_kind} {who!r} already acknowledged this warning") from None
        return written(ack.id, recordings)

    def escalate_warning(
        self, warning_id: uuid.UUID, *, schools: Sequence[str], units: Sequence[str], now: datetime,
    ) -> bool:
        """The scheduler's escalation to the lead: once per warning. False when it was
        already escalated (by this or another instance)."""

        def decision() -> list[EarlyWarning]:
            warning = self.load(warning_id, EarlyWarning, "warning")
            if warning.escalated:
                return []
            warning.escalate(lead=self.lead_code, unacknowledged_schools=list(schools),
                             unacknowledged_units=list(units), now=now)
            return [warning]

        try:
            return self.decide(f"warning {warning_id}", decision) is not None
        except Conflict:  # another instance keeps winning: it is escalating this warning
            return False
