"""A unit's open work (its rectifications and the tasks meetings gave it, with their progress
and completion forms) and the lead's rectification board (整改台账)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from contracts.api_meetings import TaskCompletionIn, TaskProgressIn
from contracts.api_rectifications import CompletionIn, ProgressIn
from contracts.catalogue import default_catalogue
from projections.catalogue_view import get_agency
from projections.meetings import MeetingsView, list_tasks
from projections.rectification_board import RectificationBoard, list_items
from services.api.deps import PlatformDep, today_of
from services.documents import labels
from services.platform import Platform
from services.web.base import (
    Posted,
    PostedDep,
    SessionDep,
    WebError,
    form_act,
    once,
    redirect,
    render,
    require_overview,
    require_unit_reader,
    require_unit_writer,
    unit_names,
    unshown_error,
    uuid_or_404,
)
from services.web.forms import EVIDENCE, EVIDENCE_HINT, Form
from services.web.pages.evidence import FIELD as FILES
from services.web.pages.evidence import attach_files, evidence_of
from services.web.session import WebSession

router = APIRouter(include_in_schema=False)

WORKABLE = ("assigned", "in_progress", "reopened")
BOARD_STATUSES = {"open": "未销号（全部）", **labels.RECT_STATUS}


def hazard_categories() -> dict[str, str]:
    return {c.code: c.name for c in default_catalogue().hazards.categories}


# -- a unit's open work: rectifications and tasks ------------------------------------------


def _work_page(request: Request, session: WebSession, platform: Platform, code: str, names: dict[str, str], *,
               errors: dict[str, dict[str, str]] | None = None, values: dict[str, dict[str, Any]] | None = None,
               status: int = 200) -> HTMLResponse:
    today = today_of(platform)
    with platform.read_engine.connect() as conn:
        if get_agency(conn, code) is None:
            raise WebError(404, "未找到该成员单位")
        rects = list_items(conn, today=today, limit=500, unit=code, status="open")
        tasks = list_tasks(conn, today=today, limit=500, unit=code, status="open")
    can_write = session.principal.can_write and session.principal.agency == code
    shown = {f"rect:{r['id']}" for r in rects if r["status"] in WORKABLE} | {
        f"task:{t['task_id']}" for t in tasks if t["status"] in WORKABLE}
    return render(request, "work.html.j2", session, status=status, units=names, code=code, rects=rects,
                  evidence=evidence_of(platform, [r["id"] for r in rects]),
                  tasks=tasks, workable=WORKABLE, errors=errors or {}, values=values or {}, can_write=can_write,
                  page_error=unshown_error(errors, shown if can_write else set()))


@router.get("/units/{code}/work", response_class=HTMLResponse)
def unit_work(request: Request, code: str, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    names = unit_names(platform)
    require_unit_reader(session, code, names)
    return _work_page(request, session, platform, code, names)


def _work_write(request: Request, code: str, post: Posted, platform: Platform, key: str,
                act: Callable[[Form], bool]) -> Response:
    """Runs one work form; on a bad field or a refused rule, the page comes back with the message
    beside the form that caused it."""
    names = unit_names(platform)
    require_unit_writer(post.session, code, names)

    def done() -> Response:
        platform.runner.catch_up(RectificationBoard.name if key.startswith("rect") else MeetingsView.name)
        action = "completion" if key.endswith("completion") else "progress"
        return redirect(f"/units/{quote(code)}/work?done={action}")

    def run() -> Response:
        return form_act(post, act, done=done, again=lambda f: _work_page(
            request, post.session, platform, code, names, errors={key: f.errors}, values={key: f.values}, status=422))

    return once(request, post, platform, f"/units/{quote(code)}/work", run)


@router.post("/units/{code}/rectifications/{item_id}/progress", response_class=HTMLResponse)
def rect_progress(request: Request, code: str, item_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    iid = uuid_or_404(item_id, "整改事项")

    def act(f: Form) -> bool:
        note = f.text("note", "进展说明")
        pct = f.integer("percent", "完成进度", low=0, high=100)
        evidence = f.lines("evidence", "佐证材料", max_len=500, pattern=EVIDENCE, pattern_hint=EVIDENCE_HINT)
        evidence += attach_files(platform, post, f) if f.ok else []
        body = f.model(ProgressIn, {"note": note, "percent": pct, "evidence": evidence},
                       {"note": "note", "percent": "percent", "evidence": "evidence"})
        if body is None:
            return False
        platform.app.report_rectification_progress(post.session.principal, iid, note=body.note, percent=body.percent,
                                                   evidence=list(body.evidence), now=platform.clock())
        return True

    return _work_write(request, code, post, platform, f"rect:{iid}:progress", act)


@router.post("/units/{code}/rectifications/{item_id}/completion", response_class=HTMLResponse)
def rect_completion(request: Request, code: str, item_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    iid = uuid_or_404(item_id, "整改事项")

    def act(f: Form) -> bool:
        summary = f.text("summary", "整改情况")
        evidence = f.lines("evidence", "佐证材料", max_len=500, pattern=EVIDENCE, pattern_hint=EVIDENCE_HINT)
        evidence += attach_files(platform, post, f) if f.ok else []
        if f.ok and not evidence:
            f.fail(FILES, "请至少上传一张整改后的照片或一份材料，或填写链接。")
        body = f.model(CompletionIn, {"summary": summary, "evidence": evidence},
                       {"summary": "summary", "evidence": "evidence"})
        if body is None:
            return False
        platform.app.complete_rectification(post.session.principal, iid, summary=body.summary,
                                            evidence=list(body.evidence), now=platform.clock())
        return True

    return _work_write(request, code, post, platform, f"rect:{iid}:completion", act)


@router.post("/units/{code}/tasks/{task_id}/progress", response_class=HTMLResponse)
def task_progress(request: Request, code: str, task_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    tid = uuid_or_404(task_id, "任务")

    def act(f: Form) -> bool:
        note = f.text("note", "进展说明")
        pct = f.integer("percent", "完成进度", low=0, high=100, required=True)
        body = f.model(TaskProgressIn, {"note": note, "percent": pct}, {"note": "note", "percent": "percent"})
        if body is None:
            return False
        platform.app.report_task_progress(post.session.principal, tid, note=body.note, percent=body.percent,
                                          occurred_on=None, now=platform.clock())
        return True

    return _work_write(request, code, post, platform, f"task:{tid}:progress", act)


@router.post("/units/{code}/tasks/{task_id}/completion", response_class=HTMLResponse)
def task_completion(request: Request, code: str, task_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    tid = uuid_or_404(task_id, "任务")

    def act(f: Form) -> bool:
        summary = f.text("summary", "完成情况")
        evidence = f.lines("evidence", "佐证材料", max_len=500, pattern=EVIDENCE, pattern_hint=EVIDENCE_HINT)
        evidence += attach_files(platform, post, f) if f.ok else []
        body = f.model(TaskCompletionIn, {"summary": summary, "evidence": evidence},
                       {"summary": "summary", "evidence": "evidence"})
        if body is None:
            return False
        platform.app.complete_task(post.session.principal, tid, summary=body.summary, evidence=list(body.evidence),
                                   occurred_on=None, now=platform.clock())
        return True

    return _work_write(request, code, post, platform, f"task:{tid}:completion", act)


# -- the rectification board ---------------------------------------------------------------


@router.get("/rectifications", response_class=HTMLResponse)
def board(
    request: Request, session: SessionDep, platform: PlatformDep,
    unit: Annotated[str | None, Query(max_length=60)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    overdue: Annotated[str | None, Query(max_length=5)] = None,
    severity: Annotated[str | None, Query(max_length=20)] = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    school: Annotated[str | None, Query(max_length=40)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    require_overview(session)
    names = unit_names(platform)
    categories = hazard_categories()
    filters = {"unit": unit or "", "status": status or "", "overdue": overdue or "", "severity": severity or "",
               "category": category or "", "school": school or ""}
    page_size = 50
    with platform.read_engine.connect() as conn:
        rows = list_items(conn, today=today_of(platform), limit=page_size + 1, before=before, unit=unit or None,
                          school=school or None, status=status if status in BOARD_STATUSES else None,
                          overdue={"yes": True, "no": False}.get(overdue or ""),
                          severity=severity or None, category=category or None)
    more = len(rows) > page_size
    rows = rows[:page_size]
    next_url = None
    if more:
        next_url = "/rectifications?" + urlencode({**{k: v for k, v in filters.items() if v},
                                                   "before": rows[-1]["reported_position"]})
    return render(request, "board.html.j2", session, units=names, rows=rows, filters=filters,
                  evidence=evidence_of(platform, [r["id"] for r in rows]),
                  statuses=BOARD_STATUSES, categories=categories, next_url=next_url)
