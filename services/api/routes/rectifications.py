"""Hazards and rectifications (隐患排查整治): report, assign, progress, completion (整改回告),
verification (销号), rejection (回头看), extension; the board and each item's history.

Who may write: any unit reports a hazard in its own name; the lead bureau assigns, verifies,
rejects, extends and refuses extension requests; the item's responsible units report progress
and completion and request extensions. The rules
live in the domain (events/rectifications.py); its NotPermitted becomes 403 here. Everyone
with a token reads the board.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response

from contracts.api import Page
from contracts.api_rectifications import (
    AssignmentIn,
    CompletionIn,
    ExtensionIn,
    ExtensionRefusalIn,
    ExtensionRequestIn,
    FundsOut,
    HazardIn,
    PendingExtensionOut,
    ProgressIn,
    RectificationDetailOut,
    RectificationOut,
    RectificationWritten,
    RejectionIn,
    ReportedByOut,
    VerificationIn,
)
from events.base import local_date
from projections.catalogue_view import list_agencies, list_schools
from projections.rectification_board import get_item, list_items
from services.api.deps import (
    CursorQ,
    LimitQ,
    PlatformDep,
    PrincipalDep,
    answer,
    decode_cursor,
    encode_cursor,
    require_writer,
)
from services.api.problems import ProblemError
from services.api.sheets import XLSX_MEDIA_TYPE, SheetFormat, board_table, sheet_format, sheet_response
from services.documents import labels
from services.kernel.use_cases import parse_id

router = APIRouter(prefix="/api/v1", tags=["rectifications"])

_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or unknown token"},
    403: {"description": "read-only credential, or a unit acting on an item it is not responsible for"},
    404: {"description": "unknown rectification"},
    409: {"description": "the item kept changing concurrently"},
    422: {"description": "invalid body or a broken rule (state, deadline, missing evidence or reason)"},
}


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "status", "school_id", "category", "severity", "description", "found_on", "reporter",
            "reported_at", "lead_unit", "cooperating_units", "assigned_on", "original_deadline", "deadline",
            "measures", "progress_percent", "last_progress_on", "completed_on", "closed_on", "on_time",
            "days_to_close", "extensions", "rejections", "overdue", "days_overdue", "escalation_level",
            "escalation_name", "max_escalation_level", "updated_at")
    out = {k: row[k] for k in keys}
    out["reported_by"] = ReportedByOut(kind=row["reported_by_kind"], units=row["reported_units"])
    out["pending_extension"] = (PendingExtensionOut(
        unit=row["pending_extension_unit"], requested_deadline=row["pending_extension_deadline"],
        reason=row["pending_extension_reason"], requested_on=row["pending_extension_on"])
        if row["pending_extension_unit"] is not None else None)
    out["funds"] = (FundsOut(amount_cny=row["funds_amount_cny"], source=row["funds_source"])
                    if row["funds_amount_cny"] is not None else None)
    return out


@router.post("/hazards", status_code=201, response_model=RectificationWritten, responses={
    **_WRITE_ERRORS,
    403: {"description": "read-only credential, or reporting in another unit's name"},
    409: {"description": "Idempotency-Key reused with a different body"},
})
def report_hazard(
    body: HazardIn, platform: PlatformDep, principal: PrincipalDep, response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> RectificationWritten:
    """Reports a hidden hazard; it becomes one tracked rectification (status `reported`)."""
    require_writer(principal)
    written = platform.app.report_hazard(
        principal, kind=body.reported_by.kind, units=list(body.reported_by.units), school_id=body.school_id,
        category=body.category, severity=body.severity, description=body.description, found_on=body.found_on,
        # Without evidence the body digests as it did before hazards took evidence (older keys replay).
        idempotency_key=idempotency_key, now=platform.clock(), evidence=list(body.evidence),
        body=body.model_dump(mode="json", exclude=None if body.evidence else {"evidence"}),
    )
    response.headers["Location"] = f"/api/v1/rectifications/{written.id}"
    return answer(RectificationWritten, written)


@router.post("/rectifications/{item_id}/assignment", response_model=RectificationWritten,
             responses=_WRITE_ERRORS)
def assign(item_id: str, body: AssignmentIn, platform: PlatformDep, principal: PrincipalDep) -> RectificationWritten:
    """The lead bureau assigns the rectification: lead unit, cooperating units, deadline, measures, funds."""
    require_writer(principal)
    return answer(RectificationWritten, platform.app.assign_rectification(
        principal, parse_id(item_id, "rectification"), lead_unit=body.lead_unit,
        cooperating_units=list(body.cooperating_units),
        deadline=body.deadline, measures=list(body.measures),
        funds={"amount_cny": format(body.funds.amount_cny, "f"), "source": body.funds.source},
        now=platform.clock(),
    ))


@router.post("/rectifications/{item_id}/progress", response_model=RectificationWritten, responses=_WRITE_ERRORS)
def progress(item_id: str, body: ProgressIn, platform: PlatformDep, principal: PrincipalDep) -> RectificationWritten:
    """A responsible unit reports progress."""
    require_writer(principal)
    return answer(RectificationWritten, platform.app.report_rectification_progress(
        principal, parse_id(item_id, "rectification"), note=body.note, percent=body.percent,
        evidence=list(body.evidence),
        now=platform.clock(),
    ))


@router.post("/rectifications/{item_id}/completion", response_model=RectificationWritten,
             responses=_WRITE_ERRORS)
def completion(
    item_id: str, body: CompletionIn, platform: PlatformDep, principal: PrincipalDep,
) -> RectificationWritten:
    """A responsible unit reports completion with evidence (整改回告)."""
    require_writer(principal)
    return answer(RectificationWritten, platform.app.complete_rectification(
        principal, parse_id(item_id, "rectification"), summary=body.summary, evidence=list(body.evidence),
        now=platform.clock(),
    ))


@router.post("/rectifications/{item_id}/verification", response_model=RectificationWritten,
             responses=_WRITE_ERRORS)
def verification(
    item_id: str, body: VerificationIn, platform: PlatformDep, principal: PrincipalDep,
) -> RectificationWritten:
    """The lead bureau verifies a reported completion and closes the item (销号)."""
    require_writer(principal)
    return answer(RectificationWritten, platform.app.verify_rectification(
        principal, parse_id(item_id, "rectification"), note=body.note, now=platform.clock(),
    ))


@router.post("/rectifications/{item_id}/rejection", response_model=RectificationWritten,
             responses=_WRITE_ERRORS)
def rejection(item_id: str, body: RejectionIn, platform: PlatformDep, principal: PrincipalDep) -> RectificationWritten:
    """The lead bureau rejects a completion, or reopens a closed item, with a reason and a new deadline (回头看)."""
    require_writer(principal)
    return answer(RectificationWritten, platform.app.reject_rectification(
        principal, parse_id(item_id, "rectification"), reason=body.reason, new_deadline=body.new_deadline,
        now=platform.clock(),
    ))


@router.post("/rectifications/{item_id}/extension", response_model=RectificationWritten,
             responses=_WRITE_ERRORS)
def extension(item_id: str, body: ExtensionIn, platform: PlatformDep, principal: PrincipalDep) -> RectificationWritten:
    """The lead bureau extends the deadline, on a responsible unit's request, with a reason
    (at most `max_extensions` times, contracts/catalogue/escalation.yaml)."""
    require_writer(principal)
    return answer(RectificationWritten, platform.app.extend_rectification_deadline(
        principal, parse_id(item_id, "rectification"), reason=body.reason, new_deadline=body.new_deadline,
        now=platform.clock(),
    ))


@router.post("/rectifications/{item_id}/extension-request", response_model=RectificationWritten,
             responses=_WRITE_ERRORS)
def extension_request(
    item_id: str, body: ExtensionRequestIn, platform: PlatformDep, principal: PrincipalDep,
) -> RectificationWritten:
    """A responsible unit requests a later deadline with a reason (申请延期); one request is
    pending at a time. The lead bureau grants it (POST .../extension) or refuses it (.../extension-refusal)."""
    require_writer(principal)
    return answer(RectificationWritten, platform.app.request_rectification_extension(
        principal, parse_id(item_id, "rectification"), reason=body.reason, new_deadline=body.new_deadline,
        now=platform.clock(),
    ))


@router.post("/rectifications/{item_id}/extension-refusal", response_model=RectificationWritten,
             responses=_WRITE_ERRORS)
def extension_refusal(
    item_id: str, body: ExtensionRefusalIn, platform: PlatformDep, principal: PrincipalDep,
) -> RectificationWritten:
    """The lead bureau refuses the pending extension request, with a reason; the deadline stands."""
    require_writer(principal)
    return answer(RectificationWritten, platform.app.refuse_rectification_extension(
        principal, parse_id(item_id, "rectification"), reason=body.reason, now=platform.clock(),
    ))


@router.get("/rectifications", response_model=Page[RectificationOut],
            responses={200: {"content": {XLSX_MEDIA_TYPE: {}, "text/csv": {}}}})
def board(
    platform: PlatformDep, principal: PrincipalDep, limit: LimitQ = 100, cursor: CursorQ = None,
    unit: Annotated[str | None, Query(max_length=60, description="a responsible unit (lead or cooperating)")] = None,
    school: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[Literal["open", "reported", "assigned", "in_progress", "completed", "closed", "reopened"]
                      | None, Query(description="a status, or open (anything not closed)")] = None,
    overdue: Annotated[bool | None, Query(description="past the deadline with the work not yet reported done")] = None,
    severity: Annotated[str | None, Query(max_length=20)] = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    fmt: Annotated[SheetFormat | None, Depends(sheet_format)] = None,
) -> Page[RectificationOut] | Response:
    """The rectification board, newest report first. As a spreadsheet (?format=xlsx|csv or an
    Accept header) it holds every item the filters choose, not one page."""
    if fmt is not None:
        return _board_sheet(platform, fmt, unit=unit, school=school, status=status, overdue=overdue,
                            severity=severity, category=category)
    decoded = decode_cursor(cursor)
    if decoded is not None and not decoded.isdigit():
        raise ProblemError(400, "cursor is not one this API issued")
    today = local_date(platform.clock())
    with platform.read_engine.connect() as conn:
        rows = list_items(conn, today=today, limit=limit + 1, before=int(decoded) if decoded else None, unit=unit,
                          school=school, status=status, overdue=overdue, severity=severity, category=category)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[RectificationOut](
        items=[RectificationOut(**_fields(r)) for r in rows],
        next_cursor=encode_cursor(str(rows[-1]["reported_position"])) if more else None,
    )


SHEET_ROWS = 100_000
FILTER_NAMES = {"unit": "单位", "school": "学校", "status": "状态", "overdue": "逾期", "severity": "等级",
                "category": "类别"}


def _board_sheet(platform: PlatformDep, fmt: SheetFormat, **filters: Any) -> Response:
    today = local_date(platform.clock())
    with platform.read_engine.connect() as conn:
        rows = list_items(conn, today=today, limit=SHEET_ROWS, **filters)
        names = {a["code"]: a["name"] for a in list_agencies(conn)}
        schools = {s["school_id"]: s["name"] for s in list_schools(conn, after=None, limit=SHEET_ROWS)}
    chosen = "，".join(f"{FILTER_NAMES[k]}：{_filter_text(k, v, names, schools)}" for k, v in filters.items()
                      if v is not None)
    items = [_fields(r) | {"funds": {"amount_cny": r["funds_amount_cny"]} if r["funds_amount_cny"] is not None
                           else None} for r in rows]
    return sheet_response([board_table(items, names, schools, chosen)], fmt, f"rectifications-{today}",
                          data_date=today.isoformat())


def _filter_text(key: str, value: Any, names: dict[str, str], schools: dict[str, str]) -> str:
    if key == "unit":
        return names.get(str(value), str(value))
    if key == "school":
        return schools.get(str(value), str(value))
    if key == "status":
        return "未销号" if value == "open" else labels.name_of(labels.RECT_STATUS, value)
    if key == "severity":
        return labels.name_of(labels.SEVERITY, value)
    if key == "overdue":
        return "是" if value else "否"
    return str(value)


@router.get("/rectifications/{item_id}", response_model=RectificationDetailOut,
            responses={404: {"description": "unknown rectification"}})
def detail(item_id: str, platform: PlatformDep, principal: PrincipalDep) -> RectificationDetailOut:
    """One item with its responsible units and full history."""
    today = local_date(platform.clock())
    with platform.read_engine.connect() as conn:
        row = get_item(conn, str(parse_id(item_id, "rectification")), today)
    if row is None:
        raise ProblemError(404, f"unknown rectification {item_id!r}")
    return RectificationDetailOut(**_fields(row), units=row["units"], history=row["history"])
