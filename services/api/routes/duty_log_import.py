"""Duty logs from a spreadsheet: the unit's template (its duties and the schools as drop-down
lists) and the upload, which checks every row and answers row by row in Chinese.

Without ``partial`` a file with any bad row stores nothing (422, each row, column and reason);
with ``partial=true`` the valid rows are stored, and ``format=xlsx`` then returns the bad rows
as a workbook to fix (the reason beside each row). Re-uploading a file stores nothing twice."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from events.base import local_date
from projections.catalogue_view import get_agency, list_schools
from services.api.deps import PlatformDep, PrincipalDep, require_writer
from services.api.problems import problem
from services.api.sheets import XLSX_MEDIA_TYPE, duty_fix_table, duty_template_table, sheet_response
from services.duty_log.spreadsheet import ImportFileError, check_rows, read_rows

router = APIRouter(prefix="/api/v1", tags=["duty log"])
MAX_UPLOAD = 20 * 1024 * 1024
TEMPLATE_ROWS = 2000


def school_lookup(platform: PlatformDep) -> dict[str, str]:
    """School names (and ids) → ids."""
    with platform.read_engine.connect() as conn:
        schools = list_schools(conn, after=None, limit=100_000)
    return {**{s["school_id"]: s["school_id"] for s in schools}, **{s["name"]: s["school_id"] for s in schools}}


@router.get("/duty-logs/template", responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}})
def duty_log_template(platform: PlatformDep, principal: PrincipalDep) -> Response:
    """The caller's unit's upload template: its duties in force and the schools as drop-downs."""
    require_writer(principal)
    today = local_date(platform.clock())
    duties = platform.app.agency(principal.agency).duties_on(today)
    with platform.read_engine.connect() as conn:
        name = (get_agency(conn, principal.agency) or {}).get("name", principal.agency)
        schools = [s["name"] for s in list_schools(conn, after=None, limit=100_000)]
    table = duty_template_table(name, [d["text"] for d in duties.values()], schools)
    return sheet_response([table], "xlsx", f"duty-log-template-{principal.agency}", data_date=today.isoformat(),
                          template_rows=TEMPLATE_ROWS)


@router.post("/duty-logs/import", description=(
    "The body is the filled template itself (Content-Type: application/vnd.openxmlformats-officedocument."
    "spreadsheetml.sheet), not a form: a file upload has no fields a client could add."), responses={
    200: {"description": "stored (or already stored); with partial=true, the rows left out are listed",
          "content": {XLSX_MEDIA_TYPE: {}}},
    403: {"description": "read-only credential"},
    422: {"description": "not a template, or bad rows (nothing stored): each row, column and reason"},
})
async def import_duty_logs(
    request: Request, platform: PlatformDep, principal: PrincipalDep,
    partial: Annotated[bool, Query(description="store the valid rows and return the rest")] = False,
    format: Annotated[str | None, Query(pattern="^(json|xlsx)$", description="xlsx: the rows to fix")] = None,
) -> Any:
    require_writer(principal)
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_UPLOAD:
            return problem(413, f"文件超过{MAX_UPLOAD // 1024 // 1024}MB")
    now = platform.clock()
    try:
        raw = read_rows(data)
    except ImportFileError as e:
        return problem(422, str(e), slug="bad-spreadsheet")
    app = platform.app
    checked = check_rows(raw, unit=principal.agency, duties=lambda day: app.duty_choices(principal.agency, day),
                         schools=school_lookup(platform), today=local_date(now))
    if checked.errors and not partial:
        return problem(422, f"{len({e.row for e in checked.errors})}行有误，未导入任何记录", slug="bad-rows",
                       errors=[{"row": e.row, "column": e.column, "reason": e.reason, "text": e.text()}
                               for e in checked.errors])
    outcome = app.import_duty_rows(principal, checked.rows, partial=partial, now=now)
    errors = sorted(checked.errors + outcome.errors, key=lambda e: e.row)
    if errors and not partial:
        return problem(422, f"{len({e.row for e in errors})}行有误，未导入任何记录", slug="bad-rows",
                       errors=[{"row": e.row, "column": e.column, "reason": e.reason, "text": e.text()}
                               for e in errors])
    if format == "xlsx":
        return sheet_response([duty_fix_table(raw, errors)], "xlsx", "duty-log-to-fix",
                              data_date=local_date(now).isoformat())
    return {"rows": len(raw), "stored": outcome.stored, "already_stored": outcome.already,
            "rejected": len({e.row for e in errors}),
            "errors": [{"row": e.row, "column": e.column, "reason": e.reason, "text": e.text()} for e in errors]}
