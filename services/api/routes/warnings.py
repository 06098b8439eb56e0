"""Early warnings (预警): issue, acknowledge, and the response figures.

Who may write: a unit with a warning duty in force issues (contracts/catalogue/
warning_escalation.yaml names the duties); a unit acknowledges for itself, schools through the
lead bureau's credentials. Every token reads warnings; per-recipient response figures are for
the lead bureau and auditors, a liaison sees its own unit's row.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response

from contracts.api_meetings import AcknowledgementIn, WarningIn, Written
from events.base import local_date
from projections.catalogue_view import schools as schools_table
from projections.warning_response import get_warning, recipient_status, response_by_recipient, warnings_between
from services.api.deps import PlatformDep, PrincipalDep, answer, require_writer
from services.api.problems import WRITE_ERRORS, ProblemError
from services.api.sheets import (
    XLSX_MEDIA_TYPE,
    SheetFormat,
    catalogue_names,
    sheet_format,
    sheet_response,
    warning_response_table,
)
from services.kernel.results import request_digest
from services.kernel.use_cases import parse_id

router = APIRouter(prefix="/api/v1", tags=["warnings"])


@router.post("/warnings", status_code=201, response_model=Written, responses=WRITE_ERRORS)
def issue(
    body: WarningIn, platform: PlatformDep, principal: PrincipalDep, response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> Written:
    """Issues a warning for some towns; their schools and the named units are asked to acknowledge."""
    require_writer(principal)
    platform.runner.catch_up("catalogue")
    with platform.read_engine.connect() as conn:
        s = schools_table.c
        school_ids = list(conn.execute(
            schools_table.select().with_only_columns(s.school_id).where(s.town.in_(body.towns))
            .order_by(s.school_id)).scalars())
    w = platform.app.issue_warning(
        principal, warning_type=body.warning_type, level=body.level, title=body.title, towns=list(body.towns),
        valid_from=body.valid_from, valid_until=body.valid_until, measures=list(body.measures),
        units=list(body.units) if body.units is not None else None, school_ids=school_ids,
        idempotency_key=idempotency_key, now=platform.clock(),
        request_digest=request_digest(body.model_dump(mode="json")),
    )
    response.headers["Location"] = f"/api/v1/warnings/{w.id}"
    return answer(Written, w)


@router.post("/warnings/{warning_id}/acknowledgements", status_code=201, response_model=Written,
             responses=WRITE_ERRORS)
def acknowledge(warning_id: str, body: AcknowledgementIn, platform: PlatformDep, principal: PrincipalDep) -> Written:
    """A recipient acknowledges, with the measures it took (the latency is measured from issue)."""
    require_writer(principal)
    if body.recipient_kind == "school" and body.school_id is None:
        raise ProblemError(422, "school_id is required when recipient_kind is school")
    if body.recipient_kind == "unit" and body.school_id is not None:
        raise ProblemError(422, "school_id is only for recipient_kind school")
    return answer(Written, platform.app.acknowledge_warning(
        principal, parse_id(warning_id, "warning"), recipient_kind=body.recipient_kind,
        recipient=body.school_id if body.recipient_kind == "school" else None,
        measures_taken=list(body.measures_taken), note=body.note, now=platform.clock(),
    ))


@router.get("/warnings", response_model=list[dict[str, Any]])
def index(
    platform: PlatformDep, principal: PrincipalDep,
    from_: Annotated[date | None, Query(alias="from", description="first day (default 1 January)")] = None,
    to: Annotated[date | None, Query(description="last day (default today)")] = None,
) -> list[dict[str, Any]]:
    """Warnings issued in the window with acknowledgement rate, latency, who has not acknowledged."""
    today = local_date(platform.clock())
    start, end = from_ or date(today.year, 1, 1), to or today
    with platform.read_engine.connect() as conn:
        return warnings_between(conn, start.isoformat(), end.isoformat())


@router.get("/warnings/{warning_id}", response_model=dict[str, Any], responses={404: {"description": "unknown"}})
def detail(warning_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict[str, Any]:
    with platform.read_engine.connect() as conn:
        w = get_warning(conn, str(parse_id(warning_id, "warning")))
        if w is None:
            raise ProblemError(404, f"unknown warning {warning_id!r}")
        w["recipients_status"] = recipient_status(conn, w["warning_id"])
    return w


@router.get("/warning-response", response_model=list[dict[str, Any]],
            responses={200: {"content": {XLSX_MEDIA_TYPE: {}, "text/csv": {}}}})
def response_figures(
    platform: PlatformDep, principal: PrincipalDep,
    kind: Annotated[Literal["school", "unit"], Query()] = "unit",
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
    fmt: Annotated[SheetFormat | None, Depends(sheet_format)] = None,
) -> list[dict[str, Any]] | Response:
    """Per school or unit: warnings received, acknowledged, rate, median latency, slow ones. As a
    spreadsheet with ?format=xlsx|csv or an Accept header."""
    today = local_date(platform.clock())
    start, end = from_ or date(today.year, 1, 1), to or today
    if not principal.can_read_all and kind == "school" and principal.agency != "education":
        raise ProblemError(403, "schools' response figures are for the lead bureau and auditors")
    with platform.read_engine.connect() as conn:
        rows = response_by_recipient(conn, kind, start.isoformat(), end.isoformat())
    if not principal.can_read_all and kind == "unit":
        rows = [r for r in rows if r["recipient"] == principal.agency]
    if fmt is not None:
        with platform.read_engine.connect() as conn:
            units, schools = catalogue_names(conn)
        window = f"{start.isoformat()}至{end.isoformat()}"
        return sheet_response([warning_response_table(rows, kind, schools if kind == "school" else units, window)],
                              fmt, f"warning-response-{kind}-{end.isoformat()}", data_date=min(end, today).isoformat())
    return rows
