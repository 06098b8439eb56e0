"""API v1 request and response models. Requests forbid extra fields: a unit's identity and
every server-owned field (unit, logged_by, ids, recorded time) come from the server."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from contracts.text import TEXT_RULE, Day, find_control_character

TRIMMED = ("leading and trailing whitespace is trimmed before the length is checked, so blank text "
           f"(spaces, the full-width space, tabs, \"\\r\", line breaks) counts as empty; {TEXT_RULE}")
SchoolId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200), Field(description=TRIMMED)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=4000), Field(description=TRIMMED)]
EvidenceRef = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^\S+$")]
T = TypeVar("T")


def _say_trimmed(schema: dict[str, Any]) -> None:
    """Every string of a request with a ``minLength`` says in its description that it is
    trimmed first, so that a client reading ``minLength: 1`` knows " " and "\\r" are refused."""
    if schema.get("type") == "string" and schema.get("minLength", 0) >= 1:
        said = schema.get("description", "")
        if TRIMMED not in said:
            schema["description"] = f"{said}; {TRIMMED}" if said else TRIMMED
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _say_trimmed(schema[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key, ()):
            if isinstance(sub, dict):
                _say_trimmed(sub)


def _describe_trimming(schema: dict[str, Any], model: type) -> None:
    for prop in schema.get("properties", {}).values():
        _say_trimmed(prop)


class Request(BaseModel):
    """Strict: no number becomes a date, string or boolean, no string a number; dates are
    ``Day`` (YYYY-MM-DD). Every text anywhere in a request (nested objects and free-form
    ``body`` included) is refused with 422 if it holds a control character other than tab and
    newline (contracts/text.py). Texts are trimmed before their length is checked, and the
    JSON Schema of each text with a minimum length says so (``_describe_trimming``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True,
                              json_schema_extra=_describe_trimming)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: object) -> object:
        problem = find_control_character(value)
        if problem is not None:
            raise problem
        return value


class FindingsIn(Request):
    count: int = Field(default=0, ge=0, le=100_000)
    text: Annotated[str, StringConstraints(max_length=2000)] = ""


MAX_SCHOOLS_PER_RECORD = 500  # one duty record or joint inspection; the pages take as many (web/base.py)


class DutyLogIn(Request):
    duty_code: Annotated[str, StringConstraints(min_length=3, max_length=120)]
    school_ids: list[SchoolId] = Field(default_factory=list, max_length=MAX_SCHOOLS_PER_RECORD)
    occurred_on: Day
    summary: LongText
    findings: FindingsIn = Field(default_factory=FindingsIn)
    evidence: list[EvidenceRef] = Field(
        default_factory=list, max_length=50,
        description="References only (URIs or content hashes), never file content.",
    )


class SchoolIn(Request):
    id: SchoolId
    name: ShortText
    town: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    kind: Literal["kindergarten", "primary", "junior", "senior", "vocational"]
    boarding: bool = False
    canteen: bool = False
    school_bus: bool = False


class Created(BaseModel):
    id: str
    position: int | None = None
    replayed: bool = False


class DutyOut(BaseModel):
    code: str
    text: str
    applies_to: str | None = None


class AgencyOut(BaseModel):
    code: str
    name: str
    name_en: str
    lead: bool
    duties: list[DutyOut]


class SchoolOut(BaseModel):
    id: str
    name: str
    town: str
    kind: str
    boarding: bool
    canteen: bool
    school_bus: bool


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class EventOut(BaseModel):
    position: int
    id: str
    type: str
    agency: str
    occurred_on: str
    recorded_at: str
    data: dict[str, Any]


class LedgerDutyOut(BaseModel):
    duty_code: str
    text: str
    applies_to: str
    performed_count: int
    findings_count: int
    schools_covered: int
    schools_applicable: int | None
    coverage_ratio: float | None
    last_performed_on: str | None
    by_month: dict[str, int]
    by_quarter: dict[str, int]
    by_semester: dict[str, int]


class RectificationStatsOut(BaseModel):
    """A unit's part of the rectification board. open/overdue/escalated: items the unit leads,
    as of the ledger's date; closure figures: items closed (销号) within the period."""

    open: int
    overdue: int
    escalated: int
    closed: int
    closed_on_time: int
    on_time_rate: float | None
    median_days_to_close: float | None
    cooperating_open: int
    as_of: str | None = Field(default=None, description="the day these figures are as of (the ledger's as_of, "
                                                      "or the period's last day if earlier)")


class LedgerOut(BaseModel):
    agency: str
    as_of: str
    period: str
    period_start: str
    period_end: str
    source: Literal["live", "as_of"]
    duties: list[LedgerDutyOut]
    blind_spots: list[str]
    rectifications: RectificationStatsOut | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class AuditEntryOut(BaseModel):
    """One row of the append-only audit trail (等保 2.0: who, when, what, outcome)."""

    id: int
    at: str
    actor: str
    token_id: str | None
    role: str | None
    unit: str | None
    action: str
    target: str
    target_unit: str | None
    status: int
    outcome: Literal["ok", "refused", "rejected", "error"]
    resource_id: str | None
    detail: str | None
    client: str | None
    actor_name: str | None = Field(
        default=None, description="the person who acted (an account's display name, beside its id in token_id); "
                                  "given to the lead and auditors only")
    resource_name: str | None = Field(
        default=None, description="the person whose account resource_id is (a sign-in, a lock-out, a change by "
                                  "the lead); given to the lead and auditors only")
