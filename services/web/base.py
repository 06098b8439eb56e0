"""What every page stands on: rendering, the session and CSRF dependencies, access checks and
error pages. The pages (services/web/pages/) are server-rendered HTML from the same FastAPI app
and the same read models as the API. Liaisons see and write their own unit's pages; the lead
bureau sees every unit and runs meetings; auditors see what the lead sees, read-only.

Every page reads through the projections' query functions and writes through the
application's use-case methods, exactly as the API routes do; nothing here has SQL of its own
beyond the session table (services/web/session.py). Where the API already decides a thing
(the platform of a request, what today is, who may read or write what), the pages ask
services/api/deps.py and only choose the Chinese words.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.api import MAX_SCHOOLS_PER_RECORD
from events.errors import Conflict, DomainError, InvariantViolated, NotFound, NotPermitted
from projections.catalogue_view import list_agencies, list_schools
from services.api import deps
from services.api.deps import PlatformDep, platform_of, today_of
from services.api.problems import ProblemError
from services.documents import labels
from services.documents.charts import percent
from services.documents.timefmt import local_day, local_time
from services.kernel.use_cases import parse_id
from services.platform import Platform
from services.security.audit import note_principal
from services.web.forms import Form
from services.web.once import form_key, submit_once
from services.web.session import SESSION_COOKIE, WebSession, same, sessions_for

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "web"

env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True)
env.filters["pct"] = percent
env.filters["local"] = local_time  # every instant a person reads is county time (LIANXI_COUNTY_TZ)
env.filters["local_s"] = lambda v: local_time(v, seconds=True)
env.filters["local_day"] = local_day
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
    "hazard": "隐患已上报，等待牵头单位交办。",
    "duty-logged-hazards": "履职记录已保存，发现的问题已作为隐患上报。",
    "assigned": "已交办。",
    "verified": "已核验销号。",
    "rejected": "已退回重新整改（回头看）。",
    "extended": "整改期限已延长。",
    "extension-requested": "延期申请已提交，等待牵头单位审核。",
    "extension-refused": "已答复：不同意延期，原整改期限不变。",
    "task-verified": "任务已核销。",
    "task-rejected": "任务已退回重办。",
    "proposed": "议题已提请。",
    "answered": "信访已答复。",
    "channel-set": "通知渠道已保存。可点击“发送测试消息”检查是否能收到。",
    "channel-removed": "该通知渠道已停用，尚未发出的通知不再经此渠道发送。",
}


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


class PasswordChangeNeeded(Exception):
    """A person signed in with an initial or reset password: every page but the change form
    (and sign-out) leads there until it is changed."""


# What a session that must change its password may still reach.
BEFORE_PASSWORD_CHANGE = frozenset({"/account/password", "/signout"})


# -- plumbing ------------------------------------------------------------------------------


def current_session(request: Request, platform: PlatformDep) -> WebSession:
    s = sessions_for(platform).get(request.cookies.get(SESSION_COOKIE), platform.clock())
    if s is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(target)
    note_principal(s.principal)  # the audit trail names who acted
    if s.must_change_password and request.url.path not in BEFORE_PASSWORD_CHANGE:
        raise PasswordChangeNeeded()
    return s


SessionDep = Annotated[WebSession, Depends(current_session)]


# A page form carries at most one record's schools (as many as the API takes, one checkbox
# field each) and a few dozen other fields; the cap was once 300, which refused the duty-log
# page above ~295 schools with Starlette's raw JSON 400.
MAX_FORM_FIELDS = MAX_SCHOOLS_PER_RECORD + 100


MAX_FORM_FILES = 20  # evidence photos and documents on one form (services/web/pages/evidence.py)


async def read_form(request: Request) -> FormData:
    try:
        return await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS)
    except StarletteHTTPException:  # the form parser's refusal: too many fields, a part too large
        raise WebError(400, "表单内容过多，无法处理",
                       f"一次提交最多涉及 {MAX_SCHOOLS_PER_RECORD} 所学校。请减少所选内容后重新提交。") from None


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


def form_act(post: Posted, act: Callable[[Form], bool], *, done: Callable[[], Response],
             again: Callable[[Form], Response]) -> Response:
    """One form's act: a bad field or a refused rule comes back as the form's message
    (``again``); an act that went through answers ``done`` (a redirect)."""
    f = Form(post.form)
    try:
        ok = act(f)
    except DomainError as e:
        f.fail("_form", domain_message(e))
        ok = False
    return done() if ok and f.ok else again(f)


def once(request: Request, post: Posted, platform: Platform, fallback: str, act: Callable[[], Response]) -> Response:
    """Runs a form's handler once per submission (services/web/once.py): ``act`` returns a
    redirect when it acted, or the page with the form's messages. A replay gets the first
    redirect (its ?done= notice included), never a second event."""
    page: list[Response] = []

    def run() -> str | None:
        response = act()
        if isinstance(response, RedirectResponse):
            return response.headers["location"]
        page.append(response)
        return None

    key = form_key(post.session.principal, request.url.path, post.form, today_of(platform))
    url = submit_once(platform.write_engine, post.session.principal, key, platform.clock(), run)
    if url is None:
        return page[0]
    return redirect(url or fallback)


def uuid_or_404(text: str, what: str) -> uuid.UUID:
    """An id from the path; one that is not a UUID names nothing, so the page is "not found"."""
    try:
        return parse_id(text, what)
    except NotFound:
        raise WebError(404, f"未找到该{what}") from None


def unit_names(platform: Platform) -> dict[str, str]:
    with platform.read_engine.connect() as conn:
        return {a["code"]: a["name"] for a in list_agencies(conn)}


def school_names(platform: Platform) -> dict[str, str]:
    with platform.read_engine.connect() as conn:
        return {s["school_id"]: s["name"] for s in list_schools(conn, after=None, limit=100_000)}


def school_label(names: dict[str, str], code: str | None) -> Markup:
    """A school as people read it: its name, the registry code beside it marked as a code."""
    if not code:
        return Markup("—")
    name = names.get(code)
    if name is None:
        return Markup('<code class="code">{}</code>').format(code)
    return Markup('{} <code class="code muted">{}</code>').format(name, code)


# -- rendering -----------------------------------------------------------------------------


def nav_for(session: WebSession | None) -> list[tuple[str, str]]:
    if session is None:
        return []
    p = session.principal
    own = f"/units/{quote(p.agency)}"
    unit_pages = [(own, "本单位台账"), (f"{own}/log", "填报履职"), (f"{own}/work", "整改与任务"),
                  (f"{own}/warnings", "预警签收"), (f"{own}/agenda", "提请议题"), (f"{own}/petitions", "信访答复"),
                  (f"{own}/channels", "通知渠道")]
    mine = [("/account", "我的账号")] if session.account_id else []
    if p.role == "liaison":
        return [*unit_pages, (f"{own}/accounts", "本单位账号"), *mine]
    overview = [("/dashboard", "总览"), ("/rectifications", "整改台账"), ("/meetings", "联席会议"),
                ("/warnings", "预警响应"), ("/review", "年度考核"), ("/events", "事件日志")]
    if p.role == "auditor":
        return [*overview, ("/audit", "访问审计"), *mine]
    return [*overview, *unit_pages[:3], ("/accounts", "账号管理"), unit_pages[-1], *mine]


def render(request: Request, template: str, session: WebSession | None, *, status: int = 200,
           **ctx: Any) -> HTMLResponse:
    platform = platform_of(request)
    done = request.query_params.get("done")
    schools = ctx.pop("schools", None) or school_names(platform)
    html = env.get_template(template).render(
        schools=schools, school=lambda code: school_label(schools, code),
        request=request, user=session.principal if session else None, csrf=session.csrf if session else "",
        person=session.display_name if session else None,
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


def event_summary(data: dict[str, Any]) -> str:
    """A short line from an event's payload for the feed (never the whole payload)."""
    for key in ("summary", "title", "note", "reason", "description", "text", "minutes"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:80]
    return ""


def home_of(session: WebSession) -> str:
    p = session.principal
    return "/dashboard" if p.can_read_all else f"/units/{quote(p.agency)}"


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    platform = platform_of(request)
    session = sessions_for(platform).get(request.cookies.get(SESSION_COOKIE), platform.clock())
    return render(request, "error.html.j2", session, status=status, status_code=status, title=title, message=message,
                  home=home_of(session) if session else "/signin")


# -- access: the API's rules (services/api/deps.py), the page's words ----------------------


@contextmanager
def refused_as(title: str, message: str) -> Iterator[None]:
    """A refusal by one of the API's access rules becomes a 403 error page in these words."""
    try:
        yield
    except ProblemError as e:
        if e.status != 403:
            raise
        raise WebError(403, title, message) from None


def require_unit_reader(session: WebSession, code: str, names: dict[str, str]) -> None:
    p = session.principal
    with refused_as("无权查看其他单位的页面",
                    f"您以「{names.get(p.agency, p.agency)}」联络员身份登录，只能查看和填报本单位的台账。"):
        deps.require_reader_of(p, code)


def require_unit_writer(session: WebSession, code: str, names: dict[str, str]) -> None:
    require_unit_reader(session, code, names)
    p = session.principal
    with refused_as("只读账号不能提交", "考核/纪检账号只能查看，不能填报或修改。"):
        deps.require_writer(p)
    if p.agency != code:  # the API has no such check: there a unit always writes as itself
        raise WebError(403, "只能为本单位填报", "履职记录、进展和签收只能由责任单位本身填报。")


def require_overview(session: WebSession) -> None:
    with refused_as("此页面仅限牵头单位和考核组查看", "联络员请使用本单位的台账页面。"):
        deps.require_all_reader(session.principal)


def require_lead(session: WebSession) -> None:
    require_overview(session)
    with refused_as("只读账号不能提交", "只有牵头单位（教育局）可以安排和记录联席会议。"):
        deps.require_lead(session.principal)
