"""Joint meetings (联席会议): the list, scheduling, the agenda assembled from the log, the
record of a held meeting, its resolutions, and the brief for download."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from contracts.api_meetings import (
    AgendaItemIn,
    HeldIn,
    MeetingIn,
    ResolutionIn,
    TaskRejectionIn,
    TaskVerificationIn,
)
from events.errors import DomainError
from projections.meetings import MeetingsView, assemble_agenda, list_meetings, list_resolutions
from services.api.deps import PlatformDep, today_of
from services.documents import labels
from services.meetings.briefs import RETRY_AFTER_S, StillBuilding
from services.platform import Platform
from services.web.base import (
    Posted,
    PostedDep,
    SessionDep,
    WebError,
    domain_message,
    form_act,
    once,
    redirect,
    render,
    require_lead,
    require_overview,
    unit_names,
    unshown_error,
    uuid_or_404,
)
from services.web.forms import UUID_TEXT, Form
from services.web.session import WebSession

router = APIRouter(include_in_schema=False)

BRIEF_MEDIA = {
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}


@router.get("/meetings", response_class=HTMLResponse)
def meetings(request: Request, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    require_overview(session)
    with platform.read_engine.connect() as conn:
        rows = list(reversed(list_meetings(conn)))
    return render(request, "meetings.html.j2", session, meetings=rows, errors={}, values={})


@router.post("/meetings", response_class=HTMLResponse)
def schedule_meeting(request: Request, post: PostedDep, platform: PlatformDep) -> Response:
    require_lead(post.session)
    return once(request, post, platform, "/meetings", lambda: _schedule(request, post, platform))


def _schedule(request: Request, post: Posted, platform: Platform) -> Response:
    f = Form(post.form)
    day = f.day("scheduled_for", "会议日期")
    place = f.text("place", "会议地点", required=False, max_len=200)
    title = f.text("title", "会议名称", required=False, max_len=200)
    body = f.model(MeetingIn, {"scheduled_for": day, "place": place, "title": title or None},
                   {"scheduled_for": "scheduled_for", "place": "place", "title": "title"})
    if body is not None:
        try:  # the platform numbers the meeting (the next of its year)
            w = platform.app.schedule_meeting(
                post.session.principal, number=None, scheduled_for=body.scheduled_for, place=body.place,
                title=body.title, now=platform.clock())
        except DomainError as e:
            f.fail("_form", domain_message(e))
        else:
            platform.runner.catch_up(MeetingsView.name)
            return redirect(f"/meetings/{w.id}?done=meeting-scheduled")
    with platform.read_engine.connect() as conn:
        rows = list(reversed(list_meetings(conn)))
    return render(request, "meetings.html.j2", post.session, status=422, meetings=rows, errors=f.errors,
                  values=f.values)


def _meeting_page(request: Request, session: WebSession, platform: Platform, meeting_id: str, *,
                  errors: dict[str, dict[str, str]] | None = None, values: dict[str, dict[str, Any]] | None = None,
                  status: int = 200) -> HTMLResponse:
    mid = str(uuid_or_404(meeting_id, "会议"))
    names = unit_names(platform)
    with platform.read_engine.connect() as conn:
        agenda = assemble_agenda(conn, mid, today_of(platform))
        if agenda is None:
            raise WebError(404, "未找到该会议")
        resolutions = list_resolutions(conn, mid)
    is_lead = session.principal.role == "lead"
    held = agenda["meeting"]["status"] == "held"
    shown = ({"resolution"} | {f"task:{t['task_id']}" for r in resolutions for t in r["tasks"]
                               if t["status"] == "completed"} if held else {"item", "held"}) if is_lead else set()
    return render(request, "meeting.html.j2", session, status=status, units=names, m=agenda["meeting"],
                  agenda=agenda, resolutions=resolutions, errors=errors or {}, values=values or {},
                  is_lead=is_lead, task_rows=range(3), page_error=unshown_error(errors, shown))


@router.get("/meetings/{meeting_id}", response_class=HTMLResponse)
def meeting(request: Request, meeting_id: str, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    require_overview(session)
    return _meeting_page(request, session, platform, meeting_id)


def _meeting_write(request: Request, meeting_id: str, post: Posted, platform: Platform, key: str, done: str,
                   act: Callable[[Form, uuid.UUID], bool]) -> Response:
    require_lead(post.session)
    mid = uuid_or_404(meeting_id, "会议")

    def done_() -> Response:
        platform.runner.catch_up(MeetingsView.name)
        return redirect(f"/meetings/{mid}?done={done}")

    def run() -> Response:
        return form_act(post, lambda f: act(f, mid), done=done_, again=lambda f: _meeting_page(
            request, post.session, platform, meeting_id, errors={key: f.errors}, values={key: f.values}, status=422))

    return once(request, post, platform, f"/meetings/{mid}", run)


@router.post("/meetings/{meeting_id}/items", response_class=HTMLResponse)
def add_item(request: Request, meeting_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    def act(f: Form, mid: uuid.UUID) -> bool:
        title = f.text("title", "议题", max_len=200)
        detail = f.text("detail", "说明", required=False, max_len=4000)
        body = f.model(AgendaItemIn, {"title": title, "detail": detail}, {"title": "title", "detail": "detail"})
        if body is None:
            return False
        platform.app.propose_agenda_item(post.session.principal, mid, title=body.title, detail=body.detail,
                                         related_event_ids=[], now=platform.clock())
        return True

    return _meeting_write(request, meeting_id, post, platform, "item", "item-added", act)


@router.post("/meetings/{meeting_id}/held", response_class=HTMLResponse)
def record_meeting(request: Request, meeting_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    names = unit_names(platform)

    def act(f: Form, mid: uuid.UUID) -> bool:
        day = f.day("held_on", "召开日期", not_after=today_of(platform))
        present = f.units("attendance", "出席单位", names, required=True)
        minutes = f.text("minutes", "会议纪要", max_len=20000)
        absent = [u for u in names if u not in present]
        body = f.model(HeldIn, {"held_on": day, "attendance": present, "absent": absent, "minutes": minutes},
                       {"held_on": "held_on", "attendance": "attendance", "minutes": "minutes"})
        if body is None:
            return False
        platform.app.hold_meeting(post.session.principal, mid, held_on=body.held_on, attendance=list(body.attendance),
                                  absent=list(body.absent), minutes=body.minutes, now=platform.clock())
        return True

    return _meeting_write(request, meeting_id, post, platform, "held", "held", act)


@router.post("/meetings/{meeting_id}/resolutions", response_class=HTMLResponse)
def adopt_resolution(request: Request, meeting_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    names = unit_names(platform)
    today = today_of(platform)

    def act(f: Form, mid: uuid.UUID) -> bool:
        text = f.text("text", "决议内容", max_len=4000)
        items = [i for i in f.many("agenda_item_ids") if UUID_TEXT.match(i)]
        tasks = []
        for i in range(10):
            unit = f.raw(f"task_{i}_unit")
            desc = f.text(f"task_{i}_description", "任务内容", required=False, max_len=2000)
            deadline = f.day(f"task_{i}_deadline", "办结期限", required=False, not_before=today)
            f.values[f"task_{i}_unit"] = unit
            if not (unit or desc or deadline):
                continue
            if unit not in names:
                f.fail(f"task_{i}_unit", "请选择承办单位。")
            if not desc:
                f.fail(f"task_{i}_description", "请填写任务内容。")
            if deadline is None and f"task_{i}_deadline" not in f.errors:
                f.fail(f"task_{i}_deadline", "请选择办结期限。")
            tasks.append({"unit": unit, "description": desc, "deadline": deadline})
        body = f.model(ResolutionIn, {"text": text, "agenda_item_ids": items, "tasks": tasks},
                       {"text": "text", "agenda_item_ids": "text", "tasks": "text"})
        if body is None:
            return False
        platform.app.adopt_resolution(post.session.principal, mid, text=body.text,
                                      agenda_item_ids=list(body.agenda_item_ids),
                                      tasks=[t.model_dump() for t in body.tasks], now=platform.clock())
        return True

    return _meeting_write(request, meeting_id, post, platform, "resolution", "resolution", act)


@router.post("/meetings/{meeting_id}/tasks/{task_id}/verify", response_class=HTMLResponse)
def verify_task(request: Request, meeting_id: str, task_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    tid = uuid_or_404(task_id, "任务")

    def act(f: Form, mid: uuid.UUID) -> bool:
        note = f.text("note", "核销意见", required=False, max_len=2000)
        body = f.model(TaskVerificationIn, {"note": note}, {"note": "note"})
        if body is None:
            return False
        platform.app.verify_task(post.session.principal, tid, note=body.note, now=platform.clock())
        return True

    return _meeting_write(request, meeting_id, post, platform, f"task:{tid}", "task-verified", act)


@router.post("/meetings/{meeting_id}/tasks/{task_id}/reject", response_class=HTMLResponse)
def reject_task(request: Request, meeting_id: str, task_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    tid = uuid_or_404(task_id, "任务")
    today = today_of(platform)

    def act(f: Form, mid: uuid.UUID) -> bool:
        reason = f.text("reason", "退回理由", max_len=4000)
        new_deadline = f.day("new_deadline", "新的办结期限", not_before=today)
        body = f.model(TaskRejectionIn, {"reason": reason, "new_deadline": new_deadline},
                       {"reason": "reason", "new_deadline": "new_deadline"})
        if body is None:
            return False
        platform.app.reject_task(post.session.principal, tid, reason=body.reason, new_deadline=body.new_deadline,
                                 now=platform.clock())
        return True

    return _meeting_write(request, meeting_id, post, platform, f"task:{tid}", "task-rejected", act)


@router.get("/meetings/{meeting_id}/brief.{fmt}")
def meeting_brief(request: Request, meeting_id: str, fmt: str, session: SessionDep, platform: PlatformDep) -> Response:
    require_overview(session)
    if fmt not in BRIEF_MEDIA:
        raise WebError(404, "不支持该简报格式", "可下载的格式：HTML、DOCX、PDF。")
    mid = str(uuid_or_404(meeting_id, "会议"))
    today = today_of(platform)
    deadline = time.monotonic() + platform.settings.brief_wait_s  # the data and the render: one wait
    try:
        data = platform.briefs.data_for(
            (mid, today, platform.app.recorder.max_notification_id()),
            lambda: platform.assemble_brief(mid, today), wait_s=platform.settings.brief_wait_s)
        if data is None:
            raise WebError(404, "未找到该会议")
        body = platform.briefs.get(data, fmt, wait_s=max(0.0, deadline - time.monotonic()))
    except StillBuilding:
        body = None
    except (ImportError, OSError):  # e.g. the PDF engine or its fonts are not installed here
        raise WebError(503, "该格式的简报暂时无法生成", "请改为下载 HTML 版，或请管理员安装简报所需的组件。") from None
    if body is None:
        return render(request, "generating.html.j2", session, status=202, refresh_s=RETRY_AFTER_S,
                      title="简报正在生成", back=f"/meetings/{mid}")
    assert data is not None  # the body came from it
    return Response(body, media_type=BRIEF_MEDIA[fmt], headers={
        "Content-Disposition": brief_disposition(data["meeting"]["year"], data["meeting"]["number"], fmt),
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def brief_disposition(year: int, number: int, fmt: str) -> str:
    """The HTML brief opens in the browser; Word and PDF download. The file is named as officials
    name it (2026年第四次联席会议简报.docx) in RFC 5987's filename*, with an ASCII name for old clients."""
    name = f"{year}年第{labels.chinese_number(number)}次联席会议简报.{fmt}"
    how = "inline" if fmt == "html" else "attachment"
    return f"{how}; filename=\"brief-{year}-{number}.{fmt}\"; filename*=UTF-8''{quote(name, safe='')}"
