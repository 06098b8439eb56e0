"""Use cases for hazards and rectifications (隐患排查整治), mixed into LianxiApp.

Each method is get -> call the aggregate -> commit. A stale save (another request or the
scheduler changed the item meanwhile) is retried from a fresh load: the command is decided
again against the new state, so its rules still hold.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import orjson
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts.catalogue import default_catalogue
from contracts.escalation import EscalationRules, default_escalation_rules
from events.errors import Conflict, NotFound, NotPermitted
from events.rectifications import Actor, Funds, Rectification, rectification_id
from services.kernel.principal import Principal

if TYPE_CHECKING:
    from eventsourcing.application import Repository
    from eventsourcing.persistence import Recording

log = logging.getLogger(__name__)

ATTEMPTS = 3  # tries of one command against concurrent writers before answering 409


@dataclass(frozen=True)
class RectificationWrite:
    """What a write answers: the item, the event it appended, and the item's status after it."""

    id: str
    event_id: str
    type: str
    position: int | None
    status: str
    replayed: bool = False


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


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class RectificationUseCases:
    """Mixin for LianxiApp (which provides repository, commit, agency, school_exists, position_of)."""

    if TYPE_CHECKING:
        repository: Repository[uuid.UUID]

        def commit(self, *aggregates: Any) -> Sequence[Recording[uuid.UUID]]: ...
        def agency(self, code: str) -> Any: ...
        def school_exists(self, school_id: str) -> bool: ...
        def position_of(self, originator_id: uuid.UUID, version: int) -> int | None: ...

    _escalation_rules: EscalationRules | None = None

    @property
    def escalation_rules(self) -> EscalationRules:
        return self._escalation_rules or default_escalation_rules()

    @escalation_rules.setter
    def escalation_rules(self, rules: EscalationRules) -> None:
        self._escalation_rules = rules

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _actor(principal: Principal) -> Actor:
        if not principal.can_write:
            raise NotPermitted(f"a {principal.role} credential is read-only")
        return Actor(agency=principal.agency, lead=principal.role == "lead", logged_by=principal.actor)

    def _known_unit(self, code: str) -> bool:
        try:
            self.agency(code)
        except NotFound:
            return False
        return True

    def rectification(self, item_id: uuid.UUID) -> Rectification:
        try:
            agg: Any = self.repository.get(item_id)
        except AggregateNotFoundError:
            raise NotFound(f"unknown rectification {item_id}") from None
        if not isinstance(agg, Rectification):
            raise NotFound(f"unknown rectification {item_id}")
        return agg

    def _written(self, agg: Rectification, recordings: Sequence[Any]) -> RectificationWrite:
        last = recordings[-1]
        event: Any = last.domain_event
        return RectificationWrite(id=str(agg.id), event_id=event.event_id, type=type(event).__name__,
                                  position=last.notification.id, status=agg.status)

    def _act(self, item_id: uuid.UUID, command: Callable[[Rectification], None]) -> RectificationWrite:
        for attempt in range(ATTEMPTS):
            agg = self.rectification(item_id)
            command(agg)
            try:
                recordings = self.commit(agg)
            except IntegrityError:
                log.info("rectification %s changed meanwhile (attempt %d); deciding again", item_id, attempt + 1)
                continue
            return self._written(agg, recordings)
        raise Conflict(f"rectification {item_id} kept changing while this request was processed; retry")

    # -- use cases -------------------------------------------------------------------------

    def report_hazard(
        self, principal: Principal, *, kind: str, units: Sequence[str], school_id: str, category: str,
        severity: str, description: str, found_on: date, idempotency_key: str | None, body: dict[str, Any],
        now: datetime,
    ) -> RectificationWrite:
        actor = self._actor(principal)
        digest = _digest(body)
        item_id = rectification_id(principal.agency, idempotency_key)
        if idempotency_key is not None:
            replay = self._hazard_replay(item_id, digest)
            if replay is not None:
                return replay
        hazards = default_catalogue().hazards
        agg = Rectification.report(
            item_id=item_id, actor=actor, kind=kind, units=units, school_id=school_id, category=category,
            severity=severity, description=description, found_on=found_on,
            categories=[c.code for c in hazards.categories], severities=[s.code for s in hazards.severities],
            known_unit=self._known_unit, school_exists=self.school_exists, request_digest=digest, now=now,
        )
        try:
            recordings = self.commit(agg)
        except IntegrityError:
            # The same Idempotency-Key raced with another request: answer as a replay.
            replay = self._hazard_replay(item_id, digest) if idempotency_key is not None else None
            if replay is None:
                raise
            return replay
        return self._written(agg, recordings)

    def _hazard_replay(self, item_id: uuid.UUID, digest: str) -> RectificationWrite | None:
        try:
            existing: Any = self.repository.get(item_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(existing, Rectification) or existing.request_digest != digest:
            raise Conflict("this Idempotency-Key was already used with a different request body")
        return RectificationWrite(id=str(item_id), event_id=str(item_id), type="HazardReported",
                                  position=self.position_of(item_id, 1), status=existing.status, replayed=True)

    def assign_rectification(
        self, principal: Principal, item_id: uuid.UUID, *, lead_unit: str, cooperating_units: Sequence[str],
        deadline: date, measures: Sequence[str], funds: Funds, now: datetime,
    ) -> RectificationWrite:
        actor = self._actor(principal)
        return self._act(item_id, lambda agg: agg.assign(
            actor=actor, lead_unit=lead_unit, cooperating_units=cooperating_units, deadline=deadline,
            measures=measures, funds=funds, known_unit=self._known_unit, now=now,
        ))

    def report_rectification_progress(
        self, principal: Principal, item_id: uuid.UUID, *, note: str, percent: int | None,
        evidence: Sequence[str], now: datetime,
    ) -> RectificationWrite:
        actor = self._actor(principal)
        return self._act(item_id, lambda agg: agg.report_progress(
            actor=actor, note=note, percent=percent, evidence=evidence, now=now))

    def complete_rectification(
        self, principal: Principal, item_id: uuid.UUID, *, summary: str, evidence: Sequence[str], now: datetime,
    ) -> RectificationWrite:
        actor = self._actor(principal)
        return self._act(item_id, lambda agg: agg.complete(actor=actor, summary=summary, evidence=evidence, now=now))

    def verify_rectification(
        self, principal: Principal, item_id: uuid.UUID, *, note: str, now: datetime,
    ) -> RectificationWrite:
        actor = self._actor(principal)
        return self._act(item_id, lambda agg: agg.verify(actor=actor, note=note, now=now))

    def reject_rectification(
        self, principal: Principal, item_id: uuid.UUID, *, reason: str, new_deadline: date, now: datetime,
    ) -> RectificationWrite:
        actor = self._actor(principal)
        return self._act(item_id, lambda agg: agg.reject(actor=actor, reason=reason, new_deadline=new_deadline,
                                                         now=now))

    def extend_rectification_deadline(
        self, principal: Principal, item_id: uuid.UUID, *, reason: str, new_deadline: date, now: datetime,
    ) -> RectificationWrite:
        actor = self._actor(principal)
        limit = self.escalation_rules.max_extensions
        return self._act(item_id, lambda agg: agg.extend(
            actor=actor, reason=reason, new_deadline=new_deadline, max_extensions=limit, now=now))

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
                self._count(recordings, result)
                result.items_changed += len(decided)
        if hook is not None:
            hook(0)
        return result

    def _sweep_one(self, item_id: uuid.UUID, *, now: datetime, rules: EscalationRules, result: SweepResult) -> None:
        for _ in range(ATTEMPTS):
            agg = self.rectification(item_id)
            if not agg.sweep(now, rules.domain_steps(), rules.version):
                return
            try:
                recordings = self.commit(agg)
            except IntegrityError:
                result.conflicts += 1
                continue
            self._count(recordings, result)
            result.items_changed += 1
            return
        log.warning("overdue sweep gave up on %s after %d conflicts; the next run retries", item_id, ATTEMPTS)

    @staticmethod
    def _count(recordings: Sequence[Any], result: SweepResult) -> None:
        for r in recordings:
            event = r.domain_event
            if isinstance(event, Rectification.RectificationOverdue):
                result.overdue += 1
            elif isinstance(event, Rectification.RectificationEscalated):
                result.escalations[event.level] += 1
