"""School logistics: annual targets, recognitions, compliance records (台账) and petitions (信访)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response

from contracts.api import Page
from contracts.api_logistics import (
    CatalogueTargetsIn,
    ComplianceCellOut,
    ComplianceOut,
    ComplianceRecordIn,
    PetitionAnswerIn,
    PetitionCloseIn,
    PetitionIn,
    PetitionOut,
    RecognitionIn,
    RecognitionOut,
    TargetIn,
    TargetsOut,
    WithdrawalIn,
    Written,
)
from contracts.catalogue import default_catalogue
from contracts.text import Day
from events.base import local_date
from projections.compliance import compliance_matrix, compliance_rates
from projections.petitions import get_petition, list_petitions, petition_rates
from projections.targets import list_recognitions, target_progress
from services.api.deps import (
    CursorQ,
    LimitQ,
    PlatformDep,
    PrincipalDep,
    answer,
    decode_cursor,
    decode_position,
    encode_cursor,
    require_lead,
    require_writer,
)
from services.api.problems import ProblemError
from services.api.sheets import (
    COMPLIANCE_STATUS,
    XLSX_MEDIA_TYPE,
    SheetFormat,
    catalogue_names,
    compliance_tables,
    sheet_format,
    sheet_response,
    targets_tables,
)
from services.kernel.principal import Principal
from services.settings import get_settings

router = APIRouter(prefix="/api/v1", tags=["logistics"])

_WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or unknown token"},
    403: {"description": "this unit or role may not do this"},
    409: {"description": "already recorded differently"},
    422: {"description": "invalid body or a broken rule"},
}
SheetQ = Annotated[SheetFormat | None, Depends(sheet_format)]
SHEET_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {XLSX_MEDIA_TYPE: {}, "text/csv": {}}}}
YearQ = Annotated[int | None, Query(ge=2000, le=2100, description="calendar year (default: this year)")]


# -- targets -------------------------------------------------------------------------------------


@router.get("/targets", response_model=TargetsOut, responses=SHEET_RESPONSES)
def targets_progress(platform: PlatformDep, principal: PrincipalDep, year: YearQ = None,
                     fmt: SheetQ = None) -> TargetsOut | Response:
    """Progress against every target of the year, for the county and each town: value, target,
    gap and the value at each month end. As a spreadsheet with ?format=xlsx|csv or an Accept header."""
    today = local_date(platform.clock())
    with platform.read_engine.connect() as conn:
        data = target_progress(conn, platform.app.calendar, year or today.year, today,
                               default_catalogue().targets.targets)
    if fmt is not None:
        return sheet_response(targets_tables(data, get_settings().county_name), fmt, f"targets-{data['year']}",
                              data_date=data["as_of"])
    return TargetsOut(**data)


@router.post("/targets", status_code=201, response_model=Written, responses=_WRITE_RESPONSES)
def targets_set(body: TargetIn, platform: PlatformDep, principal: PrincipalDep) -> Written:
    """Sets (or revises, with a reason) a catalogue target for a year and scope. Lead only."""
    require_lead(principal)
    fields = body.model_dump(exclude_unset=True)
    kwargs: dict[str, Any] = {"value": body.value} if "value" in fields else {}
    return answer(Written, platform.app.set_target(principal, code=body.code, year=body.year, scope=body.scope,
                                        reason=body.reason, now=platform.clock(), **kwargs))


@router.post("/targets/from-catalogue", status_code=201, response_model=list[Written], responses=_WRITE_RESPONSES)
def targets_from_catalogue(body: CatalogueTargetsIn, platform: PlatformDep, principal: PrincipalDep) -> list[Written]:
    """Sets every catalogue target (the seeds' levels) for the county for a year. Lead only."""
    require_lead(principal)
    targets = platform.app.set_catalogue_targets(principal, year=body.year, now=platform.clock())
    return [answer(Written, w) for w in targets]


# -- recognitions ----------------------------------------------------------------------------------


def _recognition_out(r: dict[str, Any]) -> RecognitionOut:
    return RecognitionOut(id=r["recognition_id"], **{k: r[k] for k in (
        "school_id", "kind", "level", "awarded_on", "awarding_body", "withdrawn_on", "withdrawal_reason")})


@router.get("/recognitions", response_model=Page[RecognitionOut])
def recognitions_index(
    platform: PlatformDep, principal: PrincipalDep, limit: LimitQ = 100, cursor: CursorQ = None,
    school: Annotated[str | None, Query(max_length=40)] = None,
    kind: Annotated[str | None, Query(max_length=60)] = None,
    active_on: Annotated[Day | None, Query(description="only recognitions held on this day")] = None,
) -> Page[RecognitionOut]:
    after = _int_cursor(cursor)
    with platform.read_engine.connect() as conn:
        rows = list_recognitions(conn, school=school, kind=kind, active_on=active_on, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[RecognitionOut](items=[_recognition_out(r) for r in rows],
                                next_cursor=encode_cursor(str(rows[-1]["position"])) if more else None)


@router.post("/recognitions", status_code=201, response_model=Written, responses=_WRITE_RESPONSES)
def recognitions_create(body: RecognitionIn, platform: PlatformDep, principal: PrincipalDep,
                        response: Response) -> Written:
    """Records that a school was recognised (green school, water-saving school, 示范性食堂, ...),
    with the awarding level and date. Lead only."""
    require_lead(principal)
    w = platform.app.recognise_school(
        principal, school_id=body.school_id, kind=body.kind, level=body.level, awarded_on=body.awarded_on,
        awarding_body=body.awarding_body, evidence=list(body.evidence), now=platform.clock())
    response.headers["Location"] = f"/api/v1/recognitions?school={body.school_id}"
    return answer(Written, w)


@router.post("/recognitions/{recognition_id}/withdraw", response_model=Written, responses=_WRITE_RESPONSES)
def recognitions_withdraw(recognition_id: str, body: WithdrawalIn, platform: PlatformDep,
                          principal: PrincipalDep) -> Written:
    """Withdraws a recognition (e.g. failed the annual re-review). Lead only."""
    require_lead(principal)
    return answer(Written, platform.app.withdraw_recognition(principal, recognition=recognition_id,
                                                             withdrawn_on=body.withdrawn_on,
                                                             reason=body.reason, now=platform.clock()))


# -- compliance --------------------------------------------------------------------------------------


def _visible_kinds(platform: Any, principal: Principal) -> list[str] | None:
    """Liaisons see the kinds their unit logs or answers for; lead and auditors see all."""
    if principal.can_read_all:
        return None
    return [k.code for k in platform.app.calendar.kinds
            if principal.agency in k.loggers or principal.agency == k.responsible]


@router.get("/compliance/calendar")
def compliance_calendar(platform: PlatformDep, principal: PrincipalDep) -> dict[str, Any]:
    """The compliance calendar: kinds, cadences, due days and grace, who owes and who logs."""
    return platform.app.calendar.model_dump(mode="json")


@router.get("/compliance", response_model=ComplianceOut, responses=SHEET_RESPONSES)
def compliance_index(
    platform: PlatformDep, principal: PrincipalDep, limit: LimitQ = 200, cursor: CursorQ = None,
    school: Annotated[str | None, Query(max_length=40)] = None,
    kind: Annotated[str | None, Query(max_length=60)] = None,
    period: Annotated[str | None, Query(max_length=12, description="a period label, e.g. 2025-Q1")] = None,
    town: Annotated[str | None, Query(max_length=100)] = None,
    year: YearQ = None,
    status: Annotated[str | None, Query(pattern="^(on_time|late|missing|pending)$")] = None,
    fmt: SheetQ = None,
) -> ComplianceOut | Response:
    """The compliance matrix school x kind x period (on_time / late / missing / pending) with
    rates per kind, town, school and responsible unit. Rates cover every cell matched by the
    filters; ``items`` is paged. As a spreadsheet (?format=xlsx|csv or an Accept header) it holds
    every matched cell and the rates."""
    today = local_date(platform.clock())
    visible = _visible_kinds(platform, principal)
    if kind is not None and visible is not None and kind not in visible:
        raise ProblemError(403, f"a liaison of {principal.agency!r} may not read {kind!r} records")
    calendar = platform.app.calendar
    if kind is not None and kind not in {k.code for k in calendar.kinds}:
        raise ProblemError(422, f"unknown compliance kind {kind!r}")
    with platform.read_engine.connect() as conn:
        cells = compliance_matrix(conn, calendar, today, year=year, school=school, kind=kind, period=period,
                                  town=town, kinds=visible)
    rates = compliance_rates(cells, per_school=school is not None or town is not None)
    if status is not None:
        cells = [c for c in cells if c["status"] == status]
    if fmt is not None:
        with platform.read_engine.connect() as conn:
            units, schools = catalogue_names(conn)
        kinds = {k.code: k.name for k in calendar.kinds}
        chosen = {"学校": schools.get(school or "", school), "台账类别": kinds.get(kind or "", kind), "周期": period,
                  "乡镇": town, "年度": year,
                  "状态": COMPLIANCE_STATUS.get(status or "")}
        filters = "，".join(f"{k}：{v}" for k, v in chosen.items() if v is not None)
        return sheet_response(compliance_tables(cells, rates, kinds, units, schools, filters), fmt,
                              f"compliance-{today}", data_date=today.isoformat())
    after = decode_cursor(cursor)
    if after is not None:
        cells = [c for c in cells if f"{c['school_id']}|{c['kind']}|{c['period']}" > after]
    page = cells[:limit]
    more = len(cells) > limit
    last = page[-1] if page else None
    return ComplianceOut(
        as_of=today.isoformat(), items=[ComplianceCellOut(**c) for c in page], total=len(cells), rates=rates,
        next_cursor=encode_cursor(f"{last['school_id']}|{last['kind']}|{last['period']}") if more and last else None,
    )


@router.post("/compliance-records", status_code=201, response_model=Written, responses=_WRITE_RESPONSES)
def compliance_records_create(
    body: ComplianceRecordIn, platform: PlatformDep, principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> Written:
    """Logs a periodic record (台账) for a school: kind, period and evidence references. Only the
    units the calendar names for the kind may log it."""
    require_writer(principal)
    return answer(Written, platform.app.log_compliance_record(
        principal, school_id=body.school_id, kind=body.kind, period=body.period, occurred_on=body.occurred_on,
        evidence=list(body.evidence), measure=body.measure, note=body.note, idempotency_key=idempotency_key,
        body=body.model_dump(mode="json"), now=platform.clock()))


# -- petitions ---------------------------------------------------------------------------------------


def _int_cursor(cursor: str | None) -> int | None:
    return decode_position(cursor)


def _petition_out(r: dict[str, Any]) -> PetitionOut:
    return PetitionOut(id=r["petition_id"], **{k: r[k] for k in (
        "reference", "receiving_unit", "handling_unit", "channel", "topic", "school_id", "summary", "received_on",
        "due_on", "answered_on", "answered_on_time", "closed_on", "satisfaction", "status")})


@router.get("/petitions", response_model=Page[PetitionOut])
def petitions_index(
    platform: PlatformDep, principal: PrincipalDep, limit: LimitQ = 100, cursor: CursorQ = None, year: YearQ = None,
    status: Annotated[str | None, Query(pattern="^(received|answered|closed)$")] = None,
) -> Page[PetitionOut]:
    """Petitions newest first. Liaisons see those their unit received or handles."""
    unit = None if principal.can_read_all else principal.agency
    with platform.read_engine.connect() as conn:
        rows = list_petitions(conn, year=year, status=status, unit=unit, after=_int_cursor(cursor), limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[PetitionOut](items=[_petition_out(r) for r in rows],
                             next_cursor=encode_cursor(str(rows[-1]["position"])) if more else None)


@router.get("/petitions/rates")
def petitions_rates(platform: PlatformDep, principal: PrincipalDep, year: YearQ = None) -> dict[str, Any]:
    """办结率 (closed / received), 满意率 (satisfied or basically satisfied / evaluated) and the
    on-time answer rate of the year's petitions, by month and topic, with last year's."""
    today = local_date(platform.clock())
    with platform.read_engine.connect() as conn:
        return petition_rates(conn, year or today.year, today)


@router.get("/petitions/{petition_id}", response_model=PetitionOut, responses={404: {"description": "unknown"}})
def petitions_detail(petition_id: str, platform: PlatformDep, principal: PrincipalDep) -> PetitionOut:
    with platform.read_engine.connect() as conn:
        row = get_petition(conn, petition_id)
    if row is None or (not principal.can_read_all
                       and principal.agency not in (row["receiving_unit"], row["handling_unit"])):
        raise ProblemError(404, f"unknown petition {petition_id!r}")
    return _petition_out(row)


@router.post("/petitions", status_code=201, response_model=Written, responses=_WRITE_RESPONSES)
def petitions_create(body: PetitionIn, platform: PlatformDep, principal: PrincipalDep, response: Response) -> Written:
    """Registers a logistics petition (信访件) by its case number, assigned to a handling unit.
    Only the petitions bureau and the lead bureau register petitions; no personal data."""
    require_writer(principal)
    w = platform.app.receive_petition(
        principal, reference=body.reference, channel=body.channel, topic=body.topic, school_id=body.school_id,
        summary=body.summary, handling_unit=body.handling_unit, received_on=body.received_on,
        body=body.model_dump(mode="json"), now=platform.clock())
    response.headers["Location"] = f"/api/v1/petitions/{w.id}"
    return answer(Written, w)


@router.post("/petitions/{petition_id}/answer", response_model=Written, responses=_WRITE_RESPONSES)
def petitions_answer(petition_id: str, body: PetitionAnswerIn, platform: PlatformDep,
                     principal: PrincipalDep) -> Written:
    """The handling unit (or the lead) answers the petition."""
    require_writer(principal)
    return answer(Written, platform.app.answer_petition(principal, petition=petition_id, answered_on=body.answered_on,
                                             answer=body.answer, now=platform.clock()))


@router.post("/petitions/{petition_id}/close", response_model=Written, responses=_WRITE_RESPONSES)
def petitions_close(petition_id: str, body: PetitionCloseIn, platform: PlatformDep,
                    principal: PrincipalDep) -> Written:
    """Closes (办结) an answered petition with the petitioner's satisfaction."""
    require_writer(principal)
    return answer(Written, platform.app.close_petition(principal, petition=petition_id, closed_on=body.closed_on,
                                            satisfaction=body.satisfaction, note=body.note, now=platform.clock()))
