"""Hidden hazards and their rectifications (隐患排查整治).

One aggregate per rectification keeps every item small: ``HazardReported`` creates it and every
later step (assignment, progress, completion, verification or rejection, extension, and the
scheduler's overdue and escalation steps) is an event on it.

Who may do what (the acting unit comes in as an ``Actor``; the domain never sees a token):
- any unit that writes reports a hazard, in its own name; a joint inspection is reported by one
  of its units (or the lead bureau); a school self-check is relayed by any unit;
- the lead bureau (教育局) assigns, verifies and closes (销号), rejects or reopens (回头看), and
  grants deadline extensions. Extensions are the lead's on purpose: a responsible unit requests
  one (申请延期: ``ExtensionRequested``, a proposed deadline and a reason; one pending at a time),
  but cannot move its own deadline and so cannot dodge escalation; the lead grants it (the
  existing ``DeadlineExtended``, which settles the request) or refuses it with a reason
  (``ExtensionRefused``). A request lapses when completion is reported (no deadline runs then);
- the responsible units (the assignment's lead unit and cooperating units) report progress and
  completion with evidence (整改回告).

Overdue and escalation steps are decided by ``events.escalation.due_steps`` (meeting tasks use
it too), from ``now`` and the escalation rules, and each step happens at most once per (item,
deadline, level): the aggregate remembers the steps taken, their event ids derive from that
triple, and a second scheduler instance that decided the same step loses the
optimistic-concurrency race, reloads and finds nothing left to do.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypedDict

from eventsourcing.domain import Aggregate

from events.base import Recorded, RecordedCreated, derive_id, local_date
from events.errors import InvariantViolated, NotPermitted
from events.escalation import DueStep, EscalationStep, days_late, due_steps, every_step_taken, level_reached
from events.stored import RUNNING  # defined there so that read models need not import this module

REPORTER_KINDS = ("unit", "self-check", "joint-inspection")
STATUSES = ("reported", "assigned", "in_progress", "completed", "closed", "reopened")
MAX_MEASURES = 30
MAX_EVIDENCE = 50
SCHEDULER_ACTOR = "scheduler:overdue-sweep"
_AMOUNT = re.compile(r"^\d{1,12}(\.\d{1,2})?$")


class ReportedBy(TypedDict):
    kind: str  # unit | self-check | joint-inspection
    units: list[str]  # the reporting unit, or the joint inspection's units; empty for a self-check
    school_id: str | None  # the school that checked itself (self-check only)


class Funds(TypedDict):
    amount_cny: str  # decimal text with two places, e.g. "12000.00"
    source: str


@dataclass(frozen=True)
class PendingExtension:
    """A responsible unit's extension request the lead bureau has not answered yet."""

    unit: str
    requested_deadline: str
    reason: str


@dataclass(frozen=True)
class Actor:
    """Who acts: the unit from the credential, whether it is the lead bureau, and how the log
    names the actor (token id and label, never a person's ID number)."""

    agency: str
    lead: bool
    logged_by: str


def rectification_id(agency: str, idempotency_key: str | None) -> uuid.UUID:
    if idempotency_key is None:
        return uuid.uuid4()
    return derive_id("rectification", agency, idempotency_key)


def step_event_id(item_id: uuid.UUID, deadline: str, level: int) -> str:
    """Overdue is level 0; escalations are levels 1..n. One id per (item, deadline, level)."""
    return str(derive_id("rectification-step", str(item_id), deadline, str(level)))


def normalise_amount(amount: str) -> str:
    text = amount.strip()
    if not _AMOUNT.match(text):
        raise InvariantViolated(f"funds amount {amount!r} must be a non-negative CNY amount with at most 2 decimals")
    return f"{Decimal(text):.2f}"


def _clean_list(values: Iterable[str], what: str, limit: int) -> list[str]:
    out = [v.strip() for v in values]
    if any(not v for v in out):
        raise InvariantViolated(f"{what} must not contain blank entries")
    if len(out) > limit:
        raise InvariantViolated(f"at most {limit} {what}")
    return out


def _require_text(value: str, what: str) -> str:
    if not value.strip():
        raise InvariantViolated(f"{what} must not be blank")
    return value.strip()


class Rectification(Aggregate):
    class HazardReported(RecordedCreated):
        reported_by: ReportedBy
        school_id: str
        category: str
        severity: str
        description: str
        found_on: str
        logged_by: str
        request_digest: str
        evidence: list[str]  # since v2 (photos of the hazard); v1 reports had none

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["evidence"] = []

    class RectificationAssigned(Recorded):
        lead_unit: str
        cooperating_units: list[str]
        deadline: str
        measures: list[str]
        funds: Funds
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.lead_unit = self.lead_unit
            aggregate.cooperating_units = list(self.cooperating_units)
            aggregate.assigned_by = self.agency
            aggregate.assigned_on = self.occurred_on
            aggregate.deadline = self.deadline
            aggregate.status = "assigned"

    class RectificationProgressReported(Recorded):
        note: str
        percent: int | None
        evidence: list[str]
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "in_progress"

    class RectificationCompleted(Recorded):
        summary: str
        evidence: list[str]
        deadline: str
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "completed"
            aggregate.completed_on = self.occurred_on
            aggregate.pending_extension = None  # the work is reported done: nothing left to extend

    class RectificationVerified(Recorded):
        note: str
        completed_on: str
        deadline: str
        on_time: bool
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "closed"

    class RectificationRejected(Recorded):
        reason: str
        previous_status: str
        new_deadline: str
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "reopened"
            aggregate.deadline = self.new_deadline
            aggregate.completed_on = None
            aggregate.rejections += 1

    class DeadlineExtended(Recorded):
        reason: str
        previous_deadline: str
        new_deadline: str
        extension: int  # 1 for the first extension, 2 for the second, ...
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.deadline = self.new_deadline
            aggregate.extensions = self.extension
            aggregate.pending_extension = None  # granting settles a pending request

    class ExtensionRequested(Recorded):
        """申请延期: a responsible unit asks the lead bureau for a later deadline."""

        reason: str
        current_deadline: str
        requested_deadline: str
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.pending_extension = PendingExtension(
                unit=self.agency, requested_deadline=self.requested_deadline, reason=self.reason)

    class ExtensionRefused(Recorded):
        """The lead bureau refuses the pending request, with a reason; the deadline stands."""

        reason: str
        requested_by: str
        requested_deadline: str
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.pending_extension = None

    class RectificationOverdue(Recorded):
        deadline: str
        days_overdue: int
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.steps_taken.add((self.deadline, 0))

    class RectificationEscalated(Recorded):
        level: int
        name: str
        deadline: str
        days_overdue: int
        due_on: str  # the day the step fell due (deadline + its days overdue)
        rules_version: int
        logged_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.steps_taken.add((self.deadline, self.level))

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, reported_by: ReportedBy, school_id: str,
        category: str, severity: str, description: str, found_on: str, logged_by: str, request_digest: str,
        evidence: list[str],
    ) -> None:
        self.reported_by = reported_by
        self.reporter = agency
        self.school_id = school_id
        self.category = category
        self.severity = severity
        self.found_on = found_on
        self.request_digest = request_digest
        self.status = "reported"
        self.lead_unit: str | None = None
        self.cooperating_units: list[str] = []
        self.assigned_by: str | None = None
        self.assigned_on: str | None = None
        self.deadline: str | None = None
        self.completed_on: str | None = None
        self.extensions = 0
        self.rejections = 0
        self.pending_extension: PendingExtension | None = None
        # (deadline, level) steps already taken; level 0 is "overdue".
        self.steps_taken: set[tuple[str, int]] = set()

    # -- reading ---------------------------------------------------------------------------

    @property
    def responsible_units(self) -> list[str]:
        return ([self.lead_unit] if self.lead_unit else []) + self.cooperating_units

    def days_overdue(self, today: date) -> int:
        """Whole days past the deadline while the deadline is running; 0 otherwise."""
        return days_late(self.deadline, running=self.status in RUNNING, today=today)

    def escalation_level(self) -> int:
        """The highest escalation level reached for the deadline now in force."""
        return level_reached(self.steps_taken, self.deadline)

    # -- rules shared by commands ----------------------------------------------------------

    def _next_event_id(self) -> str:
        return str(derive_id("rectification-event", str(self.id), str(self.version + 1)))

    def _check_deadline(self, deadline: date, today: date, what: str = "deadline") -> str:
        if deadline.isoformat() < self.found_on:
            raise InvariantViolated(
                f"{what} {deadline.isoformat()} is earlier than the day the hazard was found ({self.found_on})"
            )
        if deadline < today:
            raise InvariantViolated(f"{what} {deadline.isoformat()} is already past (today is {today.isoformat()})")
        return deadline.isoformat()

    def _check_not_closed(self, action: str) -> None:
        if self.status == "closed":
            raise InvariantViolated(
                f"rectification {self.id} is closed (销号); it cannot {action}. "
                "Only the lead bureau may reopen it, by rejecting it with a reason and a new deadline"
            )

    def _check_assigned(self, action: str) -> None:
        if self.status == "reported":
            raise InvariantViolated(f"rectification {self.id} is not assigned yet; it cannot {action}")

    def _check_responsible(self, actor: Actor, action: str) -> None:
        if self.status == "reported":
            self._check_assigned(action)
        if actor.agency not in self.responsible_units:
            raise NotPermitted(
                f"only a responsible unit ({', '.join(self.responsible_units)}) may {action}; "
                f"{actor.agency!r} is not one of them"
            )

    @staticmethod
    def _check_lead(actor: Actor, action: str) -> None:
        if not actor.lead:
            raise NotPermitted(f"only the lead bureau may {action}")

    # -- commands --------------------------------------------------------------------------

    @classmethod
    def report(
        cls, *, item_id: uuid.UUID, actor: Actor, kind: str, units: Sequence[str], school_id: str,
        category: str, severity: str, description: str, found_on: date, categories: Collection[str],
        severities: Collection[str], known_unit: Callable[[str], bool], school_exists: Callable[[str], bool],
        request_digest: str, now: datetime, evidence: Sequence[str] = (),
    ) -> Rectification:
        """Anyone who finds a hazard reports it; it becomes one tracked rectification."""
        named = list(dict.fromkeys(u.strip() for u in units))
        reported_by: ReportedBy
        if kind == "unit":
            if named and named != [actor.agency]:
                raise NotPermitted(f"a unit reports hazards only in its own name ({actor.agency!r})")
            reported_by = {"kind": kind, "units": [actor.agency], "school_id": None}
        elif kind == "joint-inspection":
            if len(named) < 2:
                raise InvariantViolated("a joint inspection names at least two units")
            unknown = [u for u in named if not known_unit(u)]
            if unknown:
                raise InvariantViolated(f"unknown member unit(s): {', '.join(unknown)}")
            if actor.agency not in named and not actor.lead:
                raise NotPermitted(
                    f"only a unit that took part in the joint inspection (or the lead bureau) may report it; "
                    f"{actor.agency!r} is not among {', '.join(named)}"
                )
            reported_by = {"kind": kind, "units": named, "school_id": None}
        elif kind == "self-check":
            if named:
                raise InvariantViolated("a school self-check names no units (the school checked itself)")
            reported_by = {"kind": kind, "units": [], "school_id": school_id}
        else:
            raise InvariantViolated(f"reported_by.kind {kind!r} is not one of {', '.join(REPORTER_KINDS)}")
        if category not in categories:
            raise InvariantViolated(f"hazard category {category!r} is not one of {', '.join(categories)}")
        if severity not in severities:
            raise InvariantViolated(f"severity {severity!r} is not one of {', '.join(severities)}")
        if not school_exists(school_id):
            raise InvariantViolated(f"unknown school {school_id!r}")
        if found_on > local_date(now):
            raise InvariantViolated(f"found_on {found_on.isoformat()} is in the future")
        return cls._create(
            cls.HazardReported, id=item_id, timestamp=now, event_id=str(item_id), agency=actor.agency,
            occurred_on=found_on.isoformat(), reported_by=reported_by, school_id=school_id, category=category,
            severity=severity, description=_require_text(description, "description"),
            found_on=found_on.isoformat(), logged_by=actor.logged_by, request_digest=request_digest,
            evidence=_clean_list(evidence, "evidence references", MAX_EVIDENCE),
        )

    def assign(
        self, *, actor: Actor, lead_unit: str, cooperating_units: Sequence[str], deadline: date,
        measures: Sequence[str], funds: Funds, known_unit: Callable[[str], bool], now: datetime,
    ) -> None:
        """整改方案、责任、时限、措施、资金: the lead bureau names who fixes it, by when, how and
        with which money."""
        self._check_lead(actor, "assign rectifications")
        self._check_not_closed("be assigned again")
        if self.status != "reported":
            raise InvariantViolated(
                f"rectification {self.id} is already assigned to {self.lead_unit!r}; "
                "move its deadline with an extension"
            )
        coop = list(dict.fromkeys(u.strip() for u in cooperating_units))
        unknown = [u for u in [lead_unit, *coop] if not known_unit(u)]
        if unknown:
            raise InvariantViolated(f"unknown member unit(s): {', '.join(unknown)}")
        if lead_unit in coop:
            raise InvariantViolated(f"{lead_unit!r} is the lead unit; it cannot also be a cooperating unit")
        steps = _clean_list(measures, "measures", MAX_MEASURES)
        if not steps:
            raise InvariantViolated("an assignment lists at least one measure")
        today = local_date(now)
        self.trigger_event(
            self.RectificationAssigned, timestamp=now, event_id=self._next_event_id(), agency=actor.agency,
            occurred_on=today.isoformat(), lead_unit=lead_unit, cooperating_units=coop,
            deadline=self._check_deadline(deadline, today), measures=steps,
            funds={"amount_cny": normalise_amount(funds["amount_cny"]),
                   "source": _require_text(funds["source"], "funds source")},
            logged_by=actor.logged_by,
        )

    def report_progress(
        self, *, actor: Actor, note: str, percent: int | None, evidence: Sequence[str], now: datetime,
    ) -> None:
        self._check_responsible(actor, "report progress")
        self._check_not_closed("take progress reports")
        if self.status == "completed":
            raise InvariantViolated(
                f"completion of rectification {self.id} is already reported; it awaits the lead bureau's verification"
            )
        if percent is not None and not 0 <= percent <= 100:
            raise InvariantViolated(f"percent {percent} must be between 0 and 100")
        self.trigger_event(
            self.RectificationProgressReported, timestamp=now, event_id=self._next_event_id(),
            agency=actor.agency, occurred_on=local_date(now).isoformat(), note=_require_text(note, "note"),
            percent=percent, evidence=_clean_list(evidence, "evidence references", MAX_EVIDENCE),
            logged_by=actor.logged_by,
        )

    def complete(self, *, actor: Actor, summary: str, evidence: Sequence[str], now: datetime) -> None:
        """整改回告: the responsible unit reports the work done, with evidence."""
        self._check_responsible(actor, "report completion")
        self._check_not_closed("be completed again")
        if self.status == "completed":
            raise InvariantViolated(f"completion of rectification {self.id} is already reported")
        refs = _clean_list(evidence, "evidence references", MAX_EVIDENCE)
        if not refs:
            raise InvariantViolated("a completion report (整改回告) needs at least one evidence reference")
        assert self.deadline is not None
        self.trigger_event(
            self.RectificationCompleted, timestamp=now, event_id=self._next_event_id(), agency=actor.agency,
            occurred_on=local_date(now).isoformat(), summary=_require_text(summary, "summary"),
            evidence=refs, deadline=self.deadline, logged_by=actor.logged_by,
        )

    def verify(self, *, actor: Actor, note: str, now: datetime) -> None:
        """销号: the lead bureau checks the completed work and closes the item."""
        self._check_lead(actor, "verify and close a rectification (销号)")
        self._check_not_closed("be verified again")
        if self.status != "completed":
            raise InvariantViolated(
                f"rectification {self.id} is {self.status}; verification comes only after completion is reported"
            )
        assert self.completed_on is not None and self.deadline is not None
        self.trigger_event(
            self.RectificationVerified, timestamp=now, event_id=self._next_event_id(), agency=actor.agency,
            occurred_on=local_date(now).isoformat(), note=note.strip(), completed_on=self.completed_on,
            deadline=self.deadline, on_time=self.completed_on <= self.deadline, logged_by=actor.logged_by,
        )

    def reject(self, *, actor: Actor, reason: str, new_deadline: date, now: datetime) -> None:
        """回头看: the lead bureau rejects a completion, or reopens a closed item, with a reason
        and a new deadline."""
        self._check_lead(actor, "reject a completion or reopen a rectification")
        if self.status not in ("completed", "closed"):
            raise InvariantViolated(
                f"rectification {self.id} is {self.status}; only a reported completion or a closed item "
                "can be rejected and reopened"
            )
        text = _require_text(reason, "a rejection's reason")
        today = local_date(now)
        self.trigger_event(
            self.RectificationRejected, timestamp=now, event_id=self._next_event_id(), agency=actor.agency,
            occurred_on=today.isoformat(), reason=text, previous_status=self.status,
            new_deadline=self._check_deadline(new_deadline, today, "new deadline"), logged_by=actor.logged_by,
        )

    def extend(
        self, *, actor: Actor, reason: str, new_deadline: date, max_extensions: int, now: datetime,
    ) -> None:
        """The lead bureau grants a later deadline, for a recorded reason, a limited number of times;
        on a pending request (any date, the requested one or not) this is its grant."""
        self._check_lead(actor, "extend a deadline (a responsible unit asks the lead bureau)")
        self._check_extendable("have its deadline extended", max_extensions)
        text = _require_text(reason, "an extension's reason")
        assert self.deadline is not None
        if new_deadline.isoformat() <= self.deadline:
            raise InvariantViolated(
                f"new deadline {new_deadline.isoformat()} must be later than the current one ({self.deadline})"
            )
        today = local_date(now)
        self.trigger_event(
            self.DeadlineExtended, timestamp=now, event_id=self._next_event_id(), agency=actor.agency,
            occurred_on=today.isoformat(), reason=text, previous_deadline=self.deadline,
            new_deadline=self._check_deadline(new_deadline, today, "new deadline"),
            extension=self.extensions + 1, logged_by=actor.logged_by,
        )

    def _check_extendable(self, action: str, max_extensions: int) -> None:
        """An open, assigned item with a running deadline and extensions left."""
        self._check_not_closed(action)
        self._check_assigned(action)
        if self.status == "completed":
            raise InvariantViolated(f"completion of rectification {self.id} is already reported; nothing to extend")
        if self.extensions >= max_extensions:
            raise InvariantViolated(
                f"the deadline of rectification {self.id} was already extended {self.extensions} time(s), "
                f"the most allowed ({max_extensions})"
            )

    def request_extension(
        self, *, actor: Actor, reason: str, new_deadline: date, max_extensions: int, now: datetime,
    ) -> None:
        """申请延期: a responsible unit proposes a later deadline, with a reason, for the lead
        bureau to grant or refuse. One request is pending at a time."""
        self._check_responsible(actor, "request a deadline extension")
        self._check_extendable("have its deadline extended", max_extensions)
        if self.pending_extension is not None:
            raise InvariantViolated(
                f"an extension request for rectification {self.id} (to {self.pending_extension.requested_deadline}) "
                "is still pending; wait for the lead bureau's answer"
            )
        text = _require_text(reason, "an extension request's reason")
        assert self.deadline is not None
        if new_deadline.isoformat() <= self.deadline:
            raise InvariantViolated(
                f"requested deadline {new_deadline.isoformat()} must be later than the current one ({self.deadline})"
            )
        today = local_date(now)
        self.trigger_event(
            self.ExtensionRequested, timestamp=now, event_id=self._next_event_id(), agency=actor.agency,
            occurred_on=today.isoformat(), reason=text, current_deadline=self.deadline,
            requested_deadline=self._check_deadline(new_deadline, today, "requested deadline"),
            logged_by=actor.logged_by,
        )

    def refuse_extension(self, *, actor: Actor, reason: str, now: datetime) -> None:
        """The lead bureau refuses the pending extension request, with a reason."""
        self._check_lead(actor, "refuse an extension request")
        pending = self.pending_extension
        if pending is None:
            raise InvariantViolated(f"rectification {self.id} has no pending extension request to refuse")
        text = _require_text(reason, "a refusal's reason")
        self.trigger_event(
            self.ExtensionRefused, timestamp=now, event_id=self._next_event_id(), agency=actor.agency,
            occurred_on=local_date(now).isoformat(), reason=text, requested_by=pending.unit,
            requested_deadline=pending.requested_deadline, logged_by=actor.logged_by,
        )

    # -- scheduler steps -------------------------------------------------------------------

    def _due_steps(self, now: datetime, steps: Sequence[EscalationStep]) -> list[DueStep]:
        return due_steps(deadline=self.deadline, running=self.status in RUNNING, steps_taken=self.steps_taken,
                         today=local_date(now), schedule=steps)

    def _take(self, step: DueStep, now: datetime, rules_version: int) -> None:
        assert self.lead_unit is not None  # a running deadline implies an assignment
        today = local_date(now).isoformat()
        event_id = step_event_id(self.id, step.deadline, step.level)
        if step.is_overdue_mark:
            self.trigger_event(
                self.RectificationOverdue, timestamp=now, event_id=event_id, agency=self.lead_unit,
                occurred_on=today, deadline=step.deadline, days_overdue=step.days_overdue,
                logged_by=SCHEDULER_ACTOR,
            )
        else:
            self.trigger_event(
                self.RectificationEscalated, timestamp=now, event_id=event_id, agency=self.lead_unit,
                occurred_on=today, level=step.level, name=step.name, deadline=step.deadline,
                days_overdue=step.days_overdue, due_on=step.due_on, rules_version=rules_version,
                logged_by=SCHEDULER_ACTOR,
            )

    def mark_overdue(self, now: datetime) -> bool:
        """Records that the running deadline has passed, once per deadline."""
        marks = [s for s in self._due_steps(now, ()) if s.is_overdue_mark]
        for step in marks:
            self._take(step, now, rules_version=1)  # the overdue mark carries no rules version
        return bool(marks)

    def escalate(self, now: datetime, steps: Sequence[EscalationStep], rules_version: int = 1) -> list[int]:
        """Takes every escalation step now due and not yet taken for this deadline, in level
        order (a sweep that missed days catches up step by step). Returns the levels taken."""
        escalations = [s for s in self._due_steps(now, steps) if not s.is_overdue_mark]
        for step in escalations:
            self._take(step, now, rules_version)
        return [s.level for s in escalations]

    def took_every_step(self, steps: Sequence[EscalationStep]) -> bool:
        """Whether no sweep can take anything more for the deadline in force."""
        return every_step_taken(self.steps_taken, self.deadline, steps)

    def sweep(self, now: datetime, steps: Sequence[EscalationStep], rules_version: int = 1) -> int:
        """Overdue first, then escalations. Returns how many events were taken."""
        due = self._due_steps(now, steps)
        for step in due:
            self._take(step, now, rules_version)
        return len(due)
