"""The catalogue taken from the seed documents: member units and duties, campaign
templates, annual targets, hazard categories. Files live beside this module as YAML.

Loading validates every file; a malformed one raises CatalogueError whose message names
the file and the field, in one line.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from contracts.typography import official_text

CATALOGUE_DIR = Path(__file__).parent / "catalogue"

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*$", max_length=60)]
DutyCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$", max_length=120)]
MonthDay = Annotated[str, StringConstraints(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
Cadence = Literal["weekly", "monthly", "quarterly", "semester", "yearly", "rainy-season", "on-demand"]
AppliesTo = Literal["all", "canteen", "boarding", "school_bus", "none"]


class CatalogueError(ValueError):
    """A catalogue file is missing or malformed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SeedText(_Strict):
    """A passage quoted from a seed: ``text_verbatim`` as the seed has it (the YAML holds only
    that), ``text`` as people read it (contracts/typography.py official_text)."""

    text_verbatim: str = Field(min_length=1)
    text: str = ""

    @model_validator(mode="before")
    @classmethod
    def _display_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and "text_verbatim" in data:
            if "text" in data:
                raise ValueError("text is derived from text_verbatim; give only text_verbatim")
            return {**data, "text": official_text(str(data["text_verbatim"]))}
        return data


class DutyItem(_SeedText):
    code: DutyCode
    applies_to: AppliesTo
    cadence: Cadence
    source: str | None = None


class Unit(_Strict):
    code: Slug
    name: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    lead: bool = False
    duties: tuple[DutyItem, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _duty_codes_belong_to_unit(self) -> Unit:
        for i, duty in enumerate(self.duties):
            if not duty.code.startswith(self.code + "."):
                raise ValueError(f"duties[{i}].code {duty.code!r} must start with '{self.code}.'")
        return self


class UnitsFile(_Strict):
    version: int
    source: str
    units: tuple[Unit, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_lead_and_unique_codes(self) -> UnitsFile:
        leads = [u.code for u in self.units if u.lead]
        if len(leads) != 1:
            raise ValueError(f"exactly one unit must be lead, found {leads}")
        codes = [u.code for u in self.units]
        dupes = {c for c in codes if codes.count(c) > 1}
        if dupes:
            raise ValueError(f"unit codes listed twice: {sorted(dupes)}")
        duty_codes = [d.code for u in self.units for d in u.duties]
        dupes = {c for c in duty_codes if duty_codes.count(c) > 1}
        if dupes:
            raise ValueError(f"duty codes listed twice: {sorted(dupes)}")
        return self


class Aspect(_SeedText):
    code: Slug


class Phase(_Strict):
    code: Slug
    name: str = Field(min_length=1)
    starts: MonthDay
    ends: MonthDay


class CampaignTemplate(_Strict):
    code: Slug
    name: str
    name_en: str
    hazard_category: Slug
    inspecting_units: tuple[Slug, ...] = Field(min_length=1)
    aspects: tuple[Aspect, ...] = Field(min_length=5, max_length=5)
    phases: tuple[Phase, ...] = Field(min_length=3, max_length=3)


class CampaignsFile(_Strict):
    version: int
    source: str
    campaigns: tuple[CampaignTemplate, ...] = Field(min_length=1)


class Target(_SeedText):
    code: Slug
    measure: Literal["share", "count"]
    # None: the seed asks for improvement without a level (e.g. 提高信访件办结率).
    value: float | None = Field(default=None, ge=0)
    direction: Literal["increase"] | None = None
    recognition: Slug | None = None
    source: str | None = None


class TargetsFile(_Strict):
    version: int
    source: str
    targets: tuple[Target, ...] = Field(min_length=1)


class NamedCode(_Strict):
    code: Slug
    name: str
    source: str | None = None


class HazardCategoriesFile(_Strict):
    version: int
    categories: tuple[NamedCode, ...] = Field(min_length=1)
    severities: tuple[NamedCode, ...] = Field(min_length=1)


class Catalogue(_Strict):
    units: UnitsFile
    campaigns: CampaignsFile
    targets: TargetsFile
    hazards: HazardCategoriesFile

    @property
    def lead(self) -> Unit:
        return next(u for u in self.units.units if u.lead)

    def unit(self, code: str) -> Unit:
        for u in self.units.units:
            if u.code == code:
                return u
        raise KeyError(code)

    @model_validator(mode="after")
    def _cross_references(self) -> Catalogue:
        unit_codes = {u.code for u in self.units.units}
        categories = {c.code for c in self.hazards.categories}
        for i, c in enumerate(self.campaigns.campaigns):
            for u in c.inspecting_units:
                if u not in unit_codes:
                    raise ValueError(f"campaigns.yaml: campaigns[{i}].inspecting_units: unknown unit {u!r}")
            if c.hazard_category not in categories:
                raise ValueError(
                    f"campaigns.yaml: campaigns[{i}].hazard_category: unknown category {c.hazard_category!r}"
                )
        return self


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# libyaml's loader where built in: the same documents, parsed ~10x faster (the catalogue and
# calendar are loaded at the start of every CLI command and rebuild).
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_file(path: Path, model: type[_Strict]) -> Any:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)
    except FileNotFoundError:
        raise CatalogueError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise CatalogueError(f"{path}:{where} not valid YAML: {getattr(e, 'problem', e)}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        field = _location(err["loc"]) or "(top level)"
        msg = re.sub(r"^Value error, ", "", err["msg"])
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise CatalogueError(f"{path}: {field}: {msg}{more}") from None


def load_catalogue(directory: Path = CATALOGUE_DIR) -> Catalogue:
    parts = {
        "units": load_file(directory / "units.yaml", UnitsFile),
        "campaigns": load_file(directory / "campaigns.yaml", CampaignsFile),
        "targets": load_file(directory / "targets.yaml", TargetsFile),
        "hazards": load_file(directory / "hazard_categories.yaml", HazardCategoriesFile),
    }
    try:
        return Catalogue.model_validate(parts)
    except ValidationError as e:
        msg = re.sub(r"^Value error, ", "", e.errors()[0]["msg"])
        raise CatalogueError(f"{directory}: {msg}") from None


@cache
def default_catalogue() -> Catalogue:
    return load_catalogue()
