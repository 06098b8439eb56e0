"""The one overdue/escalation decision both rectifications and meeting tasks take: given a
deadline, whether its clock runs, the steps taken and today, which steps are due, in order."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from contracts.escalation import default_escalation_rules
from events.escalation import (
    OVERDUE_LEVEL,
    DueStep,
    EscalationStep,
    days_late,
    due_steps,
    every_step_taken,
    level_reached,
)
from events.meetings import Task
from events.rectifications import Rectification

SCHEDULE = (EscalationStep(1, "督办", 1), EscalationStep(2, "通报", 15), EscalationStep(3, "纳入考核", 30))
DEADLINE = "2025-04-10"


def due(today: date, *, taken: set[tuple[str, int]] | None = None, running: bool = True,
        deadline: str | None = DEADLINE) -> list[DueStep]:
    return due_steps(deadline=deadline, running=running, steps_taken=taken or set(), today=today,
                     schedule=SCHEDULE)


def test_nothing_is_due_on_or_before_the_deadline() -> None:
    assert due(date(2025, 4, 1)) == []
    assert due(date(2025, 4, 10)) == []


def test_first_late_day_marks_overdue_then_takes_the_first_level() -> None:
    assert due(date(2025, 4, 11)) == [
        DueStep(OVERDUE_LEVEL, "", DEADLINE, 1, "2025-04-11"),
        DueStep(1, "督办", DEADLINE, 1, "2025-04-11"),
    ]


def test_a_late_sweep_catches_up_every_level_in_order_with_the_day_each_fell_due() -> None:
    steps = due(date(2025, 5, 20))
    assert [s.level for s in steps] == [0, 1, 2, 3]
    assert [s.due_on for s in steps] == ["2025-04-11", "2025-04-11", "2025-04-25", "2025-05-10"]
    assert {s.days_overdue for s in steps} == {40}


def test_the_schedule_is_taken_by_level_whatever_order_it_comes_in() -> None:
    shuffled = due_steps(deadline=DEADLINE, running=True, steps_taken=set(), today=date(2025, 5, 20),
                         schedule=tuple(reversed(SCHEDULE)))
    assert [s.level for s in shuffled] == [0, 1, 2, 3]


def test_steps_taken_for_this_deadline_are_not_due_again() -> None:
    taken = {(DEADLINE, 0), (DEADLINE, 1)}
    assert [s.level for s in due(date(2025, 4, 26), taken=taken)] == [2]
    assert due(date(2025, 4, 26), taken=taken | {(DEADLINE, 2)}) == []


def test_a_new_deadline_starts_over() -> None:
    taken = {(DEADLINE, 0), (DEADLINE, 1), (DEADLINE, 2)}
    assert [s.level for s in due(date(2025, 6, 2), taken=taken, deadline="2025-06-01")] == [0, 1]


@pytest.mark.parametrize("deadline, running", [(DEADLINE, False), (None, True)])
def test_a_stopped_clock_or_no_deadline_has_nothing_due(deadline: str | None, running: bool) -> None:
    assert due(date(2025, 12, 31), running=running, deadline=deadline) == []


def test_every_step_taken_means_no_sweep_takes_more_until_the_deadline_changes() -> None:
    """What lets the demo's daily sweeps pass an exhausted item by (services/demo/hazards.py)."""
    all_taken = {(DEADLINE, OVERDUE_LEVEL), *((DEADLINE, s.level) for s in SCHEDULE)}
    assert every_step_taken(all_taken, DEADLINE, SCHEDULE)
    assert due(date(2026, 1, 1), taken=all_taken) == []  # agrees with due_steps, whatever the day
    for missing in sorted(all_taken):
        assert not every_step_taken(all_taken - {missing}, DEADLINE, SCHEDULE)
        assert due(date(2026, 1, 1), taken=all_taken - {missing}) != []
    assert not every_step_taken(all_taken, "2025-05-01", SCHEDULE)  # an extended deadline starts over
    assert not every_step_taken(all_taken, None, SCHEDULE)


def test_days_late_and_level_reached() -> None:
    assert days_late(DEADLINE, running=True, today=date(2025, 4, 1)) == 0
    assert days_late(DEADLINE, running=True, today=date(2025, 4, 13)) == 3
    assert days_late(DEADLINE, running=False, today=date(2025, 4, 13)) == 0
    assert days_late(None, running=True, today=date(2025, 4, 13)) == 0
    taken = {(DEADLINE, 0), (DEADLINE, 2), ("2025-03-01", 3)}
    assert level_reached(taken, DEADLINE) == 2
    assert level_reached(taken, "2025-06-01") == 0


def test_the_rules_file_feeds_the_schedule() -> None:
    rules = default_escalation_rules()
    assert all(isinstance(s, EscalationStep) for s in rules.domain_steps())
    assert [s.level for s in rules.domain_steps()] == list(range(1, len(rules.steps) + 1))


def test_both_aggregates_sweep_with_the_same_arguments_in_the_same_order() -> None:
    def params(method: Callable[..., Any]) -> list[tuple[str, Any]]:
        return [(p.name, p.kind) for p in inspect.signature(method).parameters.values()]

    assert params(Rectification.sweep) == params(Task.sweep)
    assert [name for name, _ in params(Task.sweep)] == ["self", "now", "steps", "rules_version"]
