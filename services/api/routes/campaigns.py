"""Special rectification campaigns (专项整治): launch from a template, school self-checks,
joint inspections, and progress (campaign x phase x school x aspect).

Who may write: the lead bureau launches; self-checks come from schools through the lead
bureau's credentials (liaison or lead of 教育局); any unit records a joint inspection it took
part in. Problems and findings become hazards on the rectification board.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response

from contracts.api_meetings import CampaignIn, JointInspectionIn, SelfCheckIn, Written
from events.base import local_date
from projections.campaign_progress import campaign_status, campaigns_overview, list_reminders, progress_matrix
from projections.catalogue_view import schools as schools_table
from services.api.deps import PlatformDep, PrincipalDep, answer, require_lead, require_writer
from services.api.problems import WRITE_ERRORS, ProblemError
from services.api.sheets import (
    XLSX_MEDIA_TYPE,
    SheetFormat,
    campaign_tables,
    catalogue_names,
    sheet_format,
    sheet_response,
)
from services.kernel.results import request_digest
from services.kernel.use_cases import parse_id

router = APIRouter(prefix="/api/v1", tags=["campaigns"])



@router.post("/campaigns", status_code=201, response_model=Written, responses=WRITE_ERRORS)
def launch(body: CampaignIn, platform: PlatformDep, principal: PrincipalDep, response: Response) -> Written:
    """The lead bureau launches a year's campaign from a catalogue template (phases, aspects, schools)."""
    require_writer(principal)
    require_lead(principal)
    school_ids = body.school_ids
    if school_ids is None:
        platform.runner.catch_up("catalogue")
        with platform.read_engine.connect() as conn:
            school_ids = list(conn.execute(
                schools_table.select().with_only_columns(schools_table.c.school_id)
                .order_by(schools_table.c.school_id)).scalars())
    w = platform.app.launch_campaign(principal, year=body.year, template=body.template, school_ids=school_ids,
                                     now=platform.clock())
    response.headers["Location"] = f"/api/v1/campaigns/{w.id}"
    return answer(Written, w)


@router.post("/campaigns/{campaign_id}/self-checks", status_code=201, response_model=Written,
             responses=WRITE_ERRORS)
def self_check(campaign_id: str, body: SelfCheckIn, platform: PlatformDep, principal: PrincipalDep) -> Written:
    """A school's self-check (自查), per aspect pass or problems; relayed by the lead bureau's credentials.
    Each problem becomes a hazard (`related`)."""
    require_writer(principal)
    return answer(Written, platform.app.submit_self_check(
        principal, parse_id(campaign_id, "campaign"), school_id=body.school_id, occurred_on=body.occurred_on,
        results=[r.model_dump() for r in body.results], now=platform.clock(), evidence=body.evidence,
    ))


@router.post("/campaigns/{campaign_id}/joint-inspections", status_code=201, response_model=Written,
             responses=WRITE_ERRORS)
def joint_inspection(
    campaign_id: str, body: JointInspectionIn, platform: PlatformDep, principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> Written:
    """A joint inspection (联合督查) by the caller's unit and the units listed. Each finding becomes a
    hazard reported by the inspecting units (`related`), awaiting the lead bureau's assignment; the
    finding's responsible unit and deadline are the inspectors' proposal, written into the hazard.
    A retry with the same Idempotency-Key and body answers with the first inspection."""
    require_writer(principal)
    return answer(Written, platform.app.conduct_joint_inspection(
        principal, parse_id(campaign_id, "campaign"), units=list(body.units), school_ids=list(body.school_ids),
        occurred_on=body.occurred_on, summary=body.summary, findings=[f.model_dump() for f in body.findings],
        idempotency_key=idempotency_key, now=platform.clock(), evidence=body.evidence,
        # without evidence the body hashes as it did before the field existed (retries across an upgrade)
        request_digest=request_digest(body.model_dump(mode="json", exclude=None if body.evidence else {"evidence"})),
    ))


@router.get("/campaigns", response_model=list[dict[str, Any]])
def index(
    platform: PlatformDep, principal: PrincipalDep,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="default: this year")] = None,
) -> list[dict[str, Any]]:
    """Every campaign of a year with its phase status (schools on time, late, missed)."""
    today = local_date(platform.clock())
    with platform.read_engine.connect() as conn:
        return campaigns_overview(conn, today, year or today.year)


@router.get("/campaigns/{campaign_id}", response_model=dict[str, Any], responses={404: {"description": "unknown"}})
def detail(campaign_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict[str, Any]:
    """One campaign: phases with deadlines, schools behind schedule, problems per aspect, reminders sent."""
    today = local_date(platform.clock())
    with platform.read_engine.connect() as conn:
        status = campaign_status(conn, str(parse_id(campaign_id, "campaign")), today)
        if status is None:
            raise ProblemError(404, f"unknown campaign {campaign_id!r}")
        status["reminders"] = list_reminders(conn, status["campaign_id"])
    return status


@router.get("/campaigns/{campaign_id}/matrix", response_model=list[dict[str, Any]],
            responses={200: {"content": {XLSX_MEDIA_TYPE: {}, "text/csv": {}}}, 404: {"description": "unknown"}})
def matrix(campaign_id: str, platform: PlatformDep, principal: PrincipalDep,
           fmt: Annotated[SheetFormat | None, Depends(sheet_format)] = None) -> list[dict[str, Any]] | Response:
    """campaign x phase x school x aspect: pass or problems, with the event that recorded it. As a
    spreadsheet (?format=xlsx|csv or an Accept header): the progress per phase, then the matrix."""
    today = local_date(platform.clock())
    with platform.read_engine.connect() as conn:
        status = campaign_status(conn, str(parse_id(campaign_id, "campaign")), today)
        if status is None:
            raise ProblemError(404, f"unknown campaign {campaign_id!r}")
        cells = progress_matrix(conn, status["campaign_id"])
        if fmt is None:
            return cells
        _, schools = catalogue_names(conn)
    return sheet_response(campaign_tables(status, cells, schools), fmt,
                          f"campaign-{status['year']}-{status['template']}", data_date=today.isoformat(), csv_table=1)
