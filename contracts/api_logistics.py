"""API v1 models for school logistics (targets, recognitions, compliance records, petitions)
and the notification inbox. Requests forbid extra fields; the acting unit comes from the token."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from contracts.api import EvidenceRef, Request, SchoolId
from contracts.text import Day

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*$", max_length=60)]
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text2000 = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Note = Annotated[str, StringConstraints(max_length=2000)]
PeriodLabel = Annotated[str, StringConstraints(min_length=4, max_length=12)]


class TargetIn(Request):
    code: Slug
    year: int = Field(ge=2000, le=2100)
    scope: Annotated[str, StringConstraints(min_length=1, max_length=105)] = Field(
        default="county", description="'county' or 'town:<town name>'")
    value: float | None = Field(default=None, ge=0, description="omit for the catalogue's value")
    reason: Annotated[str, StringConstraints(max_length=500)] = Field(
        default="", description="required when changing a value already set")


class CatalogueTargetsIn(Request):
    year: int = Field(ge=2000, le=2100)


class RecognitionIn(Request):
    school_id: SchoolId
    kind: Slug
    level: Literal["county", "city", "province", "national"]
    awarded_on: Day
    awarding_body: Annotated[str, StringConstraints(max_length=200)] = ""
    evidence: list[EvidenceRef] = Field(default_factory=list, max_length=50)


class WithdrawalIn(Request):
    withdrawn_on: Day
    reason: Text2000


class ComplianceRecordIn(Request):
    school_id: SchoolId
    kind: Slug
    period: PeriodLabel = Field(description="YYYY-MM, YYYY-Qn, YYYY-S1|S2, YYYY or YYYY-YYYY (school year), "
                                            "as the kind's cadence requires")
    occurred_on: Day
    evidence: list[EvidenceRef] = Field(
        default_factory=list, max_length=50,
        description="References only (URIs or content hashes), never file content or personal data.",
    )
    measure: float | None = Field(default=None, description="the kind's number (class hours, uptake ratio)")
    note: Note = ""


class PetitionIn(Request):
    reference: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_/-]{0,59}$")] = Field(
        description="the petition's case number (信访件编号); never a person's name or ID")
    channel: Literal["visit", "letter", "phone", "online", "hotline"]
    topic: Literal["drinking-water", "canteen", "dormitory", "school-bus", "insurance", "uniforms-supplies",
                   "fees", "environment", "facilities", "other"]
    school_id: SchoolId | None = None
    summary: Text2000 = Field(description="what is asked, without names, phone or ID numbers")
    handling_unit: Slug = "education"
    received_on: Day


class PetitionAnswerIn(Request):
    answered_on: Day
    answer: Text2000


class PetitionCloseIn(Request):
    closed_on: Day
    satisfaction: Literal["satisfied", "basically-satisfied", "unsatisfied", "not-evaluated"]
    note: Note = ""


class Written(BaseModel):
    id: str
    position: int | None = None
    replayed: bool = False


class TargetsOut(BaseModel):
    year: int
    as_of: str
    targets: list[dict[str, Any]]


class RecognitionOut(BaseModel):
    id: str
    school_id: str
    kind: str
    level: str
    awarded_on: str
    awarding_body: str
    withdrawn_on: str | None
    withdrawal_reason: str | None


class ComplianceCellOut(BaseModel):
    school_id: str
    town: str
    kind: str
    period: str
    responsible: str
    due_on: str
    missing_after: str
    status: Literal["on_time", "late", "missing", "pending"]
    records: int
    first_recorded_on: str | None
    flagged_missing: bool
    measure: float | None


class ComplianceOut(BaseModel):
    as_of: str
    items: list[ComplianceCellOut]
    next_cursor: str | None = None
    total: int
    rates: dict[str, Any]


class PetitionOut(BaseModel):
    id: str
    reference: str
    receiving_unit: str
    handling_unit: str
    channel: str
    topic: str
    school_id: str | None
    summary: str
    received_on: str
    due_on: str
    answered_on: str | None
    answered_on_time: bool | None
    closed_on: str | None
    satisfaction: str | None
    status: str


# -- inbox ---------------------------------------------------------------------------------------


class NotificationOut(BaseModel):
    id: str
    kind: str
    title: str
    body: str
    subject: dict[str, str]
    event_id: str
    event_type: str
    created_at: str
    read: bool
    read_at: str | None


class InboxOut(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None = None
    unread: int


class MarkReadIn(Request):
    ids: list[Annotated[str, StringConstraints(min_length=36, max_length=36)]] | None = Field(
        default=None, max_length=500, description="notification ids; omit with all=true to mark everything")
    all: bool = False


class MarkedOut(BaseModel):
    marked: int


class WebhookIn(Request):
    url: Annotated[str, StringConstraints(min_length=8, max_length=500)]


class EmailIn(Request):
    address: Annotated[str, StringConstraints(min_length=3, max_length=254)]


class DingTalkIn(Request):
    url: Annotated[str, StringConstraints(min_length=8, max_length=500)] = Field(
        description="the group robot's webhook URL, with its access_token")
    secret: Annotated[str, StringConstraints(min_length=16, max_length=100)] = Field(
        description="the robot's signing secret (加签, starts with SEC); stored, never shown back")


class WeComIn(Request):
    url: Annotated[str, StringConstraints(min_length=8, max_length=500)] = Field(
        description="the group robot's webhook URL, with its key; stored, shown back masked")


class SmsIn(Request):
    phones: list[Annotated[str, StringConstraints(min_length=11, max_length=11)]] = Field(
        default_factory=list, max_length=20,
        description="extra mainland mobile numbers beside the unit's accounts that have one (a duty phone); "
                    "may be empty; shown back masked")


class ChannelTestOut(BaseModel):
    ok: bool
    status_code: int | None = None
    error: str | None = Field(default=None, description="the failure's category, as in a delivery attempt")
    message: str = Field(description="the result in Chinese, as the page shows it")


class ChannelSetOut(BaseModel):
    channel: str
    target: str
    secret: str | None = Field(default=None, description="webhook signing key; shown only now")


class ChannelOut(BaseModel):
    channel: str
    target: str
    created_at: str
    updated_at: str
    deliveries: dict[str, int]
    recent_failures: list[dict[str, Any]]


class DeliveryOut(BaseModel):
    notification_id: str
    channel: str
    status: str
    attempts: int
    next_attempt_at: str
    last_error: str | None
    delivered_at: str | None
    created_at: str
