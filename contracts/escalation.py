"""Escalation rules, as data in contracts/catalogue/:

- escalation.yaml: for overdue rectifications and tasks, 督办 → 通报 → 纳入考核 after so many days
  overdue, and how many deadline extensions are allowed;
- warning_escalation.yaml: for early warnings, who may issue them, who is asked by default, and
  per level the hours before an unacknowledged warning escalates and an acknowledgement counts
  as slow.

Write-side use cases and read models both read these, so they live here and not in either.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from pathlib import Path

from pydantic import Field, model_validator

from contracts.catalogue import CATALOGUE_DIR, Slug, _Strict, load_file
from events.escalation import EscalationStep
from events.warnings import WARNING_LEVELS

ESCALATION_FILE = CATALOGUE_DIR / "escalation.yaml"
WARNING_RULES_FILE = CATALOGUE_DIR / "warning_escalation.yaml"


class StepRule(_Strict):
    level: int = Field(ge=1, le=9)
    code: Slug
    name: str = Field(min_length=1, max_length=40)
    days_overdue: int = Field(ge=1, le=3650)


class EscalationRules(_Strict):
    version: int = Field(ge=1)
    max_extensions: int = Field(default=2, ge=0, le=20)
    steps: tuple[StepRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _levels_in_order(self) -> EscalationRules:
        for i, step in enumerate(self.steps):
            if step.level != i + 1:
                raise ValueError(f"steps[{i}].level must be {i + 1} (levels run 1..n in order)")
            if i and step.days_overdue <= self.steps[i - 1].days_overdue:
                raise ValueError(f"steps[{i}].days_overdue must be larger than the previous step's")
        return self

    def domain_steps(self) -> tuple[EscalationStep, ...]:
        return tuple(EscalationStep(level=s.level, name=s.name, days_overdue=s.days_overdue) for s in self.steps)

    def level_due(self, days_overdue: int) -> int:
        """The highest level due after ``days_overdue`` days (0 when none is)."""
        return max((s.level for s in self.steps if days_overdue >= s.days_overdue), default=0)

    def name_of(self, level: int) -> str | None:
        return next((s.name for s in self.steps if s.level == level), None)


def load_escalation_rules(path: Path = ESCALATION_FILE) -> EscalationRules:
    """Raises CatalogueError (one line naming file and field) when the file is malformed."""
    rules: EscalationRules = load_file(path, EscalationRules)
    return rules


@cache
def default_escalation_rules() -> EscalationRules:
    return load_escalation_rules()


class LevelRule(_Strict):
    name: str = Field(min_length=1)
    escalate_after_hours: float = Field(gt=0, le=24 * 30)
    slow_after_hours: float = Field(gt=0, le=24 * 30)


class WarningRules(_Strict):
    version: int = Field(ge=1)
    issuing_duties: tuple[str, ...] = Field(min_length=1)
    default_units: tuple[Slug, ...] = ()
    levels: dict[str, LevelRule]

    @model_validator(mode="after")
    def _every_level(self) -> WarningRules:
        if sorted(self.levels) != sorted(WARNING_LEVELS):
            raise ValueError(f"levels must be exactly {', '.join(WARNING_LEVELS)}")
        return self

    def escalate_after(self, level: str) -> timedelta:
        return timedelta(hours=self.levels[level].escalate_after_hours)

    def slow_after(self, level: str) -> timedelta:
        return timedelta(hours=self.levels[level].slow_after_hours)


def load_warning_rules(path: Path = WARNING_RULES_FILE) -> WarningRules:
    rules: WarningRules = load_file(path, WarningRules)
    return rules


@cache
def default_warning_rules() -> WarningRules:
    return load_warning_rules()
