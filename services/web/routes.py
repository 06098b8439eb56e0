"""The pages (网页端): server-rendered HTML from the same FastAPI app and the same read models
as the API. Liaisons see and write their own unit's pages; the lead bureau sees every unit
and runs meetings; auditors see what the lead sees, read-only.

Every page reads through the projections' query functions and writes through the
application's use-case methods, exactly as the API routes do; nothing here has SQL of its own
beyond the session table (services/web/session.py).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.datastructures import FormData

from contracts.api import DutyLogIn
from contracts.api_meetings import (
    AcknowledgementIn,
    AgendaItemIn,
    HeldIn,
    MeetingIn,
    ResolutionIn,
    TaskCompletionIn,
    TaskProgressIn,
)
from contracts.api_rectifications import CompletionIn, ProgressIn
from contracts.catalogue import default_catalogue
from events.base import local_date
from events.errors import Conflict, DomainError, InvariantViolated, NotFound, NotPermitted
from projections.base import LoggedEvent
from projections.campaign_progress import campaigns_overview
from projections.catalogue_view import duties_in_force, get_agency, list_agencies, list_schools
from projections.ledger import LedgerView, live_ledger
from projections.meetings import (
    MeetingsView,
    assemble_agenda,
    list_meetings,
    list_resolutions,
    list_tasks,
    next_number,
    task_stats,
)
from projections.periods import Period
from projections.rectification_board import RectificationBoard, get_item, list_items, unit_stats
from projections.warning_response import WarningResponseView, recipient_status, response_by_recipient, warnings_between
from services.documents import charts, labels
from services.documents.charts import Bar, percent
from services.platform import Platform
from services.security.audit import note_principal, note_target_unit
from services.web.forms import EVIDENCE, Form
from services.web.session import (
    SESSION_COOKIE,
    SESSION_TTL,
    SIGNIN_COOKIE,
    WebSession,
    new_secret,
    same,
    sessions_for,
)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE.parent / "templates" / "web"
STATIC = HERE.parent / "static"

router = APIRouter(include_in_schema=False)

env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True)
env.filters["pct"] = percent
env.globals["labels"] = labels

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}

# ?done=<key> after a successful POST (Post/Redirect/Get); only these texts are ever shown.
DONE = {
    "signed-out": "您已安全退出。",
    "duty-logged": "履职记录已保存，台账已更新。",
    "progress": "进展已报送。",
    "completion": "完成情况已回告，等待牵头单位核验。",
    "acknowledged": "预警已签收。",
    "meeting-scheduled": "会议已安排。议程草案已根据日志自动汇总。",
    "item-added": "议题已添加。",
    "held": "会议情况已记录。",
    "resolution": "决议已通过，任务已交办。",
}

_UUID = re.compile(r"^[0-9a-fA-F-]{32,36}$")


class WebError(Exception):
    """A page-level failure, shown as an HTML error page."""

    def __init__(self, status: int, title: str, message: str = "") -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.message = message


class SignInNeeded(Exception):
    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


# -- plumbing ------------------------------------------------------------------------------


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def current_session(request: Request, platform: PlatformDep) -> WebSession:
    s = sessions_for(platform).get(request.cookies.get(SESSION_COOKIE), platform.clock())
    if s is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(target)
    note_principal(s.principal)  # the audit trail names who acted
    return s


SessionDep = Annotated[WebSession, Depends(current_session)]


async def read_form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=300)


FormDep = Annotated[FormData, Depends(read_form)]


@dataclass(frozen=True)
class Posted:
    session: WebSession
    form: FormData


def posted(session: SessionDep, form: FormDep) -> Posted:
    """A POST from a signed-in page: its CSRF token must be the session's."""
    token = form.get("csrf_token")
    if not same(token if isinstance(token, str) else None, session.csrf):
        raise WebError(403, "表单已失效", "页面的安全校验码（CSRF）不正确或已过期。请返回并刷新页面后重新提交。")
    return Posted(session, form)


PostedDep = Annotated[Posted, Depends(posted)]


def hazard_categories() -> dict[str, str]:
    return {c.code: c.name for c in default_catalogue().hazards.categories}


def today_of(platform: Platform) -> date:
    return local_date(platform.clock())


def unit_names(platform: Platform) -> dict[str, str]:
    with platform.read_engine.connect() as conn:
        return {a["code"]: a["name"] for a in list_agencies(conn)}


def nav_for(session: WebSession | None) -> list[tuple[str, str]]:
    if session is None:
        return []
    p = session.principal
    own = f"/units/{quote(p.agency)}"
    unit_pages = [(own, "本单位台账"), (f"{own}/log", "填报履职"), (f"{own}/work", "整改与任务"),
                  (f"{own}/warnings", "预警签收")]
    if p.role == "liaison":
        return unit_pages
    overview = [("/dashboard", "总览"), ("/rectifications", "整改台账"), ("/meetings", "联席会议"),
                ("/warnings", "预警响应"), ("/review", "年度考核"), ("/events", "事件日志")]
    if p.role == "auditor":
        return [*overview, ("/audit", "访问审计")]
    return [*overview, *unit_pages[:3]]


def render(request: Request, template: str, session: WebSession | None, *, status: int = 200,
           **ctx: Any) -> HTMLResponse:
    platform = get_platform(request)
    done = request.query_params.get("done")
    html = env.get_template(template).render(
        request=request, user=session.principal if session else None, csrf=session.csrf if session else "",
        units=ctx.pop("units", None) or unit_names(platform), notice=DONE.get(done or ""),
        page_error=ctx.pop("page_error", None),
        today=today_of(platform).isoformat(), path=request.url.path, nav=nav_for(session), **ctx,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def domain_message(e: DomainError) -> str:
    """The domain's rules speak English in code; the page names the kind of refusal in Chinese."""
    kind = ("无权执行此操作" if isinstance(e, NotPermitted) else "与已有记录冲突" if isinstance(e, Conflict)
            else "未找到" if isinstance(e, NotFound) else "违反业务规则" if isinstance(e, InvariantViolated)
            else "操作未完成")
    return f"{kind}：{e.detail}"


def unshown_error(errors: dict[str, dict[str, str]] | None, shown: set[str]) -> str | None:
    """The message of a failed form the page no longer shows (its item moved on, or was never
    the unit's), so it goes at the top of the page instead of vanishing."""
    for key, errs in (errors or {}).items():
        form = key.rsplit(":", 1)[0] if key.count(":") == 2 else key
        if errs and form not in shown:
            return errs.get("_form") or "提交未成功：该事项当前不能办理此操作。"
    return None


def home_of(session: WebSession) -> str:
    p = session.principal
    return "/dashboard" if p.can_read_all else f"/units/{quote(p.agency)}"


# -- access --------------------------------------------------------------------------------


def require_unit_reader(session: WebSession, code: str, names: dict[str, str]) -> None:
    note_target_unit(code)
    p = session.principal
    if not p.can_read_all and p.agency != code:
        raise WebError(403, "无权查看其他单位的页面",
                       f"您以「{names.get(p.agency, p.agency)}」联络员身份登录，只能查看和填报本单位的台账。")


def require_unit_writer(session: WebSession, code: str, names: dict[str, str]) -> None:
    require_unit_reader(session, code, names)
    p = session.principal
    if not p.can_write:
        raise WebError(403, "只读账号不能提交", "考核/纪检账号只能查看，不能填报或修改。")
    if p.agency != code:
        raise WebError(403, "只能为本单位填报", "履职记录、进展和签收只能由责任单位本身填报。")


def require_overview(session: WebSession) -> None:
    note_target_unit("*")
    if not session.principal.can_read_all:
        raise WebError(403, "此页面仅限牵头单位和考核组查看", "联络员请使用本单位的台账页面。")


def require_lead(session: WebSession) -> None:
    require_overview(session)
    if session.principal.role != "lead":
        raise WebError(403, "只读账号不能提交", "只有牵头单位（教育局）可以安排和记录联席会议。")


def _uuid(text: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise WebError(404, f"未找到该{what}") from None


# -- sign-in -------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str | None:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _signin_page(request: Request, *, error: str | None = None, status: int = 200) -> HTMLResponse:
    token = request.cookies.get(SIGNIN_COOKIE) or new_secret()
    resp = render(request, "signin.html.j2", None, status=status, error=error, signin_csrf=token,
                  next=_safe_next(request.query_params.get("next")) or "", units={})
    resp.set_cookie(SIGNIN_COOKIE, token, max_age=3600, httponly=True, samesite="lax", path="/signin",
                    secure=request.url.scheme == "https")
    return resp


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request) -> HTMLResponse:
    return _signin_page(request)


@router.post("/signin", response_class=HTMLResponse)
def signin(request: Request, platform: PlatformDep, form: FormDep) -> Response:
    token = form.get("csrf_token")
    if not same(token if isinstance(token, str) else None, request.cookies.get(SIGNIN_COOKIE)):
        return _signin_page(request, error="登录页面已过期，请重新输入凭证后提交。", status=403)
    credential = form.get("token")
    credential = credential.strip() if isinstance(credential, str) else ""
    if not credential:
        return _signin_page(request, error="请输入单位凭证。", status=422)
    principal = platform.tokens.authenticate(credential) if len(credential) <= 200 else None
    if principal is None:
        return _signin_page(request, error="凭证无效或已被吊销，请向牵头单位管理员核实。", status=401)
    note_principal(principal)
    session_id, session = sessions_for(platform).start(principal, platform.clock())
    target = _safe_next(form.get("next") if isinstance(form.get("next"), str) else None)  # type: ignore[arg-type]
    resp = redirect(target or home_of(session))
    resp.set_cookie(SESSION_COOKIE, session_id, max_age=int(SESSION_TTL.total_seconds()), httponly=True,
                    samesite="lax", path="/", secure=request.url.scheme == "https")
    resp.delete_cookie(SIGNIN_COOKIE, path="/signin")
    return resp


@router.post("/signout")
def signout(post: PostedDep, platform: PlatformDep) -> Response:
    sessions_for(platform).end(post.session.session_hash, platform.clock())
    resp = redirect("/signin?done=signed-out")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/")
def home(request: Request, platform: PlatformDep) -> Response:
    s = sessions_for(platform).get(request.cookies.get(SESSION_COOKIE), platform.clock())
    return redirect(home_of(s) if s else "/signin")


# -- a unit's ledger -----------------------------------------------------------------------


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
            rows.append(Bar(d["text"], (None,), f"不针对学校 · 履职 {d['performed_count']} 次", d["duty_code"]))
        else:
            rows.append(Bar(d["text"], (d["coverage_ratio"] or 0.0,),
                            f"{percent(d['coverage_ratio'])}（{d['schools_covered']}/{d['schools_applicable']} 所）",
                            d["duty_code"]))
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
    return {"duties": duties, "towns": towns}


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
    evidence = f.lines("evidence", "佐证材料", max_len=500, pattern=EVIDENCE,
                       pattern_hint="每行填写一个链接或文件哈希，中间不能有空格。")
    form_id = f.raw("form_id")
    f.values["form_id"] = form_id if _UUID.match(form_id) else str(uuid.uuid4())
    if count and count > 0 and not findings_text:
        f.fail("findings_text", "发现了问题时，请简要说明问题。")
    body = f.model(DutyLogIn, {
        "duty_code": duty, "school_ids": schools, "occurred_on": day, "summary": summary,
        "findings": {"count": count or 0, "text": findings_text}, "evidence": evidence,
    }, {"duty_code": "duty_code", "school_ids": "school_ids", "occurred_on": "occurred_on",
        "summary": "summary", "findings": "findings_count", "evidence": "evidence"})
    if body is not None:
        try:
            platform.app.log_duty(
                post.session.principal, duty_code=body.duty_code, school_ids=list(body.school_ids),
                occurred_on=body.occurred_on, summary=body.summary,
                findings={"count": body.findings.count, "text": body.findings.text}, evidence=list(body.evidence),
                # The form's id makes a double submit a replay, never a second record.
                idempotency_key=f"web-form:{f.values['form_id']}", body=body.model_dump(mode="json"),
                now=platform.clock(),
            )
        except DomainError as e:
            f.fail("_form", domain_message(e))
        else:
            platform.runner.catch_up(LedgerView.name)
            return redirect(f"/units/{quote(code)}?done=duty-logged")
    return render(request, "log_form.html.j2", post.session, status=422, units=names, code=code,
                  errors=f.errors, values=f.values, **ctx)


# -- a unit's open work: rectifications and tasks ------------------------------------------


WORKABLE = ("assigned", "in_progress", "reopened")


def _work_page(request: Request, session: WebSession, platform: PlatformDep, code: str, names: dict[str, str], *,
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
    f = Form(post.form)
    try:
        done = act(f)
    except DomainError as e:
        f.fail("_form", domain_message(e))
        done = False
    if done and f.ok:
        platform.runner.catch_up(RectificationBoard.name if key.startswith("rect") else MeetingsView.name)
        action = "completion" if key.endswith("completion") else "progress"
        return redirect(f"/units/{quote(code)}/work?done={action}")
    return _work_page(request, post.session, platform, code, names, errors={key: f.errors},
                      values={key: f.values}, status=422)


@router.post("/units/{code}/rectifications/{item_id}/progress", response_class=HTMLResponse)
def rect_progress(request: Request, code: str, item_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    iid = _uuid(item_id, "整改事项")

    def act(f: Form) -> bool:
        note = f.text("note", "进展说明")
        pct = f.integer("percent", "完成进度", low=0, high=100)
        evidence = f.lines("evidence", "佐证材料", max_len=500, pattern=EVIDENCE,
                           pattern_hint="每行填写一个链接或文件哈希，中间不能有空格。")
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
    iid = _uuid(item_id, "整改事项")

    def act(f: Form) -> bool:
        summary = f.text("summary", "整改情况")
        evidence = f.lines("evidence", "佐证材料", required=True, max_len=500, pattern=EVIDENCE,
                           pattern_hint="每行填写一个链接或文件哈希，中间不能有空格。")
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
    tid = _uuid(task_id, "任务")

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
    tid = _uuid(task_id, "任务")

    def act(f: Form) -> bool:
        summary = f.text("summary", "完成情况")
        evidence = f.lines("evidence", "佐证材料", max_len=500, pattern=EVIDENCE,
                           pattern_hint="每行填写一个链接或文件哈希，中间不能有空格。")
        body = f.model(TaskCompletionIn, {"summary": summary, "evidence": evidence},
                       {"summary": "summary", "evidence": "evidence"})
        if body is None:
            return False
        platform.app.complete_task(post.session.principal, tid, summary=body.summary, evidence=list(body.evidence),
                                   occurred_on=None, now=platform.clock())
        return True

    return _work_write(request, code, post, platform, f"task:{tid}:completion", act)


# -- a unit's warnings ---------------------------------------------------------------------


def _unit_warnings(platform: Platform, code: str, today: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(waiting for this unit's acknowledgement, already acknowledged by it) this year."""
    pending: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    with platform.read_engine.connect() as conn:
        for w in reversed(warnings_between(conn, f"{today.year}-01-01", today.isoformat())):
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
    wid = _uuid(warning_id, "预警")
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


# -- the lead's dashboard ------------------------------------------------------------------


def dashboard_data(conn: sa.Connection, today: date, names: dict[str, str]) -> dict[str, Any]:
    year = Period.year_of(today)
    start, end = year.start.isoformat(), today.isoformat()
    units: list[dict[str, Any]] = []
    for code, name in names.items():
        rect = unit_stats(conn, code, today=today, period_start=year.start, period_end=year.end)
        tasks = task_stats(conn, code, today, year.start, year.end)
        units.append({"code": code, "name": name, "rect": rect, "tasks": tasks})
    on_time = [Bar(u["name"], (u["rect"]["on_time_rate"],),
                   (f"{percent(u['rect']['on_time_rate'])}（{u['rect']['closed_on_time']}/{u['rect']['closed']}）"
                    if u["rect"]["closed"] else "本年尚无销号"), u["code"])
               for u in units if u["rect"]["closed"] or u["rect"]["open"]]
    late = []
    for u in units:
        overdue = u["rect"]["overdue"] + u["tasks"]["overdue"]
        escalated = u["rect"]["escalated"] + u["tasks"]["escalated"]
        if overdue or escalated:
            split = f"整改 {u['rect']['overdue']}、任务 {u['tasks']['overdue']}"
            late.append(Bar(u["name"], (overdue, escalated), f"逾期 {overdue}（{split}）· 升级 {escalated}", u["code"]))
    late.sort(key=lambda b: (-(b.values[0] or 0), -(b.values[1] or 0), b.label))
    campaigns = campaigns_overview(conn, today)
    phases = []
    for c in campaigns:
        # The last phase whose deadline has passed beside the phase under way.
        ps = c["phase_status"]
        done = next((x for x in reversed(ps) if x["state"] == "closed"), None)
        now = next((x for x in ps if x["state"] == "open"), None)
        if done is None and now is None:
            continue
        parts = [f"{x['name'].split('、')[0]} {percent(x['completion'])}" for x in (done, now) if x is not None]
        behind = (now or done or {}).get("missed", 0) + (now or done or {}).get("pending", 0)
        phases.append(Bar(c["name"], (done["completion"] if done else None, now["completion"] if now else None),
                          "；".join(parts) + f"（未完成 {behind} 所）"))
    response = response_by_recipient(conn, "unit", start, end)
    warn = []
    for r in sorted(response, key=lambda r: (r["rate"] if r["rate"] is not None else -1, r["recipient"])):
        median = r["median_latency_minutes"]
        warn.append(Bar(names.get(r["recipient"], r["recipient"]), (r["rate"],),
                        f"{percent(r['rate'])}（{r['acknowledged']}/{r['received']}）"
                        + (f" · 中位 {median:.0f} 分钟" if median is not None else "")))
    totals = {
        "open": sum(u["rect"]["open"] for u in units), "overdue": sum(u["rect"]["overdue"] for u in units),
        "escalated": sum(u["rect"]["escalated"] for u in units),
        "tasks_open": sum(u["tasks"]["open"] for u in units),
        "tasks_overdue": sum(u["tasks"]["overdue"] for u in units),
        "campaigns": len(campaigns),
    }
    return {
        "unit_rows": units, "totals": totals, "year": year, "campaigns": campaigns,
        "charts": {
            "on_time": charts.hbars(f"{year.label} 年各单位整改按期销号率", on_time, maximum=1.0,
                                    empty="本年尚无整改事项"),
            "late": charts.hbars("各单位逾期与升级督办事项（整改 + 决议任务）", late, series=("逾期", "升级督办"),
                                 empty="目前没有逾期事项"),
            "campaigns": charts.hbars(f"{year.label} 年专项整治各阶段完成率", phases, maximum=1.0,
                                      series=("已截止阶段", "进行中阶段"),
                                      empty="本年尚未启动专项整治"),
            "warnings": charts.hbars(f"{year.label} 年各单位预警签收率", warn, maximum=1.0, empty="本年尚无预警"),
        },
    }


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    require_overview(session)
    names = unit_names(platform)
    with platform.read_engine.connect() as conn:
        data = dashboard_data(conn, today_of(platform), names)
        upcoming = [m for m in list_meetings(conn) if m["status"] == "scheduled"]
    return render(request, "dashboard.html.j2", session, units=names, upcoming=upcoming, **data)


# -- the rectification board ---------------------------------------------------------------

BOARD_STATUSES = {"open": "未销号（全部）", **labels.RECT_STATUS}


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
                  statuses=BOARD_STATUSES, categories=categories, next_url=next_url)


@router.get("/rectifications/{item_id}", response_class=HTMLResponse)
def board_item(request: Request, item_id: str, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    iid = str(_uuid(item_id, "整改事项"))
    with platform.read_engine.connect() as conn:
        row = get_item(conn, iid, today_of(platform))
    if row is None:
        raise WebError(404, "未找到该整改事项")
    p = session.principal
    if not p.can_read_all and p.agency not in {u["unit"] for u in row["units"]}:
        require_overview(session)  # a liaison sees only the items its unit is responsible for
    categories = hazard_categories()
    return render(request, "board_item.html.j2", session, item=row, categories=categories)


# -- meetings ------------------------------------------------------------------------------


@router.get("/meetings", response_class=HTMLResponse)
def meetings(request: Request, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    require_overview(session)
    with platform.read_engine.connect() as conn:
        rows = list(reversed(list_meetings(conn)))
    return render(request, "meetings.html.j2", session, meetings=rows, errors={}, values={})


@router.post("/meetings", response_class=HTMLResponse)
def schedule_meeting(request: Request, post: PostedDep, platform: PlatformDep) -> Response:
    require_lead(post.session)
    f = Form(post.form)
    day = f.day("scheduled_for", "会议日期")
    place = f.text("place", "会议地点", required=False, max_len=200)
    title = f.text("title", "会议名称", required=False, max_len=200)
    body = f.model(MeetingIn, {"scheduled_for": day, "place": place, "title": title or None},
                   {"scheduled_for": "scheduled_for", "place": "place", "title": "title"})
    if body is not None:
        assert day is not None
        platform.runner.catch_up(MeetingsView.name)
        with platform.read_engine.connect() as conn:
            number = next_number(conn, day.year)
        try:
            w = platform.app.schedule_meeting(
                post.session.principal, number=number, scheduled_for=body.scheduled_for, place=body.place,
                title=body.title or f"旗校园安全局际联席会议{day.year}年第{number}次会议", now=platform.clock())
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
    mid = str(_uuid(meeting_id, "会议"))
    names = unit_names(platform)
    with platform.read_engine.connect() as conn:
        agenda = assemble_agenda(conn, mid, today_of(platform))
        if agenda is None:
            raise WebError(404, "未找到该会议")
        resolutions = list_resolutions(conn, mid)
    is_lead = session.principal.role == "lead"
    held = agenda["meeting"]["status"] == "held"
    shown = ({"resolution"} if held else {"item", "held"}) if is_lead else set()
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
    mid = _uuid(meeting_id, "会议")
    f = Form(post.form)
    try:
        ok = act(f, mid)
    except DomainError as e:
        f.fail("_form", domain_message(e))
        ok = False
    if ok and f.ok:
        platform.runner.catch_up(MeetingsView.name)
        return redirect(f"/meetings/{mid}?done={done}")
    return _meeting_page(request, post.session, platform, meeting_id, errors={key: f.errors},
                         values={key: f.values}, status=422)


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
        items = [i for i in f.many("agenda_item_ids") if _UUID.match(i)]
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


BRIEF_MEDIA = {
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}


@router.get("/meetings/{meeting_id}/brief.{fmt}")
def meeting_brief(meeting_id: str, fmt: str, session: SessionDep, platform: PlatformDep) -> Response:
    require_overview(session)
    if fmt not in BRIEF_MEDIA:
        raise WebError(404, "不支持该简报格式", "可下载的格式：HTML、DOCX、PDF。")
    from services.documents.brief import render as render_brief
    from services.meetings.brief_data import build_brief

    mid = str(_uuid(meeting_id, "会议"))
    data = build_brief(platform.read_engine, platform.runner.catch_up, mid, today_of(platform))
    if data is None:
        raise WebError(404, "未找到该会议")
    try:
        body = render_brief(data, fmt)
    except (ImportError, OSError):  # e.g. the PDF engine or its fonts are not installed here
        raise WebError(503, "该格式的简报暂时无法生成", "请改为下载 HTML 版，或请管理员安装简报所需的组件。") from None
    filename = f"brief-{data['meeting']['year']}-{data['meeting']['number']}.{fmt}"
    return Response(body, media_type=BRIEF_MEDIA[fmt], headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})


# -- warnings overview ---------------------------------------------------------------------


@router.get("/warnings", response_class=HTMLResponse)
def warnings_overview(request: Request, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    require_overview(session)
    names = unit_names(platform)
    today = today_of(platform)
    start = f"{today.year}-01-01"
    with platform.read_engine.connect() as conn:
        rows = list(reversed(warnings_between(conn, start, today.isoformat())))
        by_unit = response_by_recipient(conn, "unit", start, today.isoformat())
    bars = [Bar(names.get(r["recipient"], r["recipient"]), (r["rate"],),
                f"{percent(r['rate'])}（{r['acknowledged']}/{r['received']}）")
            for r in sorted(by_unit, key=lambda r: (r["rate"] if r["rate"] is not None else -1, r["recipient"]))]
    chart = charts.hbars(f"{today.year} 年各单位预警签收率", bars, maximum=1.0, empty="本年尚无预警")
    return render(request, "warnings.html.j2", session, units=names, warnings=rows, chart=chart)


# -- the event log and the audit trail -----------------------------------------------------

FEED_PAGE = 50


@router.get("/events", response_class=HTMLResponse)
def event_feed(
    request: Request, session: SessionDep, platform: PlatformDep,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    """Newest first, 50 a page; every entry keeps both its times (occurred and recorded)."""
    require_overview(session)
    head = platform.app.recorder.max_notification_id() or 0
    end = min(before - 1, head) if before else head
    start = max(end - FEED_PAGE, 0)
    notifications = platform.app.recorder.select_notifications(start=start, limit=FEED_PAGE, stop=end,
                                                              inclusive_of_start=False) if end > 0 else []
    events = [LoggedEvent.from_notification(n) for n in reversed(notifications)]
    older = f"/events?before={events[-1].position}" if events and events[-1].position > 1 else None
    newer = f"/events?before={end + FEED_PAGE + 1}" if end < head else None
    return render(request, "feed.html.j2", session, events=events, head=head, older=older, newer=newer,
                  summary=event_summary)


def event_summary(data: dict[str, Any]) -> str:
    """A short line from an event's payload for the feed (never the whole payload)."""
    for key in ("summary", "title", "note", "reason", "description", "text", "minutes"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:80]
    return ""


@router.get("/audit", response_class=HTMLResponse)
def audit_trail(
    request: Request, session: SessionDep, platform: PlatformDep,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    unit: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    """Oldest first, like the API; only auditors read the trail (as /api/v1/audit)."""
    require_overview(session)
    if session.principal.role != "auditor":
        raise WebError(403, "访问审计记录仅限考核/纪检账号查看", "牵头单位可在“事件日志”中查看全部业务记录。")
    rows = platform.audit.page(after=after or 0, limit=FEED_PAGE + 1, unit=unit or None,
                                    outcome=outcome if outcome in labels.AUDIT_OUTCOME else None)
    more = len(rows) > FEED_PAGE
    rows = rows[:FEED_PAGE]
    filters = {"unit": unit or "", "outcome": outcome or ""}
    next_url = ("/audit?" + urlencode({**{k: v for k, v in filters.items() if v}, "after": rows[-1]["id"]})
                if more else None)
    return render(request, "audit.html.j2", session, rows=rows, filters=filters, next_url=next_url)


# -- installation --------------------------------------------------------------------------


def _error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    platform = get_platform(request)
    session = sessions_for(platform).get(request.cookies.get(SESSION_COOKIE), platform.clock())
    return render(request, "error.html.j2", session, status=status, status_code=status, title=title, message=message,
                  home=home_of(session) if session else "/signin")


def install(app: FastAPI) -> None:
    """Add the pages, their static files and their error pages to the API's app."""
    from services.web import review_pages  # imports this module: included here, not at import time

    app.include_router(router)
    app.include_router(review_pages.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(WebError)
    async def _web_error(request: Request, exc: WebError) -> HTMLResponse:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_error_page, request, exc.status, exc.title, exc.message)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        if request.method != "GET":
            return redirect("/signin")
        return redirect("/signin?" + urlencode({"next": exc.target}))
