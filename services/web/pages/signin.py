"""Sign-in, sign-out and the home redirect: a unit's token is exchanged once for a session."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.api.deps import PlatformDep, platform_of
from services.kernel.principal import Principal
from services.platform import Platform
from services.security.audit import note_principal
from services.web.base import FormDep, PostedDep, home_of, redirect, render
from services.web.session import SESSION_COOKIE, SESSION_TTL, SIGNIN_COOKIE, new_secret, same, sessions_for

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str | None:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _signin_page(request: Request, *, error: str | None = None, status: int = 200) -> HTMLResponse:
    token = request.cookies.get(SIGNIN_COOKIE) or new_secret()
    platform = platform_of(request)
    resp = render(request, "signin.html.j2", None, status=status, error=error, signin_csrf=token,
                  next=safe_next(request.query_params.get("next")) or "", units={},
                  sso_name=platform.settings.oidc_display_name if platform.oidc else None)
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
    target = safe_next(form.get("next") if isinstance(form.get("next"), str) else None)  # type: ignore[arg-type]
    return signed_in(request, platform, principal, target)


def signed_in(request: Request, platform: Platform, principal: Principal, target: str | None) -> Response:
    """Start a session for ``principal`` (whichever way it proved itself) and go on to ``target``."""
    note_principal(principal)
    session_id, session = sessions_for(platform).start(principal, platform.clock())
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
