"""The scheduler's overdue and escalation step, one pure decision for every tracked item.

Rectifications and the tasks of meeting resolutions are tracked alike: once a running deadline
has passed, the item is marked overdue (level 0), then escalates level by level (督办 → 通报 →
纳入考核) as the rules' days overdue are reached. Each (deadline, level) happens at most once,
so the item remembers the steps it took; a new deadline (an extension, a reopening) starts over.

This module decides which steps are due; each aggregate turns them into its own events.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

OVERDUE_LEVEL = 0

# (deadline, level) pairs an item has already taken; level 0 is the overdue mark.
StepsTaken = Collection[tuple[str, int]]


@dataclass(frozen=True)
class EscalationStep:
    """One rung of the escalation schedule: ``level`` falls due ``days_overdue`` days after the
    deadline."""

    level: int
    name: str
    days_overdue: int


@dataclass(frozen=True)
class DueStep:
    """A step the scheduler takes now for the deadline in force."""

    level: int  # OVERDUE_LEVEL marks the item overdue; 1..n escalate
    name: str  # the schedule's name of the level ("" for the overdue mark)
    deadline: str
    days_overdue: int  # how many whole days late the item is today
    due_on: str  # the day the step fell due: the deadline plus the step's days overdue

    @property
    def is_overdue_mark(self) -> bool:
        return self.level == OVERDUE_LEVEL


def days_late(deadline: str | None, *, running: bool, today: date) -> int:
    """Whole days past the deadline while its clock runs; 0 otherwise."""
    if not running or deadline is None:
        return 0
    return max(0, (today - date.fromisoformat(deadline)).days)


def level_reached(steps_taken: StepsTaken, deadline: str | None) -> int:
    """The highest escalation level taken for the deadline now in force (0 for none)."""
    return max((level for d, level in steps_taken if d == deadline), default=OVERDUE_LEVEL)


def every_step_taken(steps_taken: StepsTaken, deadline: str | None, schedule: Sequence[EscalationStep]) -> bool:
    """Whether the overdue mark and every level of ``schedule`` were taken for ``deadline``:
    no sweep can take anything more until the deadline changes (a step is taken once)."""
    return (deadline is not None and (deadline, OVERDUE_LEVEL) in steps_taken
            and all((deadline, step.level) in steps_taken for step in schedule))


def due_steps(
    *, deadline: str | None, running: bool, steps_taken: StepsTaken, today: date,
    schedule: Sequence[EscalationStep],
) -> list[DueStep]:
    """Every step due on ``today`` and not yet taken for ``deadline``, in the order to take them:
    the overdue mark first, then escalations by level (a sweep that missed days catches up step
    by step). Nothing is due while the clock is stopped (completed, closed) or the deadline has
    not passed."""
    days = days_late(deadline, running=running, today=today)
    if days < 1 or deadline is None:
        return []
    end = date.fromisoformat(deadline)
    due = []
    if (deadline, OVERDUE_LEVEL) not in steps_taken:
        due.append(DueStep(OVERDUE_LEVEL, "", deadline, days, (end + timedelta(days=1)).isoformat()))
    for step in sorted(schedule, key=lambda s: s.level):
        if days >= step.days_overdue and (deadline, step.level) not in steps_taken:
            due.append(DueStep(step.level, step.name, deadline, days,
                               (end + timedelta(days=step.days_overdue)).isoformat()))
    return due
