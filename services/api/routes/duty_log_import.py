"""Registers from spreadsheets (duty logs, hazards, school registers): the template (a unit's
duties, the schools, the categories as drop-down lists) and the upload, which checks every row
and answers row by row in Chinese.

Without ``partial`` a file with any bad row stores nothing (422, each row, column and reason);
with ``partial=true`` the valid rows are stored, and ``format=xlsx`` then returns the bad rows
as a workbook to fix (the reason beside each row). Re-uploading a file stores nothing twice.
The work is services/api/imports.py's, shared with the pages and the CLI."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from services.api.deps import PlatformDep, PrincipalDep, require_lead, require_writer
from services.api.imports import IMPORTERS, ImportFileError, fix_response, template_response
from services.api.problems import problem
from services.api.sheets import XLSX_MEDIA_TYPE

router = APIRouter(prefix="/api/v1", tags=["duty log"])
MAX_UPLOAD = 20 * 1024 * 1024
UPLOAD_DESCRIPTION = (
    "The body is the filled template itself (Content-Type: application/vnd.openxmlformats-officedocument."
    "spreadsheetml.sheet), not a form: a file upload has no fields a client could add.")
UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "stored (or already stored); with partial=true, the rows left out are listed",
          "content": {XLSX_MEDIA_TYPE: {}}},
    403: {"description": "read-only credential"},
    413: {"description": "file too large"},
    422: {"description": "not a template, or bad rows (nothing stored): each row, column and reason"},
}
PartialQ = Annotated[bool, Query(description="store the valid rows and return the rest")]
FixFormatQ = Annotated[str | None, Query(pattern="^(json|xlsx)$", description="xlsx: the rows to fix")]


async def upload(request: Request, platform: PlatformDep, principal: PrincipalDep, kind: str, partial: bool,
                 format: str | None) -> Any:
    """The upload of one register: the body read up to MAX_UPLOAD, then services/api/imports.py."""
    require_writer(principal)
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_UPLOAD:
            return problem(413, f"文件超过{MAX_UPLOAD // 1024 // 1024}MB")
    importer = IMPORTERS[kind]
    try:
        report = importer.run(platform, principal, data, partial)
    except ImportFileError as e:
        return problem(422, str(e), slug="bad-spreadsheet")
    if report.errors and not partial:
        return problem(422, report.summary(), slug="bad-rows", errors=report.as_json()["errors"])
    if format == "xlsx":
        return fix_response(platform, importer, report)
    return report.as_json()


@router.get("/duty-logs/template", responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}})
def duty_log_template(platform: PlatformDep, principal: PrincipalDep) -> Response:
    """The caller's unit's upload template: its duties in force and the schools as drop-downs."""
    require_writer(principal)
    return template_response(platform, principal, IMPORTERS["duty-logs"])  # type: ignore[no-any-return]


@router.post("/duty-logs/import", description=UPLOAD_DESCRIPTION, responses=UPLOAD_RESPONSES)
async def import_duty_logs(request: Request, platform: PlatformDep, principal: PrincipalDep,
                           partial: PartialQ = False, format: FixFormatQ = None) -> Any:
    return await upload(request, platform, principal, "duty-logs", partial, format)


@router.get("/hazards/template", tags=["rectifications"], responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}})
def hazard_template(platform: PlatformDep, principal: PrincipalDep) -> Response:
    """The hazard upload template: schools, categories and severities as drop-downs."""
    require_writer(principal)
    return template_response(platform, principal, IMPORTERS["hazards"])  # type: ignore[no-any-return]


@router.post("/hazards/import", tags=["rectifications"], description=UPLOAD_DESCRIPTION, responses=UPLOAD_RESPONSES)
async def import_hazards(request: Request, platform: PlatformDep, principal: PrincipalDep,
                         partial: PartialQ = False, format: FixFormatQ = None) -> Any:
    """Hazards the caller's unit found, one per row; each becomes a rectification on the board."""
    return await upload(request, platform, principal, "hazards", partial, format)


@router.get("/schools/template", tags=["catalogue"], responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}})
def school_template(platform: PlatformDep, principal: PrincipalDep) -> Response:
    """The school register template (学校名册). Lead only."""
    require_lead(principal)
    return template_response(platform, principal, IMPORTERS["schools"])  # type: ignore[no-any-return]


@router.post("/schools/import", tags=["catalogue"], description=UPLOAD_DESCRIPTION, responses=UPLOAD_RESPONSES)
async def import_schools(request: Request, platform: PlatformDep, principal: PrincipalDep,
                         partial: PartialQ = False, format: FixFormatQ = None) -> Any:
    """Schools registered from the register; one already registered with the same details is
    left as it is, one with other details is a row error. Lead only."""
    require_lead(principal)
    return await upload(request, platform, principal, "schools", partial, format)
