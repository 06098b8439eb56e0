"""A scored line and the scorer registry of the review (a rule's ``measure`` names its scorer):
scoring.py holds the 2025 measures and the scoring itself, rated.py the load-aware deductions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from contracts.rules import Rule, RuleSet
from services.reviews.facts import Facts


@dataclass
class Line:
    unit: str
    clause: str
    item: str
    points: float  # credit earned, or deduction taken (a positive number)
    label: str
    detail: dict[str, Any] = field(default_factory=dict)
    event_ids: list[str] = field(default_factory=list)
    event_count: int | None = None
    # For a credit line of the load-aware rules: the most it can give (None: the clause's
    # points, the 2025 rules). ``na`` says why the line (or, alone, the clause) is 不适用.
    weight: float | None = None
    na: str | None = None


def not_applicable(unit: str, rule: Rule, reason: str, item: str = "clause") -> Line:
    return Line(unit, rule.clause, item, 0.0, reason, weight=0.0, na=reason)


def nothing_to_measure(unit: str, rule: Rule, when_none: str, item: str, *, na_reason: str, label: str) -> Line:
    """A clause with nothing to measure for a unit: 不适用 under the load-aware rules; under the
    rules written before them (``when_none`` full or zero) the line they always gave, same text."""
    if when_none == "not_applicable":
        return not_applicable(unit, rule, na_reason)
    return Line(unit, rule.clause, item, rule.points if when_none == "full" else 0.0, label, {})


# (rule, facts, the units the rule applies to, the whole rule set) -> lines
Scorer = Callable[[Rule, Facts, list[str], RuleSet], list[Line]]
SCORERS: dict[str, Scorer] = {}


def scorer(measure: str) -> Callable[[Scorer], Scorer]:
    def register(fn: Scorer) -> Scorer:
        SCORERS[measure] = fn
        return fn
    return register


def flagged_backdated(rules: RuleSet, f: Facts) -> list[tuple[str, str, str, str, str, int]]:
    types = set(rules.backdated.types)
    grace = rules.backdated.grace_days
    return [b for b in f.backdated if b[2] in types and b[5] > grace]


