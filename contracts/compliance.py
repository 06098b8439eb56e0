"""The compliance calendar (台账日历): periodic records each school must have on file,
the recognitions a school can hold, and how the non-recognition targets are measured.

Also the period arithmetic the calendar needs: a cadence names its periods by label
(``2025-03``, ``2025-Q1``, ``2025-S1``, ``2025``, ``2025-2026`` for a school year), and every
label has a first day, a last day and a due day.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from contracts.catalogue import CATALOGUE_DIR, Catalogue, CatalogueError, _Strict, default_catalogue, load_file

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*$", max_length=60)]
Cadence = Literal["monthly", "quarterly", "semester", "yearly", "school-year"]
CADENCES: tuple[str, ...] = ("monthly", "quarterly", "semester", "yearly", "school-year")
SchoolFlag = Literal["all", "canteen", "boarding", "school_bus"]
SchoolKind = Literal["kindergarten", "primary", "junior", "senior", "vocational"]
Severity = Literal["general", "major", "critical"]


class HazardRule(_Strict):
    category: Slug
    severity: Severity = "general"


class MeasureRule(_Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
    text: str = Field(min_length=1)
    min: float
    max: float

    @model_validator(mode="after")
    def _bounds(self) -> MeasureRule:
        if self.min > self.max:
            raise ValueError(f"measure {self.name}: min {self.min} is above max {self.max}")
        return self


class ComplianceKind(_Strict):
    code: Slug
    name: str = Field(min_length=1)
    text: str = Field(min_length=1)
    source: str = Field(min_length=1)
    cadence: Cadence
    due_after_start_days: int | None = Field(default=None, ge=0, le=366)
    grace_days: int = Field(ge=0, le=120)
    applies_to: SchoolFlag
    school_kinds: tuple[SchoolKind, ...] | None = None
    responsible: Slug
    loggers: tuple[Slug, ...] = Field(min_length=1)
    evidence_required: bool
    measure: MeasureRule | None = None
    opens_hazard: HazardRule | None = None

    def applies(self, *, kind: str, canteen: bool, boarding: bool, school_bus: bool) -> bool:
        """Whether a school with these attributes owes this record."""
        if self.school_kinds is not None and kind not in self.school_kinds:
            return False
        flags = {"all": True, "canteen": canteen, "boarding": boarding, "school_bus": school_bus}
        return flags[self.applies_to]

    def due_on(self, label: str) -> date:
        start, end = period_bounds(self.cadence, label)
        if self.due_after_start_days is None:
            return end
        return min(end, start + timedelta(days=self.due_after_start_days))

    def missing_after(self, label: str) -> date:
        """The last day of grace: a record still absent the day after is missing."""
        return self.due_on(label) + timedelta(days=self.grace_days)


class RecognitionKind(_Strict):
    code: Slug
    name: str = Field(min_length=1)
    source: str = Field(min_length=1)
    applies_to: SchoolFlag


class TargetMeasure(_Strict):
    compliance_kind: Slug | None = None
    recognition: Slug | None = None
    petitions: Literal["handling_rate", "satisfaction_rate"] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetMeasure:
        given = [f for f in ("compliance_kind", "recognition", "petitions") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a target measure names exactly one of compliance_kind, recognition, petitions; got {given}"
            )
        return self


class ComplianceCalendar(_Strict):
    version: int
    effective_from: date
    new_school_days: int = Field(ge=0, le=366)
    kinds: tuple[ComplianceKind, ...] = Field(min_length=1)
    recognitions: tuple[RecognitionKind, ...] = Field(min_length=1)
    target_measures: dict[Slug, TargetMeasure]

    @model_validator(mode="after")
    def _unique(self) -> ComplianceCalendar:
        for name, codes in (("kinds", [k.code for k in self.kinds]),
                            ("recognitions", [r.code for r in self.recognitions])):
            dupes = sorted({c for c in codes if codes.count(c) > 1})
            if dupes:
                raise ValueError(f"{name}: codes listed twice: {dupes}")
        kinds = {k.code for k in self.kinds}
        recognitions = {r.code for r in self.recognitions}
        for target, m in self.target_measures.items():
            if m.compliance_kind is not None and m.compliance_kind not in kinds:
                raise ValueError(f"target_measures.{target}: unknown compliance kind {m.compliance_kind!r}")
            if m.recognition is not None and m.recognition not in recognitions:
                raise ValueError(f"target_measures.{target}: unknown recognition {m.recognition!r}")
        return self

    def kind(self, code: str) -> ComplianceKind:
        for k in self.kinds:
            if k.code == code:
                return k
        raise KeyError(code)

    def recognition(self, code: str) -> RecognitionKind:
        for r in self.recognitions:
            if r.code == code:
                return r
        raise KeyError(code)

    @property
    def hazard_kinds(self) -> tuple[str, ...]:
        return tuple(k.code for k in self.kinds if k.opens_hazard is not None)

    def check_against(self, catalogue: Catalogue) -> None:
        """Cross-references to the catalogue: units, hazard categories, targets."""
        units = {u.code for u in catalogue.units.units}
        categories = {c.code for c in catalogue.hazards.categories}
        targets = {t.code: t for t in catalogue.targets.targets}
        recognitions = {r.code for r in self.recognitions}
        for i, k in enumerate(self.kinds):
            for u in (k.responsible, *k.loggers):
                if u not in units:
                    raise CatalogueError(f"compliance_calendar.yaml: kinds[{i}] ({k.code}): unknown unit {u!r}")
            if k.opens_hazard is not None and k.opens_hazard.category not in categories:
                raise CatalogueError(
                    f"compliance_calendar.yaml: kinds[{i}] ({k.code}).opens_hazard: "
                    f"unknown hazard category {k.opens_hazard.category!r}"
                )
        for code in self.target_measures:
            if code not in targets:
                raise CatalogueError(f"compliance_calendar.yaml: target_measures: unknown target {code!r}")
        for t in catalogue.targets.targets:
            if t.recognition is not None and t.recognition not in recognitions:
                raise CatalogueError(f"targets.yaml: {t.code}: recognition {t.recognition!r} is not "
                                     "among compliance_calendar.yaml recognitions")


def load_calendar(directory: Path = CATALOGUE_DIR, catalogue: Catalogue | None = None) -> ComplianceCalendar:
    calendar: ComplianceCalendar = load_file(directory / "compliance_calendar.yaml", ComplianceCalendar)
    calendar.check_against(catalogue or default_catalogue())
    return calendar


@cache
def default_calendar() -> ComplianceCalendar:
    return load_calendar()


# -- periods ---------------------------------------------------------------------------------

_LABELS: dict[str, re.Pattern[str]] = {
    "monthly": re.compile(r"^(?P<y>\d{4})-(?P<n>0[1-9]|1[0-2])$"),
    "quarterly": re.compile(r"^(?P<y>\d{4})-Q(?P<n>[1-4])$"),
    "semester": re.compile(r"^(?P<y>\d{4})-S(?P<n>[12])$"),
    "yearly": re.compile(r"^(?P<y>\d{4})$"),
    "school-year": re.compile(r"^(?P<y>\d{4})-(?P<n>\d{4})$"),
}
_EXAMPLES = {"monthly": "YYYY-MM", "quarterly": "YYYY-Q1..Q4", "semester": "YYYY-S1|S2",
             "yearly": "YYYY", "school-year": "YYYY-YYYY (e.g. 2025-2026)"}


class PeriodError(ValueError):
    """A period label that does not fit its cadence."""


def _month_end(year: int, month: int) -> date:
    return date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)


def period_bounds(cadence: str, label: str) -> tuple[date, date]:
    """(first day, last day) of a period label; raises PeriodError for a label that does
    not fit the cadence."""
    pattern = _LABELS.get(cadence)
    if pattern is None:
        raise PeriodError(f"unknown cadence {cadence!r}")
    m = pattern.match(label)
    if m is None:
        raise PeriodError(f"period {label!r} does not fit a {cadence} record ({_EXAMPLES[cadence]})")
    y = int(m["y"])
    # The school year 1999-2000 still overlaps the calendar year 2000.
    if not (1999 if cadence == "school-year" else 2000) <= y <= 2100:
        raise PeriodError(f"period {label!r}: year must be between 2000 and 2100")
    if cadence == "monthly":
        n = int(m["n"])
        return date(y, n, 1), _month_end(y, n)
    if cadence == "quarterly":
        first = 3 * int(m["n"]) - 2
        return date(y, first, 1), _month_end(y, first + 2)
    if cadence == "semester":
        first = 1 if m["n"] == "1" else 7
        return date(y, first, 1), _month_end(y, first + 5)
    if cadence == "yearly":
        return date(y, 1, 1), date(y, 12, 31)
    if int(m["n"]) != y + 1:
        raise PeriodError(f"school year {label!r} must span two consecutive years, e.g. {y}-{y + 1}")
    return date(y, 9, 1), date(y + 1, 8, 31)


def period_of(cadence: str, day: date) -> str:
    """The label of the period that contains ``day``."""
    y, m = day.year, day.month
    if cadence == "monthly":
        return f"{y:04d}-{m:02d}"
    if cadence == "quarterly":
        return f"{y:04d}-Q{(m - 1) // 3 + 1}"
    if cadence == "semester":
        return f"{y:04d}-S{1 if m <= 6 else 2}"
    if cadence == "yearly":
        return f"{y:04d}"
    if cadence == "school-year":
        first = y if m >= 9 else y - 1
        return f"{first:04d}-{first + 1:04d}"
    raise PeriodError(f"unknown cadence {cadence!r}")


def periods_overlapping(cadence: str, first: date, last: date) -> list[str]:
    """Labels of every period that overlaps [first, last], in order."""
    out: list[str] = []
    day = first
    while day <= last:
        label = period_of(cadence, day)
        out.append(label)
        day = period_bounds(cadence, label)[1] + timedelta(days=1)
    return out

