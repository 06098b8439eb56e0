"""Spreadsheets from the pages: 下载Excel beside the ledger, the board, the warnings and the review
(the API's own endpoint functions, so a page's file is the API's file), and the upload form for
duty logs, hazards and school registers, which answers with the per-row report in Chinese."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from events.errors import DomainError
from projections.periods import Period
from services.api.deps import PlatformDep
from services.api.imports import IMPORTERS, Importer, ImportFileError, ImportReport, template_response
from services.api.problems import ProblemError
from services.web.base import (
    SessionDep,
    WebError,
    domain_message,
    render,
    require_overview,
    require_unit_reader,
    require_unit_writer,
    unit_names,
)
from services.web.session import same

router = APIRouter(include_in_schema=False)
MAX_UPLOAD = 20 * 1024 * 1024


def _sheet(call: Any) -> Response:
    """An endpoint function's spreadsheet; its refusal as a page."""
    try:
        return call()  # type: ignore[no-any-return]
    except ProblemError as e:
        raise WebError(e.status if e.status in (403, 404, 422) else 422, "无法导出", e.detail) from None


@router.get("/units/{code}/ledger.xlsx")
def ledger_download(code: str, session: SessionDep, platform: PlatformDep,
                    period: Annotated[str | None, Query(max_length=10)] = None) -> Response:
    from services.api.routes.duty_log import agency_ledger

    require_unit_reader(session, code, unit_names(platform))
    if period:
        try:
            Period.parse(period)
        except ValueError:
            raise WebError(422, "统计期格式不正确",
                           "请使用 年（2025）、学期（2025-S1）、季度（2025-Q2）或月份（2025-06）。") from None
    return _sheet(lambda: agency_ledger(code, platform, session.principal, period=period or None, as_of=None,
                                        fmt="xlsx"))


@router.get("/rectifications.xlsx")
def board_download(
    session: SessionDep, platform: PlatformDep,
    unit: Annotated[str | None, Query(max_length=60)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    overdue: Annotated[str | None, Query(max_length=5)] = None,
    severity: Annotated[str | None, Query(max_length=20)] = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    school: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """The board as its filters chose it (every item, not one page)."""
    from services.api.routes.rectifications import board
    from services.web.pages.rectifications import BOARD_STATUSES

    require_overview(session)
    chosen = status if status in BOARD_STATUSES else None
    return _sheet(lambda: board(platform, session.principal, limit=100, cursor=None, unit=unit or None,
                                school=school or None, status=chosen,  # type: ignore[arg-type]
                                overdue={"yes": True, "no": False}.get(overdue or ""), severity=severity or None,
                                category=category or None, fmt="xlsx"))


@router.get("/review/{year}.xlsx")
def review_download(year: int, session: SessionDep, platform: PlatformDep) -> Response:
    from services.api.routes.reviews import get_review

    require_overview(session)
    if not 2000 <= year <= 2100:
        raise WebError(404, "未找到该年度的考核")
    return _sheet(lambda: get_review(year, platform, session.principal, rules=None, as_of=None, compare_rules=None,
                                     format="xlsx", accept=None))


@router.get("/warnings.xlsx")
def warnings_download(session: SessionDep, platform: PlatformDep,
                      kind: Annotated[str, Query(max_length=10)] = "unit") -> Response:
    """The warning-response figures of this year, by unit or by school (the API's own table)."""
    from services.api.routes.warnings import response_figures

    require_overview(session)
    chosen: Literal["school", "unit"] = "school" if kind == "school" else "unit"
    return _sheet(lambda: response_figures(platform, session.principal, kind=chosen, from_=None, to=None,
                                           fmt="xlsx"))


# -- uploads: duty logs, hazards, school registers ----------------------------------------------

KindQ = Annotated[str, Query(max_length=20, description="duty-logs, hazards or schools")]


def _importer(kind: str) -> Importer:
    importer = IMPORTERS.get(kind)
    if importer is None:
        raise WebError(404, "不支持该导入类型", "可导入：履职记录、隐患、学校名册。")
    return importer


@router.get("/units/{code}/import/template.xlsx")
def import_template(code: str, session: SessionDep, platform: PlatformDep, kind: KindQ = "duty-logs") -> Response:
    require_unit_writer(session, code, unit_names(platform))
    return template_response(platform, session.principal, _importer(kind))  # type: ignore[no-any-return]


@router.get("/units/{code}/import", response_class=HTMLResponse)
def import_form(request: Request, code: str, session: SessionDep, platform: PlatformDep,
                kind: KindQ = "duty-logs") -> HTMLResponse:
    require_unit_writer(session, code, unit_names(platform))
    return render(request, "import.html.j2", session, code=code, importer=_importer(kind), importers=IMPORTERS,
                  report=None, error=None, partial=False)


@router.post("/units/{code}/import", response_class=HTMLResponse)
async def import_upload(request: Request, code: str, session: SessionDep, platform: PlatformDep,
                        kind: KindQ = "duty-logs") -> HTMLResponse:
    """The filled template (multipart, one file); the report row by row. Re-sending the same
    file stores nothing twice (each row's key is its content), so no submit-once token is needed."""
    require_unit_writer(session, code, unit_names(platform))
    importer = _importer(kind)
    form = await request.form(max_files=1, max_fields=5, max_part_size=MAX_UPLOAD)
    token = form.get("csrf_token")
    if not same(token if isinstance(token, str) else None, session.csrf):
        raise WebError(403, "表单已失效", "页面的安全校验码（CSRF）不正确或已过期。请返回并刷新页面后重新提交。")
    partial = form.get("partial") == "1"
    upload = form.get("file")
    report: ImportReport | None = None
    error: str | None = None
    if upload is None or isinstance(upload, str) or not upload.filename:
        error = "请选择要上传的Excel文件（.xlsx）。"
    else:
        data = await upload.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            error = f"文件超过{MAX_UPLOAD // 1024 // 1024}MB，请分批上传。"
        else:
            try:
                report = importer.run(platform, session.principal, data, partial)
            except ImportFileError as e:
                error = str(e)
            except DomainError as e:  # a refusal of the whole upload (e.g. a read-only credential)
                error = domain_message(e)
    refused = error is not None or (report is not None and bool(report.errors) and not partial)
    if report is not None and report.stored:
        platform.runner.catch_up()
    return render(request, "import.html.j2", session, status=422 if refused else 200, code=code, importer=importer,
                  importers=IMPORTERS, report=report, error=error, partial=partial)
