"""Browsers get a Chinese HTML page for every error; API clients keep problem+json.

services/api/problems.py answers every error as problem+json. A person who types an unknown URL,
follows a stale link or meets a crash in a browser should read a page in Chinese with a way home,
not JSON. This wraps the API's handlers: a request for a page (not under /api/, asking for HTML,
not for JSON) gets the HTML page with the same status; everything else the API's answer as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from html import escape

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, Response

from events.errors import DomainError
from services.api.problems import ProblemError
from services.web.base import error_page

log = logging.getLogger(__name__)

Handler = Callable[[Request, Exception], Awaitable[Response] | Response]

# status -> (page title, what the reader can do about it)
PAGE_TEXT: dict[int, tuple[str, str]] = {
    400: ("请求无效", "请返回上一页重新操作。"),
    401: ("请先登录", "请使用本单位凭证登录后再访问。"),
    403: ("无权访问此页面", "您的账号没有查看或执行此操作的权限；如需办理，请联系牵头单位。"),
    404: ("页面不存在", "您访问的地址不存在或已被移除，请检查链接或从首页重新进入。"),
    405: ("不支持此操作", "此页面不接受这种提交方式，请从页面上的按钮重新操作。"),
    409: ("与已有记录冲突", "该记录已被他人处理或状态已改变，请刷新页面后重试。"),
    413: ("提交内容过大", "请减少附件或文字后重新提交。"),
    422: ("提交内容不符合要求", "请返回上一页检查填写内容后重新提交。"),
    429: ("操作过于频繁", "请稍候一分钟再试。"),
    500: ("系统出错", "系统处理时发生错误，已记录在案，请稍后重试；如仍出错，请联系系统管理员。"),
    503: ("系统繁忙", "系统暂时繁忙，请稍后重试。"),
}


def wants_page(request: Request) -> bool:
    """A browser asking for a page: not the API's path, HTML accepted, JSON not asked for."""
    if request.url.path.startswith("/api/"):
        return False
    accept = request.headers.get("accept", "").lower()
    if "json" in accept:
        return False
    return "text/html" in accept


def _fallback(status: int, title: str, message: str) -> HTMLResponse:
    """The page without the site's template: used when rendering the real one failed too."""
    body = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>'
            f'<h1>{escape(title)}</h1><p>错误代码 {status}：{escape(message)}</p><p><a href="/">返回首页</a></p>'
            f'</body></html>')
    return HTMLResponse(body, status_code=status)


async def _page(request: Request, status: int, headers: dict[str, str] | None) -> Response:
    title, message = PAGE_TEXT.get(status, ("请求失败", "请返回上一页重新操作。"))
    try:
        response: Response = await run_in_threadpool(error_page, request, status, title, message)
    except Exception:  # the error page must not fail in turn: a crash may have come from rendering
        log.exception("error page for %s failed; plain page instead", request.url.path)
        response = _fallback(status, title, message)
    for name, value in (headers or {}).items():
        if name.lower() in ("retry-after", "allow", "www-authenticate"):
            response.headers[name] = value
    return response


def install(app: FastAPI) -> None:
    """Call after services.api.problems.install: wraps the handlers it registered."""
    for exc_class in (StarletteHTTPException, DomainError, ProblemError, RequestValidationError, Exception):
        api_handler = app.exception_handlers[exc_class]
        app.add_exception_handler(exc_class, _for_browsers(api_handler))


def _for_browsers(api_handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        answer = api_handler(request, exc)
        response: Response = await answer if isinstance(answer, Awaitable) else answer
        if not wants_page(request):
            return response
        return await _page(request, response.status_code, dict(response.headers))
    return handle
