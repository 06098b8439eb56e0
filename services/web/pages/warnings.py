"""Warnings (预警): a unit acknowledges the ones sent to it; the lead sees every unit's response."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from contracts.api_meetings import AcknowledgementIn
from events.errors import DomainError
from projections.warning_response import WarningResponseView, recipient_status, response_by_recipient, warnings_between
from services.api.deps import PlatformDep, today_of
from services.documents import charts
from services.documents.charts import Bar, percent
from services.platform import Platform
from services.web.base import (
    Posted,
    PostedDep,
    SessionDep,
    domain_message,
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
from services.web.forms import Form
from services.web.session import WebSession

router = APIRouter(include_in_schema=False)


# -- a unit's warnings ---------------------------------------------------------------------


def _unit_warnings(platform: Platform, code: str, today: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(waiting for this unit's acknowledgement, already acknowledged by it) this year."""
    pending: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    with platform.read_engine.connect() as conn:
        for w in reversed(warnings_between(conn, f"{today.year:04d}-01-01", today.isoformat())):
            mine = next((r for r in recipient_status(conn, w["warning_id"])
                         if r["kind"] == "unit" and r["recipient"] == code), None)
            if mine is None:
                continue
            (done if mine["acked_at"] else pending).append({**w, "mine": mine})
    return pending, done


def _warnings_page(request: Request, session: WebSession, platform: Platform, code: str, names: dict[str, str],
                   **ctx: Any) -> HTMLResponse:
    pending, done = _unit_warnings(platform, code, today_of(platform))
    ctx.setdefault("errors", {})
    ctx.setdefault("values", {})
    can_write = session.principal.can_write and session.principal.agency == code
    shown = {w["warning_id"] for w in pending} if can_write else set()
    return render(request, "unit_warnings.html.j2", session, units=names, code=code, pending=pending, done=done,
                  can_write=can_write, page_error=unshown_error(ctx["errors"], shown), **ctx)


@router.get("/units/{code}/warnings", response_class=HTMLResponse)
def unit_warnings(request: Request, code: str, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    names = unit_names(platform)
    require_unit_reader(session, code, names)
    return _warnings_page(request, session, platform, code, names)


@router.post("/units/{code}/warnings/{warning_id}/ack", response_class=HTMLResponse)
def acknowledge(request: Request, code: str, warning_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    names = unit_names(platform)
    require_unit_writer(post.session, code, names)
    wid = uuid_or_404(warning_id, "预警")
    return once(request, post, platform, f"/units/{quote(code)}/warnings",
                lambda: _acknowledge(request, code, wid, post, platform, names))


def _acknowledge(request: Request, code: str, wid: uuid.UUID, post: Posted, platform: Platform,
                 names: dict[str, str]) -> Response:
    f = Form(post.form)
    measures = f.lines("measures_taken", "已采取的措施", required=True, max_items=20, max_len=1000)
    note = f.text("note", "备注", required=False, max_len=2000)
    body = f.model(AcknowledgementIn, {"recipient_kind": "unit", "measures_taken": measures, "note": note},
                   {"measures_taken": "measures_taken", "note": "note"})
    if body is not None:
        try:
            platform.app.acknowledge_warning(post.session.principal, wid, recipient_kind="unit", recipient=None,
                                             measures_taken=list(body.measures_taken), note=body.note,
                                             now=platform.clock())
        except DomainError as e:
            f.fail("_form", domain_message(e))
        else:
            platform.runner.catch_up(WarningResponseView.name)
            return redirect(f"/units/{quote(code)}/warnings?done=acknowledged")
    return _warnings_page(request, post.session, platform, code, names, status=422,
                          errors={str(wid): f.errors}, values={str(wid): f.values})


# -- warnings overview ---------------------------------------------------------------------


@router.get("/warnings", response_class=HTMLResponse)
def warnings_overview(request: Request, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    require_overview(session)
    names = unit_names(platform)
    today = today_of(platform)
    start = f"{today.year:04d}-01-01"
    with platform.read_engine.connect() as conn:
        rows = list(reversed(warnings_between(conn, start, today.isoformat())))
        by_unit = response_by_recipient(conn, "unit", start, today.isoformat())
    bars = [Bar(names.get(r["recipient"], r["recipient"]), (r["rate"],),
                f"{percent(r['rate'])}（{r['acknowledged']}/{r['received']}）")
            for r in sorted(by_unit, key=lambda r: (r["rate"] if r["rate"] is not None else -1, r["recipient"]))]
    chart = charts.hbars(f"{today.year} 年各单位预警签收率", bars, maximum=1.0, empty="本年尚无预警")
    return render(request, "warnings.html.j2", session, units=names, warnings=rows, chart=chart)
