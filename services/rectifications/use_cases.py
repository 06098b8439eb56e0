"""Use cases for hazards and rectifications (隐患排查整治).

Each method is get -> call the aggregate -> commit. A stale save (another request or the
scheduler changed the item meanwhile) is retried from a fresh load: the command is decided
again against the new state, so its rules still hold.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError

from contracts.escalation import EscalationRules
from events.errors import Conflict, DomainError, NotFound
from events.rectifications import Actor, Funds, Rectification, rectification_id
from services.documents.sheet_rows import ImportOutcome, RowError
from services.kernel.principal import Principal
from services.kernel.results import Written, request_digest
from services.kernel.use_cases import ATTEMPTS, UseCases
from services.rectifications.spreadsheet import HazardRow

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    candidates: int = 0
    items_changed: int = 0
    overdue: int = 0
    escalations: Counter[int] = field(default_factory=Counter)  # level -> events
    conflicts: int = 0  # optimistic-concurrency losses (another instance got there first)

    @property
    def events(self) -> int:
        return self.overdue + sum(self.escalations.values())

    def as_dict(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "items_changed": self.items_changed, "overdue": self.overdue,
                "escalations": {str(k): v for k, v in sorted(self.escalations.items())},
                "conflicts": self.conflicts, "events": self.events}


class RectificationUseCases(UseCases):
    def _actor(self, principal: Principal) -> Actor:
        self.require_writer(principal)
        return Actor(agency=principal.agency, lead=principal.role == "lead", logged_by=principal.actor)

    def rectification(self, item_id: uuid.UUID) -> Rectification:
        return self.load(item_id, Rectification, "rectification")

    def _act(self, item_id: uuid.UUID, command: Callable[[Rectification], None]) -> Written:
        return self.act(item_id, Rectification, "rectification", command)

    # -- use cases -------------------------------------------------------------------------

    def report_hazard(
        self, principal: Principal, *, kind: str, units: Sequence[str], school_id: str, category: str,
        severity: str, description: str, found_on: date, idempotency_key: str | None, body: dict[str, Any],
        now: datetime, evidence: Sequence[str] = (),
    ) -> Written:
        actor = self._actor(principal)
        digest = request_digest(body)
        item_id = rectification_id(principal.agency, idempotency_key)
        if idempotency_key is not None and (prior := self.maybe(item_id)) is not None:
            return self._hazard_replay(prior, digest)
        self.require_evidence(principal, evidence)
        hazards = self.catalogue.hazards
        agg = Rectification.report(
            item_id=item_id, actor=actor, kind=kind, units=units, school_id=school_id, category=category,
            severity=severity, description=description, found_on=found_on,
            categories=[c.code for c in hazards.categories], severities=[s.code for s in hazards.severities],
            known_unit=self.known_unit, school_exists=self.school_exists, request_digest=digest, now=now,
            evidence=evidence,
        )
        # The same Idempotency-Key racing with another request is answered as a replay.
        return self.create_or_replay(agg, lambda existing: self._hazard_replay(existing, digest), status=agg.status)

    def import_hazard_rows(self, principal: Principal, rows: Sequence[HazardRow], *, partial: bool,
                           now: datetime, dry_run: bool = False) -> ImportOutcome:
        """Report the checked rows not reported yet (each row's key is its idempotency key), all
        in one commit. A row the domain still refuses becomes an error; without ``partial`` any
        error stores nothing."""
        actor = self._actor(principal)
        hazards = self.catalogue.hazards
        categories, severities = [c.code for c in hazards.categories], [s.code for s in hazards.severities]
        outcome = ImportOutcome()
        fresh: list[Rectification] = []
        for row in rows:
            item_id = rectification_id(principal.agency, row.key)
            if self.recorder.select_events(item_id, limit=1):
                outcome.already += 1
                continue
            body = {"reported_by": {"kind": "unit", "units": [principal.agency]}, "school_id": row.school_id,
                    "category": row.category, "severity": row.severity, "description": row.description,
                    "found_on": row.found_on.isoformat()}
            try:
                fresh.append(Rectification.report(
                    item_id=item_id, actor=actor, kind="unit", units=[principal.agency], school_id=row.school_id,
                    category=row.category, severity=row.severity, description=row.description,
                    found_on=row.found_on, categories=categories, severities=severities,
                    known_unit=self.known_unit, school_exists=self.school_exists,
                    request_digest=request_digest(body), now=now))
            except DomainError as e:
                outcome.errors.append(RowError(row.row, "问题描述", f"不符合上报规则：{e}"))
        if dry_run or (outcome.errors and not partial):  # dry_run: only the domain's verdict on every row
            return outcome
        if fresh:
            self.commit(*fresh)
        outcome.stored = len(fresh)
        return outcome

    def _hazard_replay(self, existing: Any, digest: str) -> Written:
        first = self.replay(existing, digest, status=existing.status)
        return Written(id=first.id, position=first.position, event_id=first.id, type="HazardReported",
                       status=first.status, replayed=True)

    def assign_rectification(
        self, principal: Principal, item_id: uuid.UUID, *, lead_unit: str, cooperating_units: Sequence[str],
        deadline: date, measures: Sequence[str], funds: Funds, now: datetime,
    ) -> Written:
        actor = self._actor(principal)
        return self._act(item_id, lambda agg: agg.assign(
            actor=actor, lead_unit=lead_unit, cooperating_units=cooperating_units, deadline=deadline,
            measures=measures, funds=funds, known_unit=self.known_unit, now=now,
        ))

    def report_rectification_progress(
        self, principal: Principal, item_id: uuid.UUID, *, note: str, percent: int | None,
        evidence: Sequence[str], now: datetime,
    ) -> Written:
        actor = self._actor(principal)
        self.require_evidence(principal, evidence)
        return self._act(item_id, lambda agg: agg.report_progress(
            actor=actor, note=note, percent=percent, evidence=evidence, now=now))

    def complete_rectification(
        self, principal: Principal, item_id: uuid.UUID, *, summary: str, evidence: Sequence[str], now: datetime,
    ) -> Written:
        actor = self._actor(principal)
        self.require_evidence(principal, evidence)
        return self._act(item_id, lambda agg: agg.complete(actor=actor, summary=summary, evidence=evidence, now=now))

    def verify_rectification(
        self, principal: Principal, item_id: uuid.UUID, *, note: str, now: datetime,
    ) -> Written:
        actor = self._actor(principal)
        return self._act(item_id, lambda agg: agg.verify(actor=actor, note=note, now=now))

    def reject_rectification(
        self, principal: Principal, item_id: uuid.UUID, *, reason: str, new_deadline: date, now: datetime,
    ) -> Written:
        actor = self._actor(principal)
        return self._act(item_id, lambda agg: agg.reject(actor=actor, reason=reason, new_deadline=new_deadline,
                                                         now=now))

    def extend_rectification_deadline(
        self, principal: Principal, item_id: uuid.UUID, *, reason: str, new_deadline: date, now: datetime,
    ) -> Written:
        actor = self._actor(principal)
        limit = self.escalation_rules.max_extensions
        return self._act(item_id, lambda agg: agg.extend(
            actor=actor, reason=reason, new_deadline=new_deadline, max_extensions=limit, now=now))

    def request_rectification_extension(
        self, principal: Principal, item_id: uuid.UUID, *, reason: str, new_deadline: date, now: datetime,
    ) -> Written:
        actor = self._actor(principal)
        limit = self.escalation_rules.max_extensions
        return self._act(item_id, lambda agg: agg.request_extension(
            actor=actor, reason=reason, new_deadline=new_deadline, max_extensions=limit, now=now))

    def refuse_rectification_extension(
        self, principal: Principal, item_id: uuid.UUID, *, reason: str, now: datetime,
    ) -> Written:
        actor = self._actor(principal)
        return self._act(item_id, lambda agg: agg.refuse_extension(actor=actor, reason=reason, now=now))

    # -- the scheduler's use case ----------------------------------------------------------

    def sweep_overdue(
        self, item_ids: Iterable[uuid.UUID], *, now: datetime, rules: EscalationRules, batch: int = 200,
        on_decided: Callable[[int], None] | None = None,
    ) -> SweepResult:
        """Marks overdue and escalates each item as of ``now``. Decisions are the aggregates'
        (each step at most once per deadline and level); a batch is saved in one transaction,
        and a batch that lost an optimistic-concurrency race to another instance is redone
        item by item from fresh loads, which then find the steps already taken.

        ``on_decided(pending)`` is called once per sweep, between deciding the first batch and
        saving it (tests use it to make two instances collide on purpose)."""
        steps = rules.domain_steps()
        result = SweepResult()
        ids = list(item_ids)
        result.candidates = len(ids)
        hook = on_decided
        for start in range(0, len(ids), batch):
            decided: list[Rectification] = []
            for item_id in ids[start:start + batch]:
                try:
                    agg = self.rectification(item_id)
                except NotFound:
                    continue
                if agg.sweep(now, steps, rules.version):
                    decided.append(agg)
            if hook is not None:
                hook(len(decided))
                hook = None
            if not decided:
                continue
            try:
                recordings = self.commit(*decided)
            except IntegrityError:
                result.conflicts += 1
                for agg in decided:
                    self._sweep_one(agg.id, now=now, rules=rules, result=result)
            else:
                self._count_steps(recordings, result)
                result.items_changed += len(decided)
        if hook is not None:
            hook(0)
        return result

    def _sweep_one(self, item_id: uuid.UUID, *, now: datetime, rules: EscalationRules, result: SweepResult) -> None:
        def decision() -> list[Rectification]:
            agg = self.rectification(item_id)
            return [agg] if agg.sweep(now, rules.domain_steps(), rules.version) else []

        def conflict() -> None:
            result.conflicts += 1

        try:
            recordings = self.decide(f"rectification {item_id}", decision, conflict)
        except Conflict:
            log.warning("overdue sweep gave up on %s after %d conflicts; the next run retries", item_id, ATTEMPTS)
            return
        if recordings:
            self._count_steps(recordings, result)
            result.items_changed += 1

    @staticmethod
    def _count_steps(recordings: Sequence[Any], result: SweepResult) -> None:
        for r in recordings:
            event = r.domain_event
            if isinstance(event, Rectification.RectificationOverdue):
                result.overdue += 1
            elif isinstance(event, Rectification.RectificationEscalated):
                result.escalations[event.level] += 1
