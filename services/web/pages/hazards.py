"""The rectification loop's other hands: a unit reports a hazard (隐患上报); the lead assigns it,
verifies and closes it (核验销号), sends it back (回头看) and extends its deadline, on the item's
own page; a responsible unit requests an extension there (申请延期), which the lead grants or
refuses. Each form calls the same use case as the API, through services/web/once.py."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from contracts.api_rectifications import (
    AssignmentIn,
    ExtensionIn,
    ExtensionRefusalIn,
    ExtensionRequestIn,
    HazardIn,
    RejectionIn,
    VerificationIn,
)
from contracts.catalogue import default_catalogue
from events.errors import DomainError
from projections.catalogue_view import list_schools
from projections.rectification_board import RectificationBoard, get_item
from services.api.deps import PlatformDep, today_of
from services.documents import labels
from services.platform import Platform
from services.web.base import (
    Posted,
    PostedDep,
    SessionDep,
    WebError,
    domain_message,
    form_act,
    once,
    redirect,
    render,
    require_lead,
    require_overview,
    require_unit_writer,
    unit_names,
    uuid_or_404,
)
from services.web.forms import Form
from services.web.once import form_key
from services.web.pages.evidence import attach_files, evidence_of
from services.web.session import WebSession

router = APIRouter(include_in_schema=False)


def hazard_choices() -> tuple[dict[str, str], dict[str, str]]:
    h = default_catalogue().hazards
    return {c.code: c.name for c in h.categories}, {s.code: s.name for s in h.severities}


def towns_of(platform: Platform) -> dict[str, list[dict[str, Any]]]:
    with platform.read_engine.connect() as conn:
        schools = list_schools(conn, after=None, limit=100_000)
    towns: dict[str, list[dict[str, Any]]] = {}
    for s in sorted(schools, key=lambda s: (s["town"], s["school_id"])):
        towns.setdefault(s["town"], []).append(s)
    return towns


def report_hazards(platform: Platform, post: Posted, *, key: str, school_ids: list[str], category: str,
                   severity: str, description: str, found_on: date, evidence: list[str]) -> None:
    """One hazard per school, each with its own idempotency key so a replay stores none twice."""
    for school_id in school_ids:
        body = HazardIn.model_validate({"reported_by": {"kind": "unit"}, "school_id": school_id,
                                        "category": category, "severity": severity, "description": description,
                                        "found_on": found_on, "evidence": evidence})
        platform.app.report_hazard(
            post.session.principal, kind="unit", units=[], school_id=body.school_id, category=body.category,
            severity=body.severity, description=body.description, found_on=body.found_on,
            idempotency_key=f"{key}:hazard:{school_id}", now=platform.clock(), evidence=list(body.evidence),
            body=body.model_dump(mode="json", exclude=None if body.evidence else {"evidence"}))


# -- a unit reports a hazard ---------------------------------------------------------------


def _hazard_form(request: Request, session: WebSession, platform: Platform, code: str, names: dict[str, str], *,
                 errors: dict[str, str], values: dict[str, Any], status: int = 200) -> HTMLResponse:
    categories, severities = hazard_choices()
    return render(request, "hazard_form.html.j2", session, status=status, units=names, code=code, errors=errors,
                  values=values, categories=categories, severities=severities, towns=towns_of(platform))


@router.get("/units/{code}/hazards/new", response_class=HTMLResponse)
def hazard_form(request: Request, code: str, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    names = unit_names(platform)
    require_unit_writer(session, code, names)
    return _hazard_form(request, session, platform, code, names, errors={},
                        values={"found_on": today_of(platform).isoformat()})


@router.post("/units/{code}/hazards/new", response_class=HTMLResponse)
def report_hazard(request: Request, code: str, post: PostedDep, platform: PlatformDep) -> Response:
    names = unit_names(platform)
    require_unit_writer(post.session, code, names)
    today = today_of(platform)

    def run() -> Response:
        categories, severities = hazard_choices()
        f = Form(post.form)
        school = f.choice("school_id", "学校", set(_known_schools(platform)))
        category = f.choice("category", "隐患类别", categories)
        severity = f.choice("severity", "隐患等级", severities)
        description = f.text("description", "隐患描述", max_len=4000)
        found_on = f.day("found_on", "发现日期", not_after=today)
        photos = attach_files(platform, post, f) if f.ok else []
        if f.ok and found_on is not None:
            try:
                key = form_key(post.session.principal, request.url.path, post.form, today)
                report_hazards(platform, post, key=f"web-form:{key}", school_ids=[school], category=category,
                               severity=severity, description=description, found_on=found_on, evidence=photos)
            except DomainError as e:
                f.fail("_form", domain_message(e))
            else:
                platform.runner.catch_up(RectificationBoard.name)
                return redirect(f"/units/{quote(code)}/work?done=hazard")
        return _hazard_form(request, post.session, platform, code, names, errors=f.errors, values=f.values,
                            status=422)

    return once(request, post, platform, f"/units/{quote(code)}/work", run)


def _known_schools(platform: Platform) -> list[str]:
    return [s["school_id"] for town in towns_of(platform).values() for s in town]


# -- the lead's actions on one item --------------------------------------------------------


def item_page(request: Request, session: WebSession, platform: Platform, item_id: str, *,
              errors: dict[str, dict[str, str]] | None = None, values: dict[str, dict[str, Any]] | None = None,
              status: int = 200) -> HTMLResponse:
    iid = str(uuid_or_404(item_id, "整改事项"))
    with platform.read_engine.connect() as conn:
        row = get_item(conn, iid, today_of(platform))
    if row is None:
        raise WebError(404, "未找到该整改事项")
    p = session.principal
    if not p.can_read_all and p.agency not in {u["unit"] for u in row["units"]}:
        require_overview(session)  # a liaison sees only the items its unit is responsible for
    categories, _ = hazard_choices()
    responsible = p.can_write and p.agency in {u["unit"] for u in row["units"]}
    files = evidence_of(platform, [iid]).get(iid, [])
    before = [e for e in files if e["event_type"] == "HazardReported"]
    return render(request, "board_item.html.j2", session, status=status, item=row, categories=categories,
                  before=before, after=[e for e in files if e not in before], is_lead=p.role == "lead",
                  can_request=responsible, errors=errors or {}, values=values or {}, status_names=labels.RECT_STATUS)


@router.get("/rectifications/{item_id}", response_class=HTMLResponse)
def board_item(request: Request, item_id: str, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    return item_page(request, session, platform, item_id)


def _lead_write(request: Request, item_id: str, post: Posted, platform: Platform, form: str, done: str,
                act: Any) -> Response:
    require_lead(post.session)
    return _item_write(request, item_id, post, platform, form, done, act)


def _item_write(request: Request, item_id: str, post: Posted, platform: Platform, form: str, done: str,
                act: Any) -> Response:
    """One form of the item page: done, back to the item with its notice; refused, the item page
    with the message beside the form."""
    iid = uuid_or_404(item_id, "整改事项")

    def done_() -> Response:
        platform.runner.catch_up(RectificationBoard.name)
        return redirect(f"/rectifications/{iid}?done={done}")

    def run() -> Response:
        return form_act(post, lambda f: act(f, iid), done=done_, again=lambda f: item_page(
            request, post.session, platform, item_id, errors={form: f.errors}, values={form: f.values}, status=422))

    return once(request, post, platform, f"/rectifications/{iid}", run)


@router.post("/rectifications/{item_id}/assign", response_class=HTMLResponse)
def assign(request: Request, item_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    names = unit_names(platform)
    today = today_of(platform)

    def act(f: Form, iid: Any) -> bool:
        lead_unit = f.choice("lead_unit", "牵头整改单位", names)
        cooperating = [u for u in f.units("cooperating_units", "配合单位", names) if u != lead_unit]
        deadline = f.day("deadline", "整改期限", not_before=today)
        measures = f.lines("measures", "整改措施", required=True, max_items=30, max_len=1000)
        amount_text = f.text("funds_amount", "整改资金", required=False, max_len=20) or "0"
        source = f.text("funds_source", "资金来源", required=False, max_len=200) or "无需资金"
        try:
            amount = Decimal(amount_text)
        except InvalidOperation:
            f.fail("funds_amount", "整改资金须为数字（单位：元），例如 5000 或 1200.50。")
            return False
        body = f.model(AssignmentIn, {"lead_unit": lead_unit, "cooperating_units": cooperating, "deadline": deadline,
                                      "measures": measures, "funds": {"amount_cny": amount, "source": source}},
                       {"lead_unit": "lead_unit", "cooperating_units": "cooperating_units", "deadline": "deadline",
                        "measures": "measures", "funds": "funds_amount"})
        if body is None:
            return False
        platform.app.assign_rectification(
            post.session.principal, iid, lead_unit=body.lead_unit, cooperating_units=list(body.cooperating_units),
            deadline=body.deadline, measures=list(body.measures),
            funds={"amount_cny": format(body.funds.amount_cny, "f"), "source": body.funds.source},
            now=platform.clock())
        return True

    return _lead_write(request, item_id, post, platform, "assign", "assigned", act)


@router.post("/rectifications/{item_id}/verify", response_class=HTMLResponse)
def verify(request: Request, item_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    def act(f: Form, iid: Any) -> bool:
        note = f.text("note", "核验意见", required=False, max_len=2000)
        body = f.model(VerificationIn, {"note": note}, {"note": "note"})
        if body is None:
            return False
        platform.app.verify_rectification(post.session.principal, iid, note=body.note, now=platform.clock())
        return True

    return _lead_write(request, item_id, post, platform, "verify", "verified", act)


def _deadline_change(request: Request, item_id: str, post: Posted, platform: Platform, form: str, done: str,
                     use_case: Any, model: Any, reason_label: str, *, lead: bool = True) -> Response:
    today = today_of(platform)

    def act(f: Form, iid: Any) -> bool:
        reason = f.text("reason", reason_label, max_len=4000)
        new_deadline = f.day("new_deadline", "新的整改期限" if lead else "申请延至", not_before=today)
        body = f.model(model, {"reason": reason, "new_deadline": new_deadline},
                       {"reason": "reason", "new_deadline": "new_deadline"})
        if body is None:
            return False
        use_case(post.session.principal, iid, reason=body.reason, new_deadline=body.new_deadline, now=platform.clock())
        return True

    write = _lead_write if lead else _item_write
    return write(request, item_id, post, platform, form, done, act)


@router.post("/rectifications/{item_id}/reject", response_class=HTMLResponse)
def reject(request: Request, item_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    return _deadline_change(request, item_id, post, platform, "reject", "rejected",
                            platform.app.reject_rectification, RejectionIn, "退回理由")


@router.post("/rectifications/{item_id}/extend", response_class=HTMLResponse)
def extend(request: Request, item_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    return _deadline_change(request, item_id, post, platform, "extend", "extended",
                            platform.app.extend_rectification_deadline, ExtensionIn, "延期理由")


@router.post("/rectifications/{item_id}/refuse-extension", response_class=HTMLResponse)
def refuse_extension(request: Request, item_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    def act(f: Form, iid: Any) -> bool:
        reason = f.text("reason", "不同意的理由", max_len=4000)
        body = f.model(ExtensionRefusalIn, {"reason": reason}, {"reason": "reason"})
        if body is None:
            return False
        platform.app.refuse_rectification_extension(post.session.principal, iid, reason=body.reason,
                                                    now=platform.clock())
        return True

    return _lead_write(request, item_id, post, platform, "refuse", "extension-refused", act)


@router.post("/units/{code}/rectifications/{item_id}/extension-request", response_class=HTMLResponse)
def request_extension(request: Request, code: str, item_id: str, post: PostedDep, platform: PlatformDep) -> Response:
    """申请延期, by the responsible unit's liaison (the domain checks the unit is responsible)."""
    require_unit_writer(post.session, code, unit_names(platform))
    return _deadline_change(request, item_id, post, platform, "request", "extension-requested",
                            platform.app.request_rectification_extension, ExtensionRequestIn, "申请理由", lead=False)
