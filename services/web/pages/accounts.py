"""Accounts on the pages: a person's own account (password, TOTP enrolment, signing out
everywhere), the lead's management of every unit's accounts and of systems' API credentials, and
a unit's read-only list of who in it has access.

An initial or reset password and a new API token are shown once, on the answer to the form that
made them (never in a redirect's URL, never stored in clear)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from contracts.text import find_control_character
from events.errors import DomainError, NotFound
from services.accounts import totp
from services.accounts.service import Account, AccountProblem
from services.api.deps import PlatformDep
from services.documents import labels
from services.platform import Platform
from services.web.base import (
    Posted,
    PostedDep,
    SessionDep,
    WebError,
    redirect,
    render,
    require_lead,
    require_unit_reader,
    unit_names,
)
from services.web.forms import Form
from services.web.session import SESSION_COOKIE, WebSession

router = APIRouter(include_in_schema=False)

NOTICES = {
    "password-changed": "密码已修改。",
    "totp-enrolled": "动态口令已启用，今后登录时需输入验证器应用显示的 6 位数字。",
    "enabled": "账号已重新启用。",
    "disabled": "账号已停用，其会话和 API 凭证已立即失效。",
    "revoked": "凭证已吊销。",
    "oidc": "统一身份认证对应关系已保存。",
}


def _own_account(session: WebSession, platform: Platform) -> Account:
    if session.account_id is None:
        raise WebError(403, "当前以单位凭证登录",
                       "单位凭证（令牌）登录没有个人账号。请使用账号和密码登录后再管理个人账号。")
    return platform.accounts.get(session.account_id)


def _problem(e: DomainError) -> str:
    return e.detail if isinstance(e, AccountProblem | NotFound) else f"操作未完成：{e.detail}"


# -- one's own account ---------------------------------------------------------------------


def _account_page(request: Request, session: WebSession, platform: Platform, *, status: int = 200,
                  **ctx: Any) -> HTMLResponse:
    account = platform.accounts.get(session.account_id) if session.account_id else None
    return render(request, "account.html.j2", session, status=status, account=account,
                  account_notice=NOTICES.get(request.query_params.get("done") or ""), **ctx)


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    return _account_page(request, session, platform)


@router.get("/account/password", response_class=HTMLResponse)
def password_form(request: Request, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    _own_account(session, platform)
    return render(request, "account_password.html.j2", session, forced=session.must_change_password, error=None)


@router.post("/account/password", response_class=HTMLResponse)
def change_password(request: Request, post: PostedDep, platform: PlatformDep) -> Response:
    account = _own_account(post.session, platform)
    f = Form(post.form)
    current, new, again = f.raw("current"), f.raw("new"), f.raw("again")
    error = "两次输入的新密码不一致。" if new != again else None
    if error is None:
        try:
            platform.accounts.change_password(account.account_id, current, new, platform.clock())
        except DomainError as e:
            error = _problem(e)
    if error:
        return render(request, "account_password.html.j2", post.session, status=422,
                      forced=post.session.must_change_password, error=error)
    return redirect("/account?done=password-changed")


@router.get("/account/totp", response_class=HTMLResponse)
def totp_form(request: Request, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    return _totp_page(request, session, platform, error=None)


def _totp_page(request: Request, session: WebSession, platform: Platform, *, error: str | None,
               status: int = 200) -> HTMLResponse:
    account = _own_account(session, platform)
    secret, uri = platform.accounts.totp_enrolment(account.account_id)
    return render(request, "account_totp.html.j2", session, status=status, account=account, secret=secret,
                  qr=totp.qr_svg(uri), error=error)


@router.post("/account/totp", response_class=HTMLResponse)
def totp_confirm(request: Request, post: PostedDep, platform: PlatformDep) -> Response:
    account = _own_account(post.session, platform)
    try:
        platform.accounts.confirm_totp(account.account_id, Form(post.form).raw("code"), platform.clock())
    except DomainError as e:
        return _totp_page(request, post.session, platform, error=_problem(e), status=422)
    return redirect("/account?done=totp-enrolled")


@router.post("/account/signout-everywhere")
def signout_everywhere(post: PostedDep, platform: PlatformDep) -> Response:
    account = _own_account(post.session, platform)
    platform.accounts.end_sessions(account.account_id, platform.clock())
    resp = redirect("/signin?done=signed-out")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


# -- the lead's management -------------------------------------------------------------------


def _unit_choices(platform: Platform) -> dict[str, str]:
    return {**unit_names(platform), **labels.REVIEW_GROUP_NAMES}


def _manage_page(request: Request, session: WebSession, platform: Platform, *, status: int = 200,
                 **ctx: Any) -> HTMLResponse:
    units = _unit_choices(platform)
    accounts = platform.accounts.list()
    names = {a.account_id: a.display_name for a in accounts}
    return render(request, "accounts.html.j2", session, status=status, accounts=accounts, unit_choices=units,
                  credentials=platform.tokens.list(), holder=names,
                  account_notice=NOTICES.get(request.query_params.get("done") or ""),
                  **{"error": None, "created": None, "reset": None, "issued": None, "values": {}, **ctx})


@router.get("/accounts", response_class=HTMLResponse)
def manage(request: Request, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    require_lead(session)
    return _manage_page(request, session, platform)


def _lead_post(post: Posted) -> None:
    require_lead(post.session)


@router.post("/accounts", response_class=HTMLResponse)
def create(request: Request, post: PostedDep, platform: PlatformDep) -> HTMLResponse:
    _lead_post(post)
    f = Form(post.form)
    values = {k: f.raw(k)[:100] for k in ("account_name", "display_name", "unit", "role", "phone")}
    try:
        account, password = platform.accounts.create(
            post.session.principal.actor, account_name=values["account_name"], display_name=values["display_name"],
            unit=values["unit"], role=values["role"], phone=values["phone"], known_units=platform.known_agencies(),
            now=platform.clock())
    except DomainError as e:
        return _manage_page(request, post.session, platform, status=422, error=_problem(e), values=values)
    return _manage_page(request, post.session, platform, created=(account, password))


def _target(platform: Platform, account_id: str) -> Account:
    try:
        return platform.accounts.get(account_id)
    except NotFound:
        raise WebError(404, "未找到该账号") from None


@router.post("/accounts/{account_id}/disable", response_class=HTMLResponse)
def disable(account_id: str, request: Request, post: PostedDep, platform: PlatformDep) -> Response:
    _lead_post(post)
    account = _target(platform, account_id)
    if account.account_id == post.session.account_id:  # the lead would lock the bureau out of this page
        return _manage_page(request, post.session, platform, status=422,
                            error="不能停用自己正在使用的账号，请由另一位牵头单位管理员操作。")
    platform.accounts.set_enabled(post.session.principal.actor, account.account_id, False, platform.clock())
    return redirect("/accounts?done=disabled")


@router.post("/accounts/{account_id}/enable")
def enable(account_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    _lead_post(post)
    platform.accounts.set_enabled(post.session.principal.actor, _target(platform, account_id).account_id, True,
                                  platform.clock())
    return redirect("/accounts?done=enabled")


@router.post("/accounts/{account_id}/reset-password", response_class=HTMLResponse)
def reset_password(account_id: str, request: Request, post: PostedDep, platform: PlatformDep) -> HTMLResponse:
    _lead_post(post)
    account = _target(platform, account_id)
    password = platform.accounts.reset_password(post.session.principal.actor, account.account_id, platform.clock(),
                                                clear_totp=Form(post.form).raw("clear_totp") == "yes")
    return _manage_page(request, post.session, platform, reset=(account, password))


@router.post("/accounts/{account_id}/oidc", response_class=HTMLResponse)
def set_oidc(account_id: str, request: Request, post: PostedDep, platform: PlatformDep) -> Response:
    _lead_post(post)
    account = _target(platform, account_id)
    f = Form(post.form)
    try:
        platform.accounts.set_oidc(post.session.principal.actor, account.account_id, f.raw("issuer")[:300] or None,
                                   f.raw("subject")[:255] or None, platform.clock())
    except DomainError as e:
        return _manage_page(request, post.session, platform, status=422, error=_problem(e))
    return redirect("/accounts?done=oidc")


@router.post("/accounts/credentials", response_class=HTMLResponse)
def issue_credential(request: Request, post: PostedDep, platform: PlatformDep) -> HTMLResponse:
    """An API token for a system of a unit, or for a person's account (ends with the account)."""
    _lead_post(post)
    f = Form(post.form)
    holder = f.raw("account_id")
    unit: str
    role: str
    try:
        if holder:
            account = _target(platform, holder)
            if not account.enabled:
                raise AccountProblem("已停用的账号不能签发凭证。")
            unit, role, account_id = account.unit, account.role, account.account_id
        else:
            unit, role, account_id = f.raw("unit"), f.raw("role"), None
        label = f.raw("label")[:100] or f"{unit}-{role}"
        if find_control_character(label):
            raise AccountProblem("用途说明中含有不可见的控制字符。")
        token_id, token = platform.tokens.issue(agency=unit, role=role, label=label,
                                                known_agencies=platform.known_agencies(), account_id=account_id)
    except DomainError as e:
        return _manage_page(request, post.session, platform, status=422, error=_problem(e))
    return _manage_page(request, post.session, platform, issued=(token_id, token))


@router.post("/accounts/credentials/{token_id}/revoke")
def revoke_credential(token_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    _lead_post(post)
    try:
        platform.tokens.revoke(token_id[:36])
    except NotFound:
        raise WebError(404, "未找到该凭证", "该凭证不存在或已被吊销。") from None
    return redirect("/accounts?done=revoked")


# -- a unit's people -------------------------------------------------------------------------


@router.get("/units/{code}/accounts", response_class=HTMLResponse)
def unit_accounts(code: str, request: Request, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    """Who in the unit has access: read-only, for the unit's liaisons, the lead and auditors."""
    names = unit_names(platform)
    if code not in names:
        raise WebError(404, "未找到该单位")
    require_unit_reader(session, code, names)
    people = platform.accounts.list(unit=code)
    systems = [t for t in platform.tokens.list(agency=code) if t["account_id"] is None and t["revoked_at"] is None]
    return render(request, "unit_accounts.html.j2", session, code=code, people=people, systems=systems)
