"""Request dependencies: the platform, the acting principal, role checks, paging."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, TypeAdapter, ValidationError

from contracts.text import find_control_character
from events.base import local_date
from services.api.problems import ProblemError
from services.kernel.principal import Principal
from services.kernel.results import Written
from services.platform import Platform
from services.security.audit import note_principal, note_target_unit, note_unknown_token
from services.settings import get_settings

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="Token from `lianxi token issue`")

# Page-size cap (OWASP API4), from LIANXI_MAX_PAGE_SIZE; read once, it shapes the OpenAPI document.
MAX_PAGE = get_settings().max_page_size


def platform_of(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def get_platform(request: Request) -> Platform:  # async: no thread hop to read app state
    return platform_of(request)


PlatformDep = Annotated[Platform, Depends(get_platform)]


def today_of(platform: Platform) -> date:
    """Today in the county (its calendar day, not UTC's): what "overdue" and "this year" count from."""
    return local_date(platform.clock())


async def get_principal(
    platform: PlatformDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return await principal_for(platform, credentials.credentials if credentials is not None else None)


def bearer_token(request: Request) -> str | None:
    """What ``HTTPBearer(auto_error=False)`` finds, for routes that skip dependency solving."""
    scheme, credential = get_authorization_scheme_param(request.headers.get("authorization"))
    return credential if scheme and credential and scheme.lower() == "bearer" else None


async def principal_for(platform: Platform, token: str | None) -> Principal:
    """async: a system token's cache hit needs no worker thread. A miss, or a person's token
    (checked against its account on every request), is a database query: it runs in the thread
    pool, never on the event loop every other request shares."""
    if token is None:
        raise ProblemError(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    hit = platform.tokens.cached(token)
    principal = hit[0] if hit is not None else await run_in_threadpool(platform.tokens.authenticate, token)
    if principal is None:
        note_unknown_token(token)
        raise ProblemError(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    note_principal(principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


# -- routes that skip dependency solving answer bad input exactly as FastAPI would ----------

_NO_BODY = object()


async def json_payload(request: Request) -> Any:
    """The request body as FastAPI reads it for a JSON body parameter: parsed only when the
    Content-Type is JSON, the raw bytes otherwise (validation then refuses them), ``_NO_BODY``
    when empty. Malformed JSON is refused at once, before authentication, as FastAPI does."""
    raw = await request.body()
    if not raw:
        return _NO_BODY
    if not is_json(request):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error",
                                       "input": {}, "ctx": {"error": e.msg}}], body=e.doc) from None
    except UnicodeDecodeError:  # bytes that are no Unicode text: FastAPI answers 400 here
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from None


def is_json(request: Request) -> bool:
    """Whether FastAPI reads this request's body as JSON: an application/json or
    application/*+json Content-Type."""
    main, _, sub = request.headers.get("content-type", "").partition(";")[0].strip().lower().partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def validated_json(adapter: TypeAdapter[T], raw: bytes) -> T | None:
    """``raw`` parsed and validated in one pass by the compiled adapter, or None when that
    fails for any reason: the caller then takes ``json_payload`` and ``validated``, whose
    answers are FastAPI's. On what it accepts it gives what they would (tests compare)."""
    try:
        return adapter.validate_json(raw)
    except ValidationError:
        return None


def validated(adapter: TypeAdapter[T], value: Any, loc: tuple[str, ...], errors: list[Any]) -> T | None:
    """``value`` validated by a compiled adapter, or None with its errors (located as FastAPI
    locates them) added to ``errors``."""
    if value is _NO_BODY:
        errors.append({"type": "missing", "loc": loc, "msg": "Field required", "input": None})
        return None
    try:
        return adapter.validate_python(value, from_attributes=True)  # as FastAPI calls it
    except ValidationError as e:
        errors.extend({**err, "loc": (*loc, *err["loc"])} for err in e.errors(include_url=False))
        return None


def answer(model: type[M], w: Written) -> M:
    """A write's internal answer in the response model of its route (each route's contract
    shows a subset of the same fields)."""
    return model.model_validate({name: getattr(w, name) for name in model.model_fields})


def require_reader_of(principal: Principal, agency: str) -> None:
    """Liaisons read only their own unit; lead and auditor read everything."""
    note_target_unit(agency)  # reads of another unit's data are audited
    if not principal.can_read_all and principal.agency != agency:
        raise ProblemError(403, f"a {principal.role} of {principal.agency!r} may not read {agency!r}")


def require_writer(principal: Principal) -> None:
    if not principal.can_write:
        raise ProblemError(403, f"a {principal.role} credential is read-only")


def require_lead(principal: Principal) -> None:
    if principal.role != "lead":
        raise ProblemError(403, "only the lead unit may do this")


def require_all_reader(principal: Principal) -> None:
    note_target_unit("*")  # every unit's data: audited
    if not principal.can_read_all:
        raise ProblemError(403, "only the lead unit and auditors may read this")


LimitQ = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")]
CursorQ = Annotated[str | None, Query(max_length=200, description="next_cursor from the previous page")]


_CURSOR_TAG = "c1:"


def encode_cursor(value: str) -> str:
    """Opaque cursors: clients pass them back, never build them."""
    return base64.urlsafe_b64encode((_CURSOR_TAG + value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith(_CURSOR_TAG) or not raw.isascii() or find_control_character(raw):
        raise ProblemError(400, "cursor is not one this API issued")
    return raw[len(_CURSOR_TAG):]


_POSITION = re.compile(r"[0-9]{1,18}")  # ASCII digits only ("²".isdigit()), and fits a BIGINT


def decode_position(cursor: str | None) -> int | None:
    """A cursor that carries a log position (or another row number)."""
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    if not _POSITION.fullmatch(raw):
        raise ProblemError(400, "cursor is not one this API issued")
    return int(raw)
