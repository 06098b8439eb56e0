"""API v1 models for campaigns (专项整治), warnings (预警), joint meetings and their tasks.
Requests forbid extra fields; the acting unit always comes from the token."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from contracts.api import MAX_SCHOOLS_PER_RECORD, EvidenceRef, LongText, Request, SchoolId, ShortText
from contracts.text import Day, Moment

UnitCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*$", max_length=60)]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*$", max_length=60)]
Severity = Literal["general", "major", "critical"]
Item = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Town = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Uuid = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F-]{32,36}$")]


class Written(BaseModel):
    """A write's answer: the aggregate, the last event appended, its log position, and the
    aggregates created alongside (hazards from findings, tasks from a resolution)."""

    id: str
    event_id: str
    type: str
    position: int | None = None
    status: str | None = None
    related: list[str] = Field(default_factory=list)


# -- campaigns -----------------------------------------------------------------------------


class CampaignIn(Request):
    year: int = Field(ge=2000, le=2100)
    template: Code = Field(description="a campaign code from contracts/catalogue/campaigns.yaml")
    school_ids: list[SchoolId] | None = Field(
        default=None, max_length=100_000, description="schools in scope; omitted: every registered school",
    )


class ProblemIn(Request):
    description: LongText
    severity: Severity = "general"


class AspectResultIn(Request):
    aspect: Code
    passed: bool
    problems: list[ProblemIn] = Field(default_factory=list, max_length=50)


class SelfCheckIn(Request):
    school_id: SchoolId
    occurred_on: Day
    results: list[AspectResultIn] = Field(min_length=1, max_length=10)
    evidence: list[EvidenceRef] = Field(
        default_factory=list, max_length=50,
        description="Photos and the signed self-check form: `sha256:<hex>` refs from POST /api/v1/evidence.",
    )


class FindingIn(Request):
    school_id: SchoolId
    aspect: Code
    description: LongText
    severity: Severity = "general"
    responsible_unit: UnitCode | None = Field(default=None, description="default: by the campaign's category")
    deadline: Day | None = Field(default=None, description="default: 30 days after the inspection")


class JointInspectionIn(Request):
    units: list[UnitCode] = Field(min_length=1, max_length=20, description="the other units taking part")
    school_ids: list[SchoolId] = Field(min_length=1, max_length=MAX_SCHOOLS_PER_RECORD)
    occurred_on: Day
    summary: LongText
    findings: list[FindingIn] = Field(default_factory=list, max_length=500)
    evidence: list[EvidenceRef] = Field(
        default_factory=list, max_length=50,
        description="Photos and the signed inspection record: `sha256:<hex>` refs from POST /api/v1/evidence.",
    )


# -- warnings ------------------------------------------------------------------------------


class WarningIn(Request):
    warning_type: Literal["rainstorm", "gale", "lightning", "heat", "cold", "heavy-pollution", "other"]
    level: Literal["blue", "yellow", "orange", "red"]
    title: ShortText
    towns: list[Town] = Field(min_length=1, max_length=200)
    valid_from: Moment
    valid_until: Moment
    measures: list[Item] = Field(min_length=1, max_length=20, description="e.g. 减少或停止户外活动")
    units: list[UnitCode] | None = Field(
        default=None, max_length=30, description="units asked to acknowledge; default from warning_escalation.yaml",
    )


class AcknowledgementIn(Request):
    recipient_kind: Literal["unit", "school"] = "unit"
    school_id: SchoolId | None = Field(default=None, description="the school acknowledging (kind school)")
    measures_taken: list[Item] = Field(min_length=1, max_length=20)
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


# -- meetings and tasks --------------------------------------------------------------------


class MeetingIn(Request):
    scheduled_for: Day
    title: ShortText | None = Field(default=None, description="default: 旗校园安全局际联席会议YYYY年第N次会议")
    place: Annotated[str, StringConstraints(max_length=200)] = ""
    number: int | None = Field(
        default=None, ge=1, le=999,
        description="assigned by the platform: the next number of the year of scheduled_for (meetings are "
                    "numbered 1, 2, 3... in the order they are convened). If given it must be that next "
                    "number: a higher one is refused (422), one already taken is a conflict (409). "
                    "'The latest meeting' (lianxi brief --meeting latest) is the one with the latest "
                    "scheduled date, never the highest number.")


class AgendaItemIn(Request):
    title: ShortText
    detail: Annotated[str, StringConstraints(max_length=4000)] = ""
    related_event_ids: list[Uuid] = Field(default_factory=list, max_length=100)


class HeldIn(Request):
    held_on: Day
    attendance: list[UnitCode] = Field(min_length=1, max_length=60)
    absent: list[UnitCode] = Field(default_factory=list, max_length=60)
    minutes: Annotated[str, StringConstraints(min_length=1, max_length=20000)]


class TaskIn(Request):
    unit: UnitCode
    cooperating_units: list[UnitCode] = Field(default_factory=list, max_length=20)
    description: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    deadline: Day


class ResolutionIn(Request):
    text: LongText
    agenda_item_ids: list[Uuid] = Field(default_factory=list, max_length=50)
    tasks: list[TaskIn] = Field(default_factory=list, max_length=50)


class TaskProgressIn(Request):
    note: LongText
    percent: int = Field(ge=0, le=100)
    occurred_on: Day | None = None


class TaskCompletionIn(Request):
    summary: LongText
    evidence: list[EvidenceRef] = Field(default_factory=list, max_length=50)
    occurred_on: Day | None = None


class TaskVerificationIn(Request):
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class TaskRejectionIn(Request):
    reason: LongText
    new_deadline: Day


class TaskExtensionIn(Request):
    reason: LongText
    new_deadline: Day


class TaskOut(BaseModel):
    task_id: str
    meeting_id: str
    resolution_id: str
    unit: str
    cooperating_units: list[str]
    description: str
    assigned_on: str
    original_deadline: str
    deadline: str
    status: Literal["assigned", "in_progress", "reopened", "completed", "verified"]
    progress_percent: int | None
    last_progress_on: str | None
    completed_on: str | None
    verified_on: str | None
    on_time: bool | None
    extensions: int
    rejections: int
    overdue: bool
    days_overdue: int
    escalation_level: int
    escalation_name: str | None
    max_escalation_level: int
    updated_at: str


class TaskEventOut(BaseModel):
    position: int
    type: str
    event_id: str
    agency: str
    occurred_on: str
    recorded_at: str
    data: dict[str, Any]


class TaskDetailOut(TaskOut):
    history: list[TaskEventOut]


class MeetingOut(BaseModel):
    meeting_id: str
    year: int
    number: int
    title: str
    scheduled_for: str
    place: str
    convened_by: str
    status: Literal["scheduled", "held"]
    held_on: str | None
    attendance: list[str]
    absent: list[str]
    minutes: str | None
    drafted_event_id: str | None
    draft_sections: list[dict[str, Any]] | None


class MeetingDetailOut(MeetingOut):
    agenda_items: list[dict[str, Any]]
    resolutions: list[dict[str, Any]]
