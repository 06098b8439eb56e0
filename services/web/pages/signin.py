"""Sign-in, sign-out and the home redirect. People sign in with account name and password (and a
TOTP code once enrolled); a system's token may still be pasted (a unit's bearer token). Either
way the browser gets a server-side session (services/accounts/sessions.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.accounts.service import Account, SignInFailed
from services.api.deps import PlatformDep, platform_of
from services.documents.timefmt import local_time
from services.kernel.principal import Principal
from services.platform import Platform
from services.security.audit import note_principal
from services.web.base import FormDep, PostedDep, home_of, redirect, render
from services.web.session import SESSION_COOKIE, SIGNIN_COOKIE, WebSession, new_secret, same, sessions_for

router = APIRouter(include_in_schema=False)

# The words for a refused sign-in. An unknown name and a wrong password read the same, so the
# page does not tell which account names exist.
SIGNIN_REFUSED = {
    "unknown": "账号或密码不正确。",
    "wrong-password": "账号或密码不正确。",
    "wrong-code": "账号、密码或动态口令不正确。已启用动态口令的账号，请同时输入验证器应用显示的 6 位数字。",
    "disabled": "该账号已停用，请联系牵头单位管理员。",
    "no-password": "该账号只能通过统一身份认证登录。",
}


def safe_next(target: str | None) -> str | None:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _signin_page(request: Request, *, error: str | None = None, status: int = 200, account: str = "") -> HTMLResponse:
    token = request.cookies.get(SIGNIN_COOKIE) or new_secret()
    platform = platform_of(request)
    resp = render(request, "signin.html.j2", None, status=status, error=error, signin_csrf=token,
                  next=safe_next(request.query_params.get("next")) or "", units={}, account=account[:40],
                  sso_name=platform.settings.oidc_display_name if platform.oidc else None)
    resp.set_cookie(SIGNIN_COOKIE, token, max_age=3600, httponly=True, samesite="lax", path="/signin",
                    secure=request.url.scheme == "https")
    return resp


def start_session(request: Request, platform: Platform, account: Account, target: str | None = None, *,
                  method: str = "password") -> Response:
    """Starts a page session for ``account`` (already authenticated: ``method`` says how, "password"
    or "sso") and redirects to ``target`` or the account's home; after a password sign-in with an
    initial or reset password the person goes to change it first. The single sign-on callback ends
    with this too (method="sso": the provider vouched, no password is asked for)."""
    note_principal(account.principal)
    session_id, session = sessions_for(platform).start(account.principal, platform.clock(),
                                                       account_id=account.account_id, method=method)
    forced = account.must_change_password and method == "password"
    where = "/account/password" if forced else (safe_next(target) or home_of(session))
    return _with_cookie(request, platform, redirect(where), session_id)


def _with_cookie(request: Request, platform: Platform, resp: Response, session_id: str) -> Response:
    store = sessions_for(platform)
    # signing in while signed in replaces the browser's session: the old one ends now, not at its
    # timeout (its cookie value may have been seen by someone else at this browser)
    store.end_cookie(request.cookies.get(SESSION_COOKIE), platform.clock())
    absolute = int(store.absolute.total_seconds())
    resp.set_cookie(SESSION_COOKIE, session_id, max_age=absolute, httponly=True, samesite="lax", path="/",
                    secure=request.url.scheme == "https")
    resp.delete_cookie(SIGNIN_COOKIE, path="/signin")
    return resp


def _text(form: FormDep, name: str, limit: int = 200) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request) -> HTMLResponse:
    return _signin_page(request)


@router.post("/signin", response_class=HTMLResponse)
def signin(request: Request, platform: PlatformDep, form: FormDep) -> Response:
    token = form.get("csrf_token")
    if not same(token if isinstance(token, str) else None, request.cookies.get(SIGNIN_COOKIE)):
        return _signin_page(request, error="登录页面已过期，请重新输入后提交。", status=403)
    target = safe_next(_text(form, "next", 1000))
    if _text(form, "token"):
        return _token_signin(request, platform, _text(form, "token", 1000), target)
    name = _text(form, "account", 100)
    password = form.get("password")
    if not name or not isinstance(password, str) or not password:
        return _signin_page(request, error="请输入账号和密码。", status=422, account=name)
    client = request.client.host if request.client else None
    try:
        account = platform.accounts.sign_in(name, password, _text(form, "code", 20), platform.clock(),
                                            via="/signin", client=client)
    except SignInFailed as e:
        if e.reason == "locked":
            until = local_time(e.locked_until, seconds=True)
            message = (f"连续登录失败次数过多，账号已锁定至 {until}。"
                       "锁定期间即使密码正确也无法登录，请稍后再试或联系牵头单位重置密码。")
            return _signin_page(request, error=message, status=429, account=name)
        return _signin_page(request, error=SIGNIN_REFUSED[e.reason], status=401, account=name)
    return start_session(request, platform, account, target)


def _token_signin(request: Request, platform: Platform, credential: str, target: str | None) -> Response:
    principal = platform.tokens.authenticate(credential) if len(credential) <= 200 else None
    if principal is None:
        return _signin_page(request, error="凭证无效或已被吊销，请向牵头单位管理员核实。", status=401)
    return signed_in(request, platform, principal, target)


def signed_in(request: Request, platform: Platform, principal: Principal, target: str | None) -> Response:
    """Start a session for ``principal`` (a system's token, no person's account) and go on to ``target``."""
    note_principal(principal)
    session_id, session = sessions_for(platform).start(principal, platform.clock())
    return _with_cookie(request, platform, redirect(target or home_of(session)), session_id)


@router.post("/signout")
def signout(post: PostedDep, platform: PlatformDep) -> Response:
    sessions_for(platform).end(post.session.session_hash, platform.clock())
    resp = redirect("/signin?done=signed-out")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/")
def home(request: Request, platform: PlatformDep) -> Response:
    s: WebSession | None = sessions_for(platform).get(request.cookies.get(SESSION_COOKIE), platform.clock())
    return redirect(home_of(s) if s else "/signin")
