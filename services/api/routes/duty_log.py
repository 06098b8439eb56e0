"""The duty log (履职记录): a unit records what it did, and reads its ledger (责任台账) built from it."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import StringConstraints, TypeAdapter
from starlette.types import ASGIApp, Receive, Scope, Send

from contracts.api import Created, DutyLogIn, LedgerOut, RectificationStatsOut
from contracts.text import Day
from events.base import local_date
from projections.catalogue_view import get_agency
from projections.ledger import asof_ledger, end_of_day_utc, live_ledger
from projections.periods import Period
from projections.rectification_board import unit_stats
from services.api.deps import (
    PlatformDep,
    PrincipalDep,
    bearer_token,
    is_json,
    json_payload,
    platform_of,
    principal_for,
    require_reader_of,
    require_writer,
    validated,
    validated_json,
)
from services.api.problems import ProblemError
from services.api.sheets import SheetFormat, ledger_tables, sheet_format, sheet_response
from services.kernel.principal import Principal
from services.platform import Platform

SHEET_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
router = APIRouter(prefix="/api/v1", tags=["duty log"])


_BODY: TypeAdapter[DutyLogIn] = TypeAdapter(DutyLogIn)  # compiled once, at import
_KEY: TypeAdapter[str] = TypeAdapter(Annotated[str, StringConstraints(min_length=1, max_length=200)])


async def log_duty(
    body: DutyLogIn, platform: PlatformDep, principal: PrincipalDep, response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> Created:
    """Records a duty performed by the caller's own unit (the unit comes from the token)."""
    # Served by log_duty_direct (DutyLogRoute); this signature documents the route (OpenAPI).
    return await _record(platform, principal, body, idempotency_key)


async def log_duty_direct(request: Request) -> Response:
    """POST /duty-logs without FastAPI's per-request dependency solving (about a fifth of the
    hottest write's CPU, bench/RESULTS.md §1): the same checks in the same order, the same
    answers to bad input (tests/test_duty_log_direct.py compares them with the solved route)."""
    raw = await request.body()
    # A good body parses and validates in one pass; anything else takes FastAPI's way, so
    # that malformed JSON is refused before authentication and every answer is the same.
    body = validated_json(_BODY, raw) if raw and is_json(request) else None
    payload = await json_payload(request) if body is None else None
    platform = platform_of(request)
    principal = await principal_for(platform, bearer_token(request))
    errors: list[Any] = []
    key = request.headers.get("idempotency-key")
    if key is not None:
        key = validated(_KEY, key, ("header", "idempotency-key"), errors)
    if body is None:
        body = validated(_BODY, payload, ("body",), errors)
    if errors or body is None:
        raise RequestValidationError(errors)
    created = await _record(platform, principal, body, key)
    return Response(created.model_dump_json(), status_code=201, media_type="application/json")


async def _record(platform: Platform, principal: Principal, body: DutyLogIn, idempotency_key: str | None) -> Created:
    # async: the hottest write awaits its group commit on the event loop rather than holding
    # a worker thread; the checks before it read caches (unit, schools), not the database.
    require_writer(principal)
    appended = await platform.app.log_duty_async(
        principal, duty_code=body.duty_code, school_ids=list(body.school_ids), occurred_on=body.occurred_on,
        summary=body.summary, findings={"count": body.findings.count, "text": body.findings.text},
        evidence=list(body.evidence), idempotency_key=idempotency_key,
        body=body.model_dump(mode="json"), now=platform.clock(),
    )
    # A replay answers with the same id and position; 201 either way keeps clients simple.
    return Created(id=appended.id, position=appended.position, replayed=appended.replayed)


class DutyLogRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return log_duty_direct


DUTY_LOGS = "/api/v1/duty-logs"


class HotWrite:
    """POST /api/v1/duty-logs straight to ``log_duty_direct``, ahead of the router's walk over
    every included router (FastAPI matches each route twice on the way to this one: about a
    tenth of the write's CPU, bench/RESULTS.md §1). Installed as the router's innermost
    layer, so the exception handlers (problem+json) and every middleware run as for any
    route; anything else, or this path under a root_path or with FastAPI's telemetry on,
    takes the router's own way."""

    def __init__(self, app: ASGIApp, router: Any, route: APIRoute) -> None:
        self.app = app
        self.router = router
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"] == DUTY_LOGS and scope["method"] == "POST"
                and not scope.get("root_path") and "fastapi.telemetry" not in scope):
            scope.setdefault("router", self.router)
            scope["route"] = route = self.route
            scope["endpoint"] = route.endpoint
            scope["path_params"] = {}
            # An exception goes to the exception middleware's handlers, as a route's does.
            response = await log_duty_direct(Request(scope, receive, send))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install_hot_write(app: FastAPI) -> None:
    """After every router is included: the hot write's shortcut (``HotWrite``)."""
    route = next(r for r in router.routes if isinstance(r, DutyLogRoute) and r.path == DUTY_LOGS)
    app.router.middleware_stack = HotWrite(app.router.middleware_stack, app.router, route)


router.add_api_route(
    "/duty-logs", log_duty, methods=["POST"], status_code=201, response_model=Created,
    route_class_override=DutyLogRoute,
    responses={
        200: {"model": Created, "description": "replay of an earlier request with the same Idempotency-Key"},
        403: {"description": "read-only credential"},
        409: {"description": "Idempotency-Key reused with a different body"},
        422: {"description": "invalid body or a broken rule (duty not the unit's, unknown school, future date)"},
    },
)


@router.get("/agencies/{code}/ledger", response_model=LedgerOut,
            responses={200: {"content": {SHEET_MEDIA: {}, "text/csv": {}}},
                       403: {"description": "another unit's ledger"}, 404: {"description": "unknown unit"}})
def agency_ledger(
    code: str, platform: PlatformDep, principal: PrincipalDep,
    period: Annotated[str | None, Query(max_length=10, description="YYYY, YYYY-S1|S2, YYYY-Q1..4 or YYYY-MM")] = None,
    as_of: Annotated[Day | None, Query(description="the ledger as it stood at the end of this day")] = None,
    fmt: Annotated[SheetFormat | None, Depends(sheet_format)] = None,
) -> LedgerOut | Response:
    """The unit's ledger as JSON, or as a spreadsheet (?format=xlsx|csv or an Accept header)."""
    ledger = _ledger(code, platform, principal, period, as_of)
    if fmt is None:
        return ledger
    with platform.read_engine.connect() as conn:
        name = (get_agency(conn, code) or {}).get("name", code)
    return sheet_response(ledger_tables(ledger.model_dump(), name), fmt, f"ledger-{code}-{ledger.period}",
                          data_date=ledger.as_of)


def _ledger(code: str, platform: PlatformDep, principal: PrincipalDep, period: str | None,
            as_of: date | None) -> LedgerOut:
    require_reader_of(principal, code)
    today = local_date(platform.clock())
    if as_of is not None and as_of > today:
        raise ProblemError(422, f"as_of {as_of.isoformat()} is in the future")
    try:
        chosen = Period.parse(period) if period else Period.year_of(as_of or today)
    except ValueError as e:
        raise ProblemError(422, str(e)) from None
    with platform.read_engine.connect() as conn:
        if get_agency(conn, code) is None:
            raise ProblemError(404, f"unknown member unit {code!r}")
        # The rectification block is as of the ledger's day, or the period's last day if earlier:
        # a past period reports what was open then, not today.
        day = min(as_of or today, chosen.end)
        if as_of is None:
            stats = unit_stats(conn, code, today=day, period_start=chosen.start, period_end=chosen.end)
            return LedgerOut(**live_ledger(conn, code, chosen, today), source="live",
                             rectifications=RectificationStatsOut(**stats))
        stats = unit_stats(conn, code, today=day, period_start=chosen.start, period_end=chosen.end,
                           known_by=end_of_day_utc(day))
        return LedgerOut(**asof_ledger(conn, code, chosen, as_of), source="as_of",
                         rectifications=RectificationStatsOut(**stats))
