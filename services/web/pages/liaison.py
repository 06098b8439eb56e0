"""A liaison's remaining loops: proposing agenda items for a scheduled joint meeting (提请议题)
and answering the petitions assigned to the unit (信访答复). Each form calls the same use case as
the API (propose_agenda_item, answer_petition) through services/web/once.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from contracts.api_logistics import PetitionAnswerIn
from contracts.api_meetings import AgendaItemIn
from events.errors import DomainError
from projections.meetings import MeetingsView, list_meetings
from projections.petitions import PetitionsView, get_petition, list_petitions
from services.api.deps import PlatformDep, today_of
from services.platform import Platform
from services.web.base import (
    Posted,
    PostedDep,
    SessionDep,
    WebError,
    domain_message,
    once,
    redirect,
    render,
    require_unit_reader,
    require_unit_writer,
    unit_names,
    uuid_or_404,
)
from services.web.forms import Form
from services.web.session import WebSession

router = APIRouter(include_in_schema=False)


# -- proposing agenda items ------------------------------------------------------------------


def _agenda_page(request: Request, session: WebSession, platform: Platform, code: str, *,
                 errors: dict[str, str] | None = None, values: dict[str, Any] | None = None,
                 status: int = 200) -> HTMLResponse:
    names = unit_names(platform)
    require_unit_reader(session, code, names)
    with platform.read_engine.connect() as conn:
        upcoming = [m for m in list_meetings(conn) if m["status"] == "scheduled"]
    p = session.principal
    return render(request, "unit_agenda.html.j2", session, status=status, units=names, code=code,
                  meetings=upcoming, errors=errors or {}, values=values or {},
                  can_write=p.can_write and p.agency == code)


@router.get("/units/{code}/agenda", response_class=HTMLResponse)
def unit_agenda(request: Request, code: str, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    return _agenda_page(request, session, platform, code)


@router.post("/units/{code}/agenda", response_class=HTMLResponse)
def propose_item(request: Request, code: str, post: PostedDep, platform: PlatformDep) -> Response:
    require_unit_writer(post.session, code, unit_names(platform))

    def run() -> Response:
        with platform.read_engine.connect() as conn:
            upcoming = {m["meeting_id"] for m in list_meetings(conn) if m["status"] == "scheduled"}
        f = Form(post.form)
        meeting_id = f.choice("meeting_id", "会议", upcoming, wrong="请选择一次尚未召开的会议。")
        title = f.text("title", "议题", max_len=200)
        detail = f.text("detail", "说明", required=False, max_len=4000)
        body = f.model(AgendaItemIn, {"title": title, "detail": detail}, {"title": "title", "detail": "detail"})
        if body is not None and f.ok:
            try:
                platform.app.propose_agenda_item(post.session.principal, uuid_or_404(meeting_id, "会议"),
                                                 title=body.title, detail=body.detail, related_event_ids=[],
                                                 now=platform.clock())
            except DomainError as e:
                f.fail("_form", domain_message(e))
            else:
                platform.runner.catch_up(MeetingsView.name)
                return redirect(f"/units/{quote(code)}/agenda?done=proposed")
        return _agenda_page(request, post.session, platform, code, errors=f.errors, values=f.values, status=422)

    return once(request, post, platform, f"/units/{quote(code)}/agenda", run)


# -- answering petitions -----------------------------------------------------------------------


def _petitions_page(request: Request, session: WebSession, platform: Platform, code: str, *,
                    errors: dict[str, dict[str, str]] | None = None, values: dict[str, dict[str, Any]] | None = None,
                    status: int = 200) -> HTMLResponse:
    names = unit_names(platform)
    require_unit_reader(session, code, names)
    with platform.read_engine.connect() as conn:
        rows = [r for r in list_petitions(conn, unit=code, limit=500) if r["handling_unit"] == code]
    p = session.principal
    return render(request, "unit_petitions.html.j2", session, status=status, units=names, code=code,
                  open_rows=[r for r in rows if r["status"] == "received"],
                  done_rows=[r for r in rows if r["status"] != "received"][:50],
                  errors=errors or {}, values=values or {},
                  can_write=p.can_write and p.agency == code)


@router.get("/units/{code}/petitions", response_class=HTMLResponse)
def unit_petitions(request: Request, code: str, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    return _petitions_page(request, session, platform, code)


@router.post("/units/{code}/petitions/{petition_id}/answer", response_class=HTMLResponse)
def answer_petition(request: Request, code: str, petition_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    require_unit_writer(post.session, code, unit_names(platform))
    pid = str(uuid_or_404(petition_id, "信访件"))
    with platform.read_engine.connect() as conn:
        row = get_petition(conn, pid)
    if row is None or row["handling_unit"] != code:
        raise WebError(404, "未找到该信访件", "只能答复交由本单位办理的信访件。")
    today = today_of(platform)
    form_name = f"petition:{pid}"

    def run(p: Posted = post) -> Response:
        f = Form(p.form)
        answered_on = f.day("answered_on", "答复日期", not_after=today)
        text = f.text("answer", "答复意见", max_len=2000)
        body = f.model(PetitionAnswerIn, {"answered_on": answered_on, "answer": text},
                       {"answered_on": "answered_on", "answer": "answer"}) if answered_on else None
        if body is not None and f.ok:
            try:
                platform.app.answer_petition(p.session.principal, petition=pid, answered_on=body.answered_on,
                                             answer=body.answer, now=platform.clock())
            except DomainError as e:
                f.fail("_form", domain_message(e))
            else:
                platform.runner.catch_up(PetitionsView.name)
                return redirect(f"/units/{quote(code)}/petitions?done=answered")
        return _petitions_page(request, p.session, platform, code, errors={form_name: f.errors},
                               values={form_name: f.values}, status=422)

    return once(request, post, platform, f"/units/{quote(code)}/petitions", run)
