"""A unit's ledger (台账) and the duty-log form that feeds it: the ledger view sits beside the
duty-log POST, as in the API."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from contracts.api import DutyLogIn
from events.errors import DomainError
from projections.catalogue_view import duties_in_force, get_agency, list_schools
from projections.ledger import LedgerView, live_ledger
from projections.meetings import task_stats
from projections.periods import Period
from projections.rectification_board import RectificationBoard, unit_stats
from services.api.deps import PlatformDep, today_of
from services.documents import charts
from services.documents.charts import Bar, percent
from services.platform import Platform
from services.web.base import (
    PostedDep,
    SessionDep,
    WebError,
    domain_message,
    redirect,
    render,
    require_unit_reader,
    require_unit_writer,
    unit_names,
)
from services.web.forms import EVIDENCE, EVIDENCE_HINT, UUID_TEXT, Form
from services.web.once import form_key
from services.web.pages.evidence import attach_files
from services.web.pages.hazards import hazard_choices, report_hazards

router = APIRouter(include_in_schema=False)


def _period(text: str | None, today: date) -> Period:
    if text:
        try:
            return Period.parse(text)
        except ValueError:
            raise WebError(422, "统计期格式不正确",
                           "请使用 年（2025）、学期（2025-S1）、季度（2025-Q2）或月份（2025-06）。") from None
    return Period.year_of(today)


def ledger_charts(ledger: dict[str, Any], period: Period, today: date) -> dict[str, Any]:
    months = [m for m in period.months() if m <= today.isoformat()[:7]]
    per_month = [(m, sum(d["by_month"].get(m, 0) for d in ledger["duties"])) for m in months]
    rows = []
    for d in ledger["duties"]:
        if d["schools_applicable"] is None:
            rows.append(Bar(d["text"], (None,), f"不针对学校 · 履职 {d['performed_count']} 次"))
        else:
            rows.append(Bar(d["text"], (d["coverage_ratio"] or 0.0,),
                            f"{percent(d['coverage_ratio'])}（{d['schools_covered']}/{d['schools_applicable']} 所）"))
    return {
        "months": charts.month_bars(f"{period.label} 每月履职次数", per_month),
        "coverage": charts.hbars(f"{period.label} 各项职责的学校覆盖率", rows, maximum=1.0),
    }


@router.get("/units/{code}", response_class=HTMLResponse)
def unit_ledger(
    request: Request, code: str, session: SessionDep, platform: PlatformDep,
    period: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    names = unit_names(platform)
    require_unit_reader(session, code, names)
    today = today_of(platform)
    chosen = _period(period, today)
    with platform.read_engine.connect() as conn:
        if get_agency(conn, code) is None:
            raise WebError(404, "未找到该成员单位")
        ledger = live_ledger(conn, code, chosen, today)
        rect = unit_stats(conn, code, today=today, period_start=chosen.start, period_end=chosen.end)
        tasks = task_stats(conn, code, today, chosen.start, chosen.end)
    texts = {d["duty_code"]: d["text"] for d in ledger["duties"]}
    y = today.year
    periods = [(str(y), f"{y} 年全年"), (f"{y}-S1", f"{y} 年上半年"), (f"{y}-S2", f"{y} 年下半年"),
               *[(f"{y}-Q{q}", f"{y} 年第{q}季度") for q in range(1, 5)], (str(y - 1), f"{y - 1} 年全年")]
    return render(request, "ledger.html.j2", session, units=names, code=code, ledger=ledger, period=chosen,
                  periods=periods,
                  charts=ledger_charts(ledger, chosen, today), rect=rect, tasks=tasks,
                  blind=[(c, texts.get(c, c)) for c in ledger["blind_spots"]],
                  can_write=session.principal.can_write and session.principal.agency == code)


def _log_context(platform: Platform, code: str, today: date) -> dict[str, Any]:
    with platform.read_engine.connect() as conn:
        duties = duties_in_force(conn, code, today)
        schools = list_schools(conn, after=None, limit=5000)
    towns: dict[str, list[dict[str, Any]]] = {}
    for s in sorted(schools, key=lambda s: (s["town"], s["school_id"])):
        towns.setdefault(s["town"], []).append(s)
    categories, severities = hazard_choices()
    return {"duties": duties, "towns": towns, "categories": categories, "severities": severities}


@router.get("/units/{code}/log", response_class=HTMLResponse)
def log_form(request: Request, code: str, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    names = unit_names(platform)
    require_unit_writer(session, code, names)
    today = today_of(platform)
    return render(request, "log_form.html.j2", session, units=names, code=code, errors={},
                  values={"occurred_on": today.isoformat(), "school_ids": [], "form_id": str(uuid.uuid4())},
                  **_log_context(platform, code, today))


@router.post("/units/{code}/log", response_class=HTMLResponse)
def log_duty(request: Request, code: str, post: PostedDep, platform: PlatformDep) -> Response:
    names = unit_names(platform)
    require_unit_writer(post.session, code, names)
    today = today_of(platform)
    ctx = _log_context(platform, code, today)
    f = Form(post.form)
    duty = f.choice("duty_code", "职责", {d["code"] for d in ctx["duties"]},
                    wrong="所选职责不是本单位当前的职责，请从列表中选择。")
    day = f.day("occurred_on", "履职日期", not_after=today)
    schools = f.schools("school_ids", "学校", platform.app.school_exists)
    summary = f.text("summary", "工作摘要", max_len=4000)
    count = f.integer("findings_count", "发现问题数", low=0, high=100_000, default=0)
    findings_text = f.text("findings_text", "问题说明", required=False, max_len=2000)
    evidence = f.lines("evidence", "佐证材料", max_len=500, pattern=EVIDENCE, pattern_hint=EVIDENCE_HINT)
    form_id = f.raw("form_id")
    f.values["form_id"] = form_id if UUID_TEXT.match(form_id) else str(uuid.uuid4())
    if count and count > 0 and not findings_text:
        f.fail("findings_text", "发现了问题时，请简要说明问题。")
    # The findings may go on as hazards (隐患上报) in the same submission: one per school named.
    as_hazards = f.raw("findings_as_hazards") == "yes"
    f.values["findings_as_hazards"] = "yes" if as_hazards else ""
    category = severity = ""
    if as_hazards:
        category = f.choice("hazard_category", "隐患类别", ctx["categories"])
        severity = f.choice("hazard_severity", "隐患等级", ctx["severities"])
        if not count:
            f.fail("findings_count", "要把发现的问题上报为隐患，发现问题数须大于 0。")
        if not schools:
            f.fail("school_ids", "要把发现的问题上报为隐患，请选择问题所在的学校。")
    if f.ok:  # files are stored only for a form that is otherwise fine
        evidence = [*evidence, *attach_files(platform, post, f)]
    body = f.model(DutyLogIn, {
        "duty_code": duty, "school_ids": schools, "occurred_on": day, "summary": summary,
        "findings": {"count": count or 0, "text": findings_text}, "evidence": evidence,
    }, {"duty_code": "duty_code", "school_ids": "school_ids", "occurred_on": "occurred_on",
        "summary": "summary", "findings": "findings_count", "evidence": "evidence"})
    if body is not None and f.ok:
        # Derived from what was submitted (services/web/once.py), so a double submit and a
        # Back-and-resubmit of a restored form are a replay, never a second record.
        key = f"web-form:{form_key(post.session.principal, request.url.path, post.form, today)}"
        try:
            platform.app.log_duty(
                post.session.principal, duty_code=body.duty_code, school_ids=list(body.school_ids),
                occurred_on=body.occurred_on, summary=body.summary,
                findings={"count": body.findings.count, "text": body.findings.text}, evidence=list(body.evidence),
                idempotency_key=key, body=body.model_dump(mode="json"), now=platform.clock(),
            )
            if as_hazards:  # each hazard keyed off the same submission: a replay stores none twice
                report_hazards(platform, post, key=key, school_ids=list(body.school_ids), category=category,
                               severity=severity, description=body.findings.text, found_on=body.occurred_on,
                               evidence=list(body.evidence))
        except DomainError as e:
            f.fail("_form", domain_message(e))
        else:
            platform.runner.catch_up(LedgerView.name)
            if as_hazards:
                platform.runner.catch_up(RectificationBoard.name)
                return redirect(f"/units/{quote(code)}?done=duty-logged-hazards")
            return redirect(f"/units/{quote(code)}?done=duty-logged")
    return render(request, "log_form.html.j2", post.session, status=422, units=names, code=code,
                  errors=f.errors, values=f.values, **ctx)
