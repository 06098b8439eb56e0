"""Every error leaves the API as RFC 9457 problem+json, from this one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from events.errors import Conflict, DomainError, InvariantViolated, NotFound, NotPermitted

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"

# status -> (type slug, Chinese title)
_TITLES: dict[int, tuple[str, str]] = {
    400: ("bad-request", "请求无效"),
    401: ("unauthenticated", "未认证或凭证无效"),
    403: ("forbidden", "无权执行此操作"),
    404: ("not-found", "未找到"),
    405: ("method-not-allowed", "不支持的请求方法"),
    409: ("conflict", "与已有记录冲突"),
    413: ("payload-too-large", "请求体过大"),
    415: ("unsupported-media-type", "不支持的内容类型"),
    422: ("unprocessable", "请求内容不符合要求"),
    429: ("rate-limited", "请求过于频繁"),
    500: ("internal-error", "服务器内部错误"),
    503: ("unavailable", "服务暂不可用"),
}

_DOMAIN_STATUS: list[tuple[type[DomainError], int, str]] = [
    (NotFound, 404, "not-found"),
    (NotPermitted, 403, "forbidden"),
    (Conflict, 409, "conflict"),
    (InvariantViolated, 422, "rule-violated"),
]


class ProblemError(Exception):
    """Raised by adapters (auth, paging) for a problem that is not a domain rule."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def problem(status: int, detail: str | None, *, slug: str | None = None, instance: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    default_slug, title = _TITLES.get(status, ("error", "请求失败"))
    if slug == "rule-violated":
        title = "违反业务规则"
    body: dict[str, Any] = {
        "type": f"urn:lianxi:problem:{slug or default_slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        out.append({"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", ""),
                    "type": err.get("type", "")})
    return out


def allowed_methods(request: Request) -> str:
    """Every method some route of this path answers (the router's 405 names only the first
    route's, though /x may have a GET route and a POST route)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        for cls, status, slug in _DOMAIN_STATUS:
            if isinstance(exc, cls):
                return problem(status, exc.detail, slug=slug, instance=request.url.path)
        return problem(422, exc.detail, slug="rule-violated", instance=request.url.path)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem(exc.status, exc.detail, instance=request.url.path, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(first['loc'])}: {first['msg']}"
        return problem(422, detail, instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return problem(exc.status_code, str(exc.detail), instance=request.url.path, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "an unexpected error occurred; it has been logged", instance=request.url.path)


# Documented answers of the campaign, warning and meeting writes (OpenAPI).
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or unknown token"},
    403: {"description": "read-only credential, or a unit that may not do this"},
    404: {"description": "unknown campaign"},
    409: {"description": "already recorded"},
    422: {"description": "invalid body or a broken rule"},
}
