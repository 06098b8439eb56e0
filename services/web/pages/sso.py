"""Single sign-on through the unified identity platform (统一身份认证, services/security/oidc.py).

/sso/start sends the browser to the provider with a fresh state, nonce and PKCE challenge; what
the callback checks against rides in a short-lived HttpOnly cookie bound to this browser (path
/sso, SameSite=Lax so the provider's top-level redirect back carries it). /sso/callback
validates the answer, then looks up the account the lead mapped to that subject
(``Accounts.for_oidc_subject``): a subject without one is refused, never created.
"""

from __future__ import annotations

import base64
import json
import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.api.deps import PlatformDep
from services.security.oidc import OidcRefused, OidcUnavailable, Pending
from services.web.base import error_page, redirect
from services.web.pages.signin import safe_next, start_session

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

SSO_COOKIE = "lx_sso"
SSO_COOKIE_TTL_S = 600  # time to sign in at the provider
NOT_OPENED = "拒绝：该统一身份账号尚未在本平台开通，请联系牵头单位。"


def pending_cookie(p: Pending) -> str:
    raw = json.dumps({"s": p.state, "n": p.nonce, "v": p.verifier, "x": p.next}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def pending_from(cookie: str | None) -> Pending | None:
    if not cookie or len(cookie) > 2000:
        return None
    try:
        d = json.loads(base64.urlsafe_b64decode(cookie.encode()))
        return Pending(state=str(d["s"]), nonce=str(d["n"]), verifier=str(d["v"]), next=str(d.get("x", "")))
    except (ValueError, KeyError, TypeError):
        return None


def _not_configured(request: Request) -> HTMLResponse:
    return error_page(request, 404, "未启用统一身份认证", "本平台未配置统一身份认证，请使用单位凭证登录。")


def _unavailable(request: Request) -> HTMLResponse:
    return error_page(request, 503, "统一身份认证暂时无法访问",
                      "身份认证服务暂时无法访问，请稍后重试，或使用单位凭证登录。")


@router.get("/sso/start")
def sso_start(request: Request, platform: PlatformDep) -> Response:
    if platform.oidc is None:
        return _not_configured(request)
    try:
        url, pending = platform.oidc.begin(safe_next(request.query_params.get("next")) or "")
    except OidcUnavailable as e:
        log.warning("single sign-on: provider unavailable at start: %s", e)
        return _unavailable(request)
    resp = redirect(url)
    resp.set_cookie(SSO_COOKIE, pending_cookie(pending), max_age=SSO_COOKIE_TTL_S, httponly=True, samesite="lax",
                    path="/sso", secure=request.url.scheme == "https")
    return resp


@router.get("/sso/callback")
def sso_callback(request: Request, platform: PlatformDep) -> Response:
    if platform.oidc is None:
        return _not_configured(request)
    pending = pending_from(request.cookies.get(SSO_COOKIE))
    params = {k: v[:2000] for k, v in request.query_params.items()}
    try:
        if pending is None:
            raise OidcRefused("state")  # no sign-in was started in this browser, or it timed out
        identity = platform.oidc.finish(pending, params, platform.clock())
    except OidcRefused as e:
        log.warning("single sign-on refused: %s", e.reason)
        resp: Response = error_page(request, 403, "统一身份认证登录未完成",
                                    "身份认证结果无效或已过期，请返回登录页重新登录。")
    except OidcUnavailable as e:
        log.warning("single sign-on: provider unavailable at callback: %s", e)
        resp = _unavailable(request)
    else:
        account = platform.accounts.for_oidc_subject(identity.issuer, identity.subject)
        if account is None:
            log.warning("single sign-on: subject not opened on this platform")
            resp = error_page(request, 403, "该统一身份账号尚未开通", NOT_OPENED)
        else:
            platform.accounts.record_signin(account, platform.clock(), via="oidc",
                                            client=request.client.host if request.client else None)
            resp = start_session(request, platform, account, safe_next(pending.next) if pending else None,
                                 method="sso")
    resp.delete_cookie(SSO_COOKIE, path="/sso")  # one attempt per start
    return resp
