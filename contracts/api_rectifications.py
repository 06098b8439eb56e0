"""API v1 models for hazards and rectifications (隐患排查整治). Requests forbid extra fields;
the acting unit always comes from the token."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from contracts.api import EvidenceRef, LongText, Request, SchoolId, ShortText
from contracts.text import Amount, Day

UnitCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*$", max_length=60)]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*$", max_length=40)]
Measure = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Status = Literal["reported", "assigned", "in_progress", "completed", "closed", "reopened"]


class ReportedByIn(Request):
    kind: Literal["unit", "self-check", "joint-inspection"] = Field(
        description="unit: the caller's own unit; self-check: a school's self-check relayed by the caller; "
                    "joint-inspection: a joint inspection by the units listed (the caller among them)",
    )
    units: list[UnitCode] = Field(default_factory=list, max_length=20)


class HazardIn(Request):
    reported_by: ReportedByIn
    school_id: SchoolId
    category: Code = Field(description="a code from contracts/catalogue/hazard_categories.yaml, e.g. fire")
    severity: Code = Field(description="general (一般) | major (较大) | critical (重大)")
    description: LongText
    found_on: Day
    evidence: list[EvidenceRef] = Field(
        default_factory=list, max_length=50,
        description="Photos of the hazard: `sha256:<hex>` refs from POST /api/v1/evidence (or links).",
    )


class FundsIn(Request):
    amount_cny: Amount = Field(ge=0, max_digits=14, decimal_places=2)
    source: ShortText


class AssignmentIn(Request):
    lead_unit: UnitCode
    cooperating_units: list[UnitCode] = Field(default_factory=list, max_length=20)
    deadline: Day
    measures: list[Measure] = Field(min_length=1, max_length=30)
    funds: FundsIn


class ProgressIn(Request):
    note: LongText
    percent: int | None = Field(default=None, ge=0, le=100)
    evidence: list[EvidenceRef] = Field(default_factory=list, max_length=50)


class CompletionIn(Request):
    summary: LongText
    evidence: list[EvidenceRef] = Field(
        min_length=1, max_length=50, description="References only (URIs or content hashes), never file content.",
    )


class VerificationIn(Request):
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class RejectionIn(Request):
    reason: LongText
    new_deadline: Day


class ExtensionIn(Request):
    reason: LongText
    new_deadline: Day


class ExtensionRequestIn(Request):
    """申请延期: the proposed deadline and why; the lead bureau grants (POST .../extension) or refuses."""

    reason: LongText
    new_deadline: Day


class ExtensionRefusalIn(Request):
    reason: LongText


class RectificationWritten(BaseModel):
    id: str
    event_id: str
    type: str
    position: int | None = None
    status: Status
    replayed: bool = False


class ReportedByOut(BaseModel):
    kind: str
    units: list[str]


class FundsOut(BaseModel):
    amount_cny: str
    source: str


class PendingExtensionOut(BaseModel):
    unit: str
    requested_deadline: str
    reason: str
    requested_on: str


class RectificationOut(BaseModel):
    id: str
    status: Status
    school_id: str
    category: str
    severity: str
    description: str
    found_on: str
    reported_by: ReportedByOut
    reporter: str
    reported_at: str
    lead_unit: str | None
    cooperating_units: list[str]
    assigned_on: str | None
    original_deadline: str | None
    deadline: str | None
    measures: list[str]
    funds: FundsOut | None
    progress_percent: int | None
    last_progress_on: str | None
    completed_on: str | None
    closed_on: str | None
    on_time: bool | None
    days_to_close: int | None
    extensions: int
    rejections: int
    overdue: bool
    days_overdue: int
    escalation_level: int
    escalation_name: str | None
    max_escalation_level: int
    pending_extension: PendingExtensionOut | None = None
    updated_at: str


class ResponsibleUnitOut(BaseModel):
    unit: str
    role: Literal["lead", "cooperating"]


class HistoryEntryOut(BaseModel):
    position: int
    type: str
    agency: str
    occurred_on: str
    recorded_at: str
    data: dict[str, Any]


class RectificationDetailOut(RectificationOut):
    units: list[ResponsibleUnitOut]
    history: list[HistoryEntryOut]
