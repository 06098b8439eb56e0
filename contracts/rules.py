"""Scoring rules of the annual accountability review (年度考核细则), as versioned data.

A rules file lives in contracts/rules/ as ``<id>.v<version>.yaml``. Each rule has a clause
id, its Chinese text, the ``measure`` it scores (a scorer in services/review.py is keyed by
that name), its ``points``, and the measure's ``params``. For a credit measure ``points`` is
the most the clause can give; for a deduction measure it is the most it can take away
(each item's points are in ``params``).

Loading validates everything; a malformed file raises ``RulesError`` naming the file, the
clause and the field, in one line.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts.typography import full_width

RULES_DIR = Path(__file__).parent / "rules"
DEFAULT_RULES = "review-2025.v1"

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*$", max_length=60)]
ClauseId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z][0-9A-Za-z.\-]{0,19}$")]
UnitCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*$", max_length=60)]
Points = Annotated[float, Field(ge=0, le=1000)]


class RulesError(ValueError):
    """A rules file is missing or malformed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- params of each measure ------------------------------------------------------------------


class DutyTarget(_Strict):
    # Share of the applicable schools to cover for full credit; 0: one record is enough.
    target: float = Field(ge=0, le=1)


class DutyCoverageParams(_Strict):
    """履职覆盖: per duty in force, the share of applicable schools its records covered,
    against a target; a duty that concerns no school counts when performed at all."""

    coverage_target: float = Field(default=0.8, gt=0, le=1)
    by_duty: dict[str, DutyTarget] = Field(default_factory=dict)
    # "evidence": a duty earns only with records behind it; a duty that concerns no school or is
    # performed on demand (target 0) cannot be measured by coverage and is 不适用, unless it has
    # no record at all, which is a 盲区 (0 of its share). "legacy": the 2025 rules.
    method: Literal["legacy", "evidence"] = "legacy"


class PerItemParams(_Strict):
    per_item: float = Field(gt=0, le=1000)


# What a clause gives a unit with nothing to measure: full marks and zero are the 2025 rules'
# choices; "not_applicable" (不适用) takes the clause out of the unit's score, which is then
# rescaled over the clauses that apply.
WhenNone = Literal["full", "zero", "not_applicable"]


class OnTimeParams(_Strict):
    """Credit in proportion to items closed on time; ``when_none`` decides a unit that had
    nothing to close. ``count: due`` (load-aware) divides by every item of the unit that fell
    due by the cut-off day, closed or not, instead of by the items closed."""

    when_none: WhenNone = "full"
    count: Literal["closed", "due"] = "closed"


class OverdueParams(_Strict):
    per_item: float = Field(gt=0, le=1000)
    kinds: tuple[Literal["rectification", "task"], ...] = Field(default=("rectification", "task"), min_length=1)


class EscalationParams(_Strict):
    """Points per escalation step, by level (1 督办, 2 通报, 3 纳入考核); unlisted levels do not count."""

    level_points: dict[int, Annotated[float, Field(gt=0, le=1000)]] = Field(min_length=1)
    kinds: tuple[Literal["rectification", "task"], ...] = Field(default=("rectification", "task"), min_length=1)


class WarningParams(_Strict):
    """预警响应: a unit asked to acknowledge a warning does so within ``within_hours``."""

    within_hours: float = Field(gt=0, le=24 * 30)
    late_points: float = Field(ge=0, le=1000)
    missing_points: float = Field(ge=0, le=1000)


class CampaignParams(_Strict):
    """专项整治 phases done by their deadlines: the lead's schools self-check (自查) by the first
    phase's deadline; each inspecting unit takes part in a joint inspection (联合督查) of each
    later phase by that phase's deadline."""

    when_none: WhenNone = "full"
    self_check_share: float = Field(default=0.9, gt=0, le=1)


class TargetMeasureSpec(_Strict):
    recognition: Slug | None = None
    compliance_kind: Slug | None = None
    applies_to: Literal["all", "canteen", "boarding", "school_bus"] = "all"
    petitions: Literal["handling_rate"] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetMeasureSpec:
        given = [x for x in (self.recognition, self.compliance_kind, self.petitions) if x is not None]
        if len(given) != 1:
            raise ValueError("name exactly one of recognition, compliance_kind, petitions")
        return self


class TargetsParams(_Strict):
    """后勤目标 (seed 000): the county targets set for the year, measured at year end."""

    targets: dict[Slug, TargetMeasureSpec] = Field(min_length=1)
    when_none: WhenNone = "zero"


class RateParams(_Strict):
    """A load-aware deduction: ``points`` × the share of the unit's own items that went wrong
    (escalated, acknowledged late or never, absent, backdated, missing). ``weights`` weigh the
    kinds of failure (e.g. late 0.5, missing 1); a unit with no items is 不适用."""

    weights: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    kinds: tuple[Literal["rectification", "task"], ...] = Field(default=("rectification", "task"), min_length=1)
    within_hours: float = Field(default=2, gt=0, le=24 * 30)


MEASURES: dict[str, tuple[Literal["credit", "deduction"], type[_Strict]]] = {
    "duty_coverage": ("credit", DutyCoverageParams),
    "blind_spots": ("deduction", PerItemParams),
    "rectification_on_time": ("credit", OnTimeParams),
    "task_on_time": ("credit", OnTimeParams),
    "overdue": ("deduction", OverdueParams),
    "escalations": ("deduction", EscalationParams),
    "warning_ack_latency": ("deduction", WarningParams),
    "campaign_phases": ("credit", CampaignParams),
    "logistics_targets": ("credit", TargetsParams),
    "meeting_attendance": ("deduction", PerItemParams),
    "backdated_reports": ("deduction", PerItemParams),
    "compliance_gaps": ("deduction", PerItemParams),
    # load-aware deductions (contracts/rules/review-2026.v1.yaml; services/reviews/rated.py)
    "escalation_rate": ("deduction", RateParams),
    "warning_ack_rate": ("deduction", RateParams),
    "meeting_absence_rate": ("deduction", RateParams),
    "backdated_rate": ("deduction", RateParams),
    "compliance_gap_rate": ("deduction", RateParams),
}


class Rule(_Strict):
    clause: ClauseId
    text: str = Field(min_length=1, max_length=2000)
    measure: str
    points: Points
    units: tuple[UnitCode, ...] | None = None  # only these units; default every unit
    source: str | None = None
    params: Any = None

    @field_validator("text")
    @classmethod
    def _official_text(cls, value: str) -> str:
        """Rules files are typed by hand; the review prints their text with full-width punctuation."""
        return full_width(value)

    @field_validator("measure")
    @classmethod
    def _known_measure(cls, value: str) -> str:
        if value not in MEASURES:
            raise ValueError(f"unknown measure {value!r}; known: {', '.join(sorted(MEASURES))}")
        return value

    @property
    def kind(self) -> Literal["credit", "deduction"]:
        return MEASURES[self.measure][0]


class Backdated(_Strict):
    """补录: entries recorded more than ``grace_days`` after the day they say they happened."""

    grace_days: int = Field(ge=0, le=366)
    types: tuple[Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z]+$")], ...] = Field(min_length=1)


class RuleSet(_Strict):
    id: Slug
    version: int = Field(ge=1)
    title: str = Field(min_length=1)
    source: str | None = None
    backdated: Backdated
    # Credits are put on this scale: scale × earned / what the unit's credit clauses can give.
    scale: float = Field(default=100, gt=0, le=10_000)
    # Credit lines list at most this many event ids (with the full count); deductions list all.
    evidence_limit: int = Field(default=50, ge=1, le=100_000)
    rules: tuple[Rule, ...] = Field(min_length=1)
    # The years these rules are written for; a file without the field is for the year in its id
    # (review-2025 → 2025). Reviewing another year needs the rules named explicitly.
    years: tuple[Annotated[int, Field(ge=2000, le=2100)], ...] = ()
    # 数据不足: a unit whose applicable credit clauses can give fewer points than this is not
    # ranked (0: every unit is ranked, the 2025 rules).
    min_weight: float = Field(default=0, ge=0, le=10_000)
    # The one-page method (考核办法) printed with the review: its opening paragraphs.
    method: tuple[str, ...] = ()
    sha256: str = ""  # of the file's bytes, set by the loader

    @field_validator("title")
    @classmethod
    def _official_title(cls, value: str) -> str:
        return full_width(value)

    @field_validator("method")
    @classmethod
    def _official_method(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(full_width(p) for p in value)

    @property
    def for_years(self) -> tuple[int, ...]:
        if self.years:
            return self.years
        m = re.search(r"(?:^|-)(\d{4})(?:-|$)", self.id)
        return (int(m.group(1)),) if m else ()

    @property
    def name(self) -> str:
        return f"{self.id}.v{self.version}"

    def rule(self, clause: str) -> Rule:
        for r in self.rules:
            if r.clause == clause:
                return r
        raise KeyError(clause)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    field = _location(err["loc"]) or "(top level)"
    msg = re.sub(r"^Value error, ", "", err["msg"])
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{field}: {msg}{more}"


def parse_rules(raw: Any, where: str, digest: str = "") -> RuleSet:
    """Validates a parsed rules document. Errors name the clause and the field."""
    if not isinstance(raw, dict):
        raise RulesError(f"{where}: a rules file is a mapping with id, version, title, backdated and rules")
    items = raw.get("rules")
    if not isinstance(items, list) or not items:
        raise RulesError(f"{where}: rules: a non-empty list of rules is required")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        clause = item.get("clause") if isinstance(item, dict) else None
        label = f"rules[{i}] (clause {clause})" if clause is not None else f"rules[{i}]"
        try:
            rule = Rule.model_validate(item)
        except ValidationError as e:
            raise RulesError(f"{where}: {label}: {_first_error(e)}") from None
        if rule.clause in seen:
            raise RulesError(f"{where}: {label}: clause: {rule.clause!r} is listed twice")
        seen.add(rule.clause)
        _, model = MEASURES[rule.measure]
        try:
            params = model.model_validate(rule.params if rule.params is not None else {})
        except ValidationError as e:
            raise RulesError(f"{where}: {label}: params.{_first_error(e)}") from None
        rules.append(rule.model_copy(update={"params": params}))
    try:
        return RuleSet.model_validate({**raw, "rules": rules, "sha256": digest})
    except ValidationError as e:
        raise RulesError(f"{where}: {_first_error(e)}") from None


def load_rules(path: Path) -> RuleSet:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RulesError(f"{path}: file not found") from None
    except OSError as e:
        raise RulesError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RulesError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise RulesError(f"{path}:{line} not valid YAML: {getattr(e, 'problem', e)}") from None
    rules = parse_rules(raw, str(path), hashlib.sha256(data).hexdigest())
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if path.parent.resolve() == RULES_DIR.resolve() and stem != rules.name:
        raise RulesError(f"{path}: id and version say {rules.name!r}; name the file {rules.name}.yaml")
    return rules


def named_rules(name: str) -> RuleSet:
    """A rules file of contracts/rules/ by its name (``review-2025.v1``); never a path."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*\.v[0-9]+", name):
        raise RulesError(f"rules {name!r}: name a rules set like {DEFAULT_RULES!r}")
    path = RULES_DIR / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in RULES_DIR.glob("*.yaml")))
        raise RulesError(f"rules {name!r}: no such rules set (known: {known})")
    return load_rules(path)


def default_rules() -> RuleSet:
    return named_rules(DEFAULT_RULES)


def rules_for_year(year: int) -> RuleSet:
    """The rules in force for ``year``: the latest version of the rules files that declare it."""
    candidates = []
    for path in sorted(RULES_DIR.glob("*.yaml")):
        rules = load_rules(path)
        if year in rules.for_years:
            candidates.append(rules)
    if not candidates:
        raise RulesError(f"没有适用于{year}年度的考核细则；请用 --rules 指定细则")
    return max(candidates, key=lambda r: (r.version, r.id))
