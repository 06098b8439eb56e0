"""The annual review (年度考核) and appeals against it.

Reads: the whole review is for the lead bureau and auditors; a unit's liaison reads its own
unit's part (to see what it may appeal). Every review is replayed from the verified log and
embeds the checkpoint it was computed at; a log that fails verification gets 409.
Writes: a unit appeals one of its own deductions; the lead bureau decides the appeal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from pydantic import Field

from contracts.api import Created, Request
from contracts.rules import DEFAULT_RULES, RulesError, RuleSet, named_rules, rules_for_year
from services.api.deps import PlatformDep, PrincipalDep, require_all_reader, require_reader_of, require_writer
from services.api.problems import ProblemError
from services.api.sheets import XLSX_MEDIA_TYPE, review_tables, sheet_response
from services.documents.review import MEDIA_TYPES, REVIEW_FORMAT, render, to_json
from services.kernel.use_cases import parse_id
from services.reviews.document import compute_review, find_deduction
from services.reviews.facts import ReviewError, parse_as_of
from services.security.checkpoint import CheckpointError

router = APIRouter(prefix="/api/v1", tags=["reviews"])

RulesQ = Annotated[str | None, Query(max_length=80, description=f"rules set of contracts/rules/, e.g. "
                                                                f"{DEFAULT_RULES}; default the rules declaring "
                                                                "the year")]
AsOfQ = Annotated[str | None, Query(max_length=40, description="count what was recorded by then: a date "
                                                              "(end of that day) or a date-time with offset; "
                                                              "default the log head")]
YEAR_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "not allowed to read this review"},
    409: {"description": "the log fails hash-chain verification; no review is computed"},
    422: {"description": "unknown rules set, bad as_of or year"},
}


class AppealIn(Request):  # strict, trimmed, storable text, like every other request body
    clause: str = Field(min_length=1, max_length=20, description="the clause of the deduction")
    item: str = Field(min_length=1, max_length=200, description="the deduction's item key, as the review shows it")
    reason: str = Field(min_length=1, max_length=4000)
    rules: str | None = Field(default=None, max_length=80, description="the rules set the review used "
                                                                      "(default the rules declaring the year)")


class DecisionIn(Request):
    upheld: bool = Field(description="true: the deduction is withdrawn; false: it stands")
    reason: str = Field(min_length=1, max_length=4000)


def _rules(name: str | None, year: int) -> RuleSet:
    try:
        return named_rules(name) if name else rules_for_year(year)
    except RulesError as e:
        raise ProblemError(422, str(e)) from None


def _review(platform: Any, year: int, rules: RuleSet, as_of: str | None, compare: RuleSet | None = None) -> Any:
    if not 2000 <= year <= 2100:
        raise ProblemError(422, f"year {year} is out of range")
    try:
        moment = parse_as_of(as_of) if as_of else None
        return compute_review(platform, year=year, rules=rules, as_of=moment, compare=compare)
    except ReviewError as e:
        status = 409 if "verification" in str(e) else 422
        raise ProblemError(status, str(e)) from None
    except CheckpointError as e:
        raise ProblemError(503, f"checkpoint key unavailable: {e}") from None


@router.get("/reviews/{year}", responses={200: {"content": {v: {} for v in MEDIA_TYPES.values()}}, **YEAR_ERRORS})
def get_review(
    year: int, platform: PlatformDep, principal: PrincipalDep, rules: RulesQ = None, as_of: AsOfQ = None,
    compare_rules: Annotated[str | None, Query(max_length=80, description="draft rules set: side-by-side "
                                                                          "scores and ranks")] = None,
    format: Annotated[Literal["json", "html", "docx", "xlsx", "csv"] | None,
                      Query(description="json (default) | html | docx | xlsx | csv")] = None,
    accept: Annotated[str | None, Header(max_length=2000)] = None,
) -> Response:
    """Every unit's score and rank for the year, each credit and deduction with its clause and
    event ids, backdated entries (补录), appeals, and the checkpoint the review was computed at.
    Same log, rules and as_of: byte-identical JSON."""
    require_all_reader(principal)
    document = _review(platform, year, _rules(rules, year), as_of,
                       _rules(compare_rules, year) if compare_rules else None)
    fmt = format or ("xlsx" if XLSX_MEDIA_TYPE in (accept or "") else "json")
    if fmt in ("xlsx", "csv"):  # the ranking, clause scores and items; CSV carries the clause scores
        if document["format"] != REVIEW_FORMAT:
            raise ProblemError(422, "the rules comparison has no spreadsheet form; ask for json, html or docx")
        return sheet_response(review_tables(document), "xlsx" if fmt == "xlsx" else "csv", f"review-{year}",
                              data_date=document["as_of"][:10], csv_table=1)
    headers = {}
    if fmt == "docx":
        headers["Content-Disposition"] = f'attachment; filename="review-{year}.docx"'
    return Response(render(document, fmt), media_type=MEDIA_TYPES[fmt], headers=headers)


@router.get("/reviews/{year}/units/{unit}", responses=YEAR_ERRORS)
def get_unit_review(
    year: int, unit: str, platform: PlatformDep, principal: PrincipalDep, rules: RulesQ = None,
    as_of: AsOfQ = None,
) -> Response:
    """One unit's part of the review (its liaison reads it to see what it may appeal)."""
    require_reader_of(principal, unit)
    document = _review(platform, year, _rules(rules, year), as_of)
    part = next((u for u in document["units"] if u["unit"] == unit), None)
    if part is None:
        raise ProblemError(404, f"unknown member unit {unit!r}")
    body = {k: document[k] for k in ("format", "year", "as_of", "rules", "checkpoint")}
    body["unit"] = part
    body["appeals"] = [a for a in document["appeals"] if a["unit"] == unit]
    return Response(to_json(body), media_type="application/json")


@router.post("/reviews/{year}/units/{unit}/appeals", status_code=201, response_model=Created, responses={
    403: {"description": "another unit's deduction, or a read-only credential"},
    409: {"description": "the deduction was already appealed, or the log fails verification"},
    422: {"description": "no such deduction in the unit's review"},
})
def file_appeal(year: int, unit: str, body: AppealIn, platform: PlatformDep, principal: PrincipalDep) -> Created:
    """The unit appeals one of its own deductions (申诉); the lead bureau decides it."""
    require_writer(principal)
    if principal.agency != unit:
        raise ProblemError(403, f"a {principal.role} of {principal.agency!r} may not appeal for {unit!r}")
    rules = _rules(body.rules, year)
    document = _review(platform, year, rules, None)
    entry = find_deduction(document, unit, body.clause, body.item)
    if entry is None or entry["points"] <= 0:
        raise ProblemError(422, f"no deduction {body.item!r} under clause {body.clause!r} in the {year} review of "
                                f"{unit!r} ({rules.name})")
    a = platform.app.file_review_appeal(principal, year=year, clause=body.clause, item=body.item,
                                        points=entry["points"], rules=rules.name, reason=body.reason,
                                        now=platform.clock())
    return Created(id=a.id, position=a.position)


@router.post("/reviews/{year}/appeals/{appeal_id}/decision", response_model=Created, responses={
    403: {"description": "only the lead bureau decides appeals"},
    404: {"description": "unknown appeal"},
    409: {"description": "already decided"},
})
def decide_appeal(year: int, appeal_id: str, body: DecisionIn, platform: PlatformDep,
                  principal: PrincipalDep) -> Created:
    """The lead bureau upholds (the deduction is withdrawn) or rejects an appeal, with a reason."""
    require_writer(principal)
    if principal.role != "lead":
        raise ProblemError(403, "only the lead bureau decides review appeals")
    a = platform.app.decide_review_appeal(principal, parse_id(appeal_id, "appeal"), year=year,
                                          upheld=body.upheld, reason=body.reason,
                                          now=platform.clock())
    return Created(id=a.id, position=a.position)
