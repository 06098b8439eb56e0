"""Joint meetings (联席会议) and the tasks their resolutions assign (决议事项).

A ``Meeting`` is scheduled by the lead, collects proposed agenda items from any unit, gets
one draft agenda from the scheduler, is held once (attendance and minutes) and then adopts
resolutions. Each resolution assigns ``Task``s to units with deadlines; a task is tracked
like a rectification: progress, completion (回告), verification or rejection by the lead,
deadline extension with a reason, and overdue steps and escalation emitted by the scheduler
with ids derived from (task, deadline, step), so they happen exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, TypedDict

from eventsourcing.domain import Aggregate

from events.base import Recorded, RecordedCreated, derive_id, local_date
from events.errors import Conflict, InvariantViolated, NotPermitted
from events.escalation import DueStep, EscalationStep, days_late, due_steps, level_reached
from events.stored import OPEN_STATES  # defined there so that read models need not import this module

MAX_TASKS_PER_RESOLUTION = 50
MAX_TEXT = 4000


class TaskSpec(TypedDict):
    task_id: str
    unit: str
    cooperating_units: list[str]
    description: str
    deadline: str


class AgendaCounts(TypedDict):
    section: str
    count: int


def meeting_id(year: int, number: int) -> uuid.UUID:
    return derive_id("meeting", str(year), str(number))


def _text(value: str, field: str, limit: int = MAX_TEXT) -> str:
    value = value.strip()
    if not value:
        raise InvariantViolated(f"{field} must not be blank")
    if len(value) > limit:
        raise InvariantViolated(f"{field} is longer than {limit} characters")
    return value


class Meeting(Aggregate):
    class MeetingScheduled(RecordedCreated):
        year: int
        number: int
        title: str
        scheduled_for: str
        place: str
        convened_by: str

    class AgendaItemProposed(Recorded):
        item_id: str
        proposed_by: str
        title: str
        detail: str
        related_event_ids: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate.item_ids.add(self.item_id)

    class AgendaDrafted(Recorded):
        period_start: str
        period_end: str
        sections: list[AgendaCounts]

        def apply(self, aggregate: Any) -> None:
            aggregate.drafted = True

    class MeetingHeld(Recorded):
        held_on: str
        attendance: list[str]  # member units present
        absent: list[str]
        minutes: str

        def apply(self, aggregate: Any) -> None:
            aggregate.held_on = self.held_on

    class ResolutionAdopted(Recorded):
        resolution_id: str
        seq: int
        text: str
        agenda_item_ids: list[str]
        tasks: list[TaskSpec]

        def apply(self, aggregate: Any) -> None:
            aggregate.resolutions += 1

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, year: int, number: int, title: str,
        scheduled_for: str, place: str, convened_by: str,
    ) -> None:
        self.year = year
        self.number = number
        self.scheduled_for = scheduled_for
        self.scheduled_on = occurred_on  # the day it was convened: it cannot be held before
        self.convened_by = convened_by
        self.item_ids: set[str] = set()
        self.drafted = False
        self.held_on: str | None = None
        self.resolutions = 0

    @classmethod
    def schedule(
        cls, *, lead: str, is_lead: bool, year: int, number: int, next_number: int, title: str,
        scheduled_for: date, place: str, now: datetime,
    ) -> Meeting:
        """Meetings are numbered 1, 2, 3... within a year in the order they are convened:
        ``next_number`` is the first number of ``year`` the log does not hold, and ``number``
        must be it. A client therefore cannot pick a number ahead of the sequence (which would
        also leave gaps in the official numbering); a number already taken is a conflict."""
        if not is_lead:
            raise NotPermitted("only the lead unit convenes joint meetings")
        if scheduled_for < local_date(now):
            raise InvariantViolated(f"scheduled_for {scheduled_for.isoformat()} is in the past")
        if scheduled_for.year != year:
            raise InvariantViolated("a meeting is numbered within the year it is held in")
        if not 1 <= number <= 999:
            raise InvariantViolated("meeting number must be between 1 and 999")
        if number < next_number:
            raise Conflict(f"meeting number {number} of {year} is already scheduled")
        if number > next_number:
            raise InvariantViolated(
                f"meeting number {number} is not the next of {year}: the next is {next_number}; "
                "omit the number to have it assigned")
        mid = meeting_id(year, number)
        return cls._create(
            cls.MeetingScheduled, id=mid, timestamp=now, event_id=str(mid), agency=lead,
            occurred_on=local_date(now).isoformat(), year=year, number=number,
            title=_text(title, "title", 200), scheduled_for=scheduled_for.isoformat(),
            place=place.strip(), convened_by=lead,
        )

    def propose_item(
        self, *, unit: str, title: str, detail: str, related_event_ids: Sequence[str], now: datetime,
    ) -> str:
        if self.held_on is not None:
            raise InvariantViolated("the meeting was already held; propose the item for the next one")
        if len(related_event_ids) > 100:
            raise InvariantViolated("an item refers to at most 100 events")
        item_id = str(derive_id("agenda-item", str(self.id), str(self.version + 1)))
        self.trigger_event(
            self.AgendaItemProposed, timestamp=now, event_id=item_id, agency=unit,
            occurred_on=local_date(now).isoformat(), item_id=item_id, proposed_by=unit,
            title=_text(title, "title", 200), detail=detail.strip(), related_event_ids=list(related_event_ids),
        )
        return item_id

    def record_draft(
        self, *, lead: str, period_start: date, period_end: date, sections: list[AgendaCounts], now: datetime,
    ) -> None:
        """The scheduler's draft agenda: once per meeting, so its id derives from the meeting."""
        if self.drafted:
            raise Conflict("the draft agenda of this meeting was already assembled")
        if self.held_on is not None:
            raise InvariantViolated("the meeting was already held")
        self.trigger_event(
            self.AgendaDrafted, timestamp=now, event_id=str(derive_id("agenda-drafted", str(self.id))),
            agency=lead, occurred_on=local_date(now).isoformat(), period_start=period_start.isoformat(),
            period_end=period_end.isoformat(), sections=list(sections),
        )

    def hold(
        self, *, lead: str, is_lead: bool, held_on: date, attendance: Iterable[str], absent: Iterable[str],
        minutes: str, known_units: Iterable[str], now: datetime,
    ) -> None:
        if not is_lead:
            raise NotPermitted("only the lead unit records the meeting")
        if self.held_on is not None:
            raise Conflict(f"the meeting was already held on {self.held_on}")
        if held_on > local_date(now):
            raise InvariantViolated(f"held_on {held_on.isoformat()} is in the future")
        if held_on.isoformat() < self.scheduled_on:
            raise InvariantViolated(
                f"held_on {held_on.isoformat()} is before the meeting was convened ({self.scheduled_on})")
        if held_on.year != self.year:
            raise InvariantViolated("held_on must fall in the meeting's year")
        known = set(known_units)
        present = list(dict.fromkeys(attendance))
        away = list(dict.fromkeys(absent))
        unknown = sorted((set(present) | set(away)) - known)
        if unknown:
            raise InvariantViolated(f"unknown member unit(s): {', '.join(unknown)}")
        if set(present) & set(away):
            raise InvariantViolated("a unit cannot be both present and absent")
        if lead not in present:
            raise InvariantViolated("the convening lead unit must attend")
        self.trigger_event(
            self.MeetingHeld, timestamp=now, event_id=str(derive_id("meeting-held", str(self.id))),
            agency=lead, occurred_on=held_on.isoformat(), held_on=held_on.isoformat(), attendance=present,
            absent=away, minutes=_text(minutes, "minutes", 20000),
        )

    def adopt_resolution(
        self, *, lead: str, is_lead: bool, text: str, agenda_item_ids: Sequence[str],
        tasks: Sequence[dict[str, Any]], known_units: Iterable[str], now: datetime,
    ) -> tuple[str, list[TaskSpec]]:
        """``tasks``: {unit, cooperating_units, description, deadline (date)}. Returns the
        resolution id and the task specs whose ``Task``s the caller assigns."""
        if not is_lead:
            raise NotPermitted("only the lead unit records resolutions")
        if self.held_on is None:
            raise InvariantViolated("resolutions are adopted at a held meeting")
        if len(tasks) > MAX_TASKS_PER_RESOLUTION:
            raise InvariantViolated(f"a resolution assigns at most {MAX_TASKS_PER_RESOLUTION} tasks")
        missing = [i for i in agenda_item_ids if i not in self.item_ids]
        if missing:
            raise InvariantViolated(f"unknown agenda item(s): {', '.join(missing[:5])}")
        known = set(known_units)
        seq = self.resolutions + 1
        resolution_id = str(derive_id("resolution", str(self.id), str(seq)))
        specs: list[TaskSpec] = []
        for i, t in enumerate(tasks):
            unit = str(t["unit"])
            cooperating = list(dict.fromkeys(str(u) for u in t.get("cooperating_units", [])))
            bad = [u for u in [unit, *cooperating] if u not in known]
            if bad:
                raise InvariantViolated(f"tasks[{i}]: unknown member unit(s): {', '.join(bad)}")
            if unit in cooperating:
                raise InvariantViolated(f"tasks[{i}]: the responsible unit is not also a cooperating unit")
            deadline: date = t["deadline"]
            if deadline.isoformat() <= self.held_on:
                raise InvariantViolated(f"tasks[{i}]: deadline must be after the meeting ({self.held_on})")
            specs.append({
                "task_id": str(derive_id("task", resolution_id, str(i))), "unit": unit,
                "cooperating_units": cooperating,
                "description": _text(str(t["description"]), f"tasks[{i}].description", 2000),
                "deadline": deadline.isoformat(),
            })
        self.trigger_event(
            self.ResolutionAdopted, timestamp=now, event_id=resolution_id, agency=lead,
            occurred_on=local_date(now).isoformat(), resolution_id=resolution_id, seq=seq,
            text=_text(text, "text"), agenda_item_ids=list(agenda_item_ids), tasks=specs,
        )
        return resolution_id, specs


# -- tasks ---------------------------------------------------------------------------------

class Task(Aggregate):
    class TaskAssigned(RecordedCreated):
        task_id: str
        meeting_id: str
        resolution_id: str
        unit: str
        cooperating_units: list[str]
        description: str
        deadline: str
        assigned_by: str

    class TaskProgressReported(Recorded):
        task_id: str
        note: str
        percent: int

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "in_progress"

    class TaskCompleted(Recorded):
        task_id: str
        summary: str
        evidence: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "completed"
            aggregate.completed_on = self.occurred_on

    class TaskVerified(Recorded):
        task_id: str
        note: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "verified"

    class TaskRejected(Recorded):
        task_id: str
        reason: str
        new_deadline: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "reopened"
            aggregate.deadline = self.new_deadline
            aggregate.completed_on = None

    class TaskDeadlineExtended(Recorded):
        task_id: str
        reason: str
        old_deadline: str
        new_deadline: str

        def apply(self, aggregate: Any) -> None:
            aggregate.deadline = self.new_deadline
            aggregate.extensions += 1

    class TaskOverdue(Recorded):
        task_id: str
        unit: str
        deadline: str
        days_overdue: int

        def apply(self, aggregate: Any) -> None:
            aggregate.steps_taken.add((self.deadline, 0))

    class TaskEscalated(Recorded):
        task_id: str
        unit: str
        deadline: str
        level: int
        name: str
        days_overdue: int
        due_on: str
        rules_version: int

        def apply(self, aggregate: Any) -> None:
            aggregate.steps_taken.add((self.deadline, self.level))

    def __init__(
        self, event_id: str, agency: str, occurred_on: str, task_id: str, meeting_id: str,
        resolution_id: str, unit: str, cooperating_units: list[str], description: str, deadline: str,
        assigned_by: str,
    ) -> None:
        self.unit = unit
        self.cooperating_units = list(cooperating_units)
        self.deadline = deadline
        self.assigned_by = assigned_by
        self.status = "assigned"
        self.completed_on: str | None = None
        self.extensions = 0
        # (deadline, level) steps already taken; level 0 is "overdue" (as for rectifications).
        self.steps_taken: set[tuple[str, int]] = set()

    @classmethod
    def assign(cls, *, spec: TaskSpec, meeting_id: str, resolution_id: str, lead: str, now: datetime) -> Task:
        tid = uuid.UUID(spec["task_id"])
        return cls._create(
            cls.TaskAssigned, id=tid, timestamp=now, event_id=spec["task_id"], agency=spec["unit"],
            occurred_on=local_date(now).isoformat(), task_id=spec["task_id"], meeting_id=meeting_id,
            resolution_id=resolution_id, unit=spec["unit"], cooperating_units=list(spec["cooperating_units"]),
            description=spec["description"], deadline=spec["deadline"], assigned_by=lead,
        )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    def _responsible(self, unit: str, *, cooperating_ok: bool) -> None:
        allowed = {self.unit, *self.cooperating_units} if cooperating_ok else {self.unit}
        if unit not in allowed:
            raise NotPermitted(f"{unit!r} is not responsible for this task")

    def _next_id(self, kind: str) -> str:
        return str(derive_id("task-event", str(self.id), kind, str(self.version + 1)))

    def report_progress(self, *, unit: str, note: str, percent: int, occurred_on: date, now: datetime) -> None:
        self._responsible(unit, cooperating_ok=True)
        if not self.is_open:
            raise InvariantViolated(f"the task is {self.status}; progress is reported on open tasks")
        if not 0 <= percent <= 100:
            raise InvariantViolated("percent must be between 0 and 100")
        if occurred_on > local_date(now):
            raise InvariantViolated(f"occurred_on {occurred_on.isoformat()} is in the future")
        self.trigger_event(
            self.TaskProgressReported, timestamp=now, event_id=self._next_id("progress"), agency=unit,
            occurred_on=occurred_on.isoformat(), task_id=str(self.id), note=_text(note, "note"), percent=percent,
        )

    def complete(
        self, *, unit: str, summary: str, evidence: Sequence[str], occurred_on: date, now: datetime,
    ) -> None:
        self._responsible(unit, cooperating_ok=False)
        if not self.is_open:
            raise InvariantViolated(f"the task is {self.status}; only an open task is completed")
        if occurred_on > local_date(now):
            raise InvariantViolated(f"occurred_on {occurred_on.isoformat()} is in the future")
        self.trigger_event(
            self.TaskCompleted, timestamp=now, event_id=self._next_id("completed"), agency=unit,
            occurred_on=occurred_on.isoformat(), task_id=str(self.id), summary=_text(summary, "summary"),
            evidence=list(evidence),
        )

    def verify(self, *, lead: str, is_lead: bool, note: str, now: datetime) -> None:
        if not is_lead:
            raise NotPermitted("only the lead unit verifies tasks")
        if self.status != "completed":
            raise InvariantViolated(f"the task is {self.status}; verification comes after completion")
        self.trigger_event(
            self.TaskVerified, timestamp=now, event_id=self._next_id("verified"), agency=lead,
            occurred_on=local_date(now).isoformat(), task_id=str(self.id), note=note.strip(),
        )

    def reject(self, *, lead: str, is_lead: bool, reason: str, new_deadline: date, now: datetime) -> None:
        if not is_lead:
            raise NotPermitted("only the lead unit rejects a completion")
        if self.status != "completed":
            raise InvariantViolated(f"the task is {self.status}; only a completed task is rejected")
        if new_deadline <= local_date(now):
            raise InvariantViolated("the new deadline must be in the future")
        self.trigger_event(
            self.TaskRejected, timestamp=now, event_id=self._next_id("rejected"), agency=lead,
            occurred_on=local_date(now).isoformat(), task_id=str(self.id), reason=_text(reason, "reason"),
            new_deadline=new_deadline.isoformat(),
        )

    def extend(
        self, *, lead: str, is_lead: bool, reason: str, new_deadline: date, max_extensions: int, now: datetime,
    ) -> None:
        if not is_lead:
            raise NotPermitted("only the lead unit extends a deadline")
        if not self.is_open:
            raise InvariantViolated(f"the task is {self.status}; only an open task is extended")
        if self.extensions >= max_extensions:
            raise InvariantViolated(f"the deadline was already extended {self.extensions} time(s), the maximum")
        if new_deadline.isoformat() <= self.deadline:
            raise InvariantViolated(f"the new deadline must be after the current one ({self.deadline})")
        self.trigger_event(
            self.TaskDeadlineExtended, timestamp=now, event_id=self._next_id("extended"), agency=lead,
            occurred_on=local_date(now).isoformat(), task_id=str(self.id), reason=_text(reason, "reason"),
            old_deadline=self.deadline, new_deadline=new_deadline.isoformat(),
        )

    def days_overdue(self, today: date) -> int:
        """Whole days past the deadline while the task is open; 0 otherwise."""
        return days_late(self.deadline, running=self.is_open, today=today)

    def escalation_level(self) -> int:
        return level_reached(self.steps_taken, self.deadline)

    def _step_id(self, level: int) -> str:
        return str(derive_id("task-step", str(self.id), self.deadline, str(level)))

    def _take(self, step: DueStep, now: datetime, rules_version: int) -> None:
        day = local_date(now).isoformat()
        if step.is_overdue_mark:
            self.trigger_event(
                self.TaskOverdue, timestamp=now, event_id=self._step_id(step.level), agency=self.unit,
                occurred_on=day, task_id=str(self.id), unit=self.unit, deadline=step.deadline,
                days_overdue=step.days_overdue,
            )
        else:
            self.trigger_event(
                self.TaskEscalated, timestamp=now, event_id=self._step_id(step.level), agency=self.unit,
                occurred_on=day, task_id=str(self.id), unit=self.unit, deadline=step.deadline,
                level=step.level, name=step.name, days_overdue=step.days_overdue, due_on=step.due_on,
                rules_version=rules_version,
            )

    def sweep(self, now: datetime, steps: Sequence[EscalationStep], rules_version: int = 1) -> int:
        """The scheduler's overdue step, with the rectifications' escalation rules: marks the
        task overdue once per deadline, then takes every escalation level now due and not yet
        taken. Returns how many events it emitted."""
        due = due_steps(deadline=self.deadline, running=self.is_open, steps_taken=self.steps_taken,
                        today=local_date(now), schedule=steps)
        for step in due:
            self._take(step, now, rules_version)
        return len(due)
