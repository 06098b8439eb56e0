"""The annual review pages (年度考核): the year, the rules, the ranking, and a drill-down from
any score to the events behind it. The review itself is services/reviews/'s replay of the
verified log (the same call as /api/v1/reviews); these pages only present it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from contracts.catalogue import default_catalogue
from contracts.rules import RulesError, rules_for_year
from projections.base import LoggedEvent
from services.api.deps import PlatformDep
from services.documents.review import People
from services.platform import Platform
from services.reviews.document import compute_review
from services.reviews.facts import ReviewError
from services.security.checkpoint import CheckpointError
from services.web.base import SessionDep, WebError, event_summary, render, require_overview
from services.web.pages.evidence import evidence_of

router = APIRouter(include_in_schema=False)

MAX_EVIDENCE = 200  # events listed on one drill-down page
SCAN_BATCH = 2000


def _review(platform: Platform, year: int, as_of: datetime | None = None) -> dict[str, Any]:
    if not 2000 <= year <= 2100:
        raise WebError(422, "考核年度不正确", "请填写 2000 到 2100 之间的年份。")
    try:
        # The rules declaring the year, as of the log head: the same log shows the same review.
        document: dict[str, Any] = compute_review(platform, year=year, rules=rules_for_year(year), as_of=as_of)
    except ReviewError as e:
        if "verification" in str(e):
            raise WebError(409, "日志校验未通过，不能计算考核结果",
                           "事件日志的哈希链校验失败，请联系系统管理员。") from None
        raise WebError(422, "无法计算考核结果", str(e)) from None
    except RulesError as e:
        raise WebError(422, "考核细则有误", str(e)) from None
    except CheckpointError:
        raise WebError(503, "考核签名密钥不可用", "请联系系统管理员配置考核检查点的签名密钥。") from None
    return document


@router.get("/review", response_class=HTMLResponse)
def review(
    request: Request, session: SessionDep, platform: PlatformDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    unit: Annotated[str | None, Query(max_length=60)] = None,
) -> HTMLResponse:
    require_overview(session)
    chosen = year or platform.clock().year
    document = _review(platform, chosen)
    detail = next((u for u in document["units"] if u["unit"] == unit), None) if unit else None
    clauses = document["units"][0]["clauses"] if document["units"] else []
    return render(request, "review.html.j2", session, doc=document, year=chosen, detail=detail, clauses=clauses,
                  label=line_label, local=People(document).time)


@cache
def _duty_texts() -> dict[str, str]:
    return {d.code: d.text for u in default_catalogue().units.units for d in u.duties}


def line_label(line: dict[str, Any]) -> str:
    """A scored line's label in the words of the duty list, where the line is about a duty."""
    duty = (line.get("detail") or {}).get("duty")
    text = _duty_texts().get(duty) if isinstance(duty, str) else None
    if text:
        short = text if len(text) <= 40 else text[:39] + "…"
        return f"{short}（履职覆盖）"
    return str(line.get("label", ""))


def resolve_events(platform: Platform, event_ids: Sequence[str]) -> list[LoggedEvent]:
    """The logged events with these ids, in log order. The log has no index by event id, so
    this reads it in batches (cheaply: a stored state that does not contain an id's text is
    skipped undecoded) and stops once every id is found."""
    wanted = {i for i in event_ids if i}
    needles = [i.encode() for i in wanted]
    found: list[LoggedEvent] = []
    recorder = platform.app.recorder
    start = 0
    while wanted:
        batch = recorder.select_notifications(start=start, limit=SCAN_BATCH, inclusive_of_start=False)
        if not batch:
            break
        for n in batch:
            state = n.state if isinstance(n.state, bytes) else bytes(n.state)
            if any(needle in state for needle in needles):
                event = LoggedEvent.from_notification(n)
                eid = str(event.data.get("event_id", ""))
                if eid in wanted:
                    found.append(event)
                    wanted.discard(eid)
        start = int(batch[-1].id)
    return found


@router.get("/review/{year}/units/{unit}/evidence", response_class=HTMLResponse)
def evidence(
    request: Request, year: int, unit: str, session: SessionDep, platform: PlatformDep,
    clause: Annotated[str, Query(min_length=1, max_length=20)],
    item: Annotated[str, Query(min_length=1, max_length=200)],
) -> HTMLResponse:
    """One scored line of one unit, with every event behind it."""
    require_overview(session)
    document = _review(platform, year)
    part = next((u for u in document["units"] if u["unit"] == unit), None)
    if part is None:
        raise WebError(404, "未找到该成员单位")
    rule = next((c for c in part["clauses"] if c["clause"] == clause), None)
    line = next((i for i in rule["items"] if i["item"] == item), None) if rule else None
    if rule is None or line is None:
        raise WebError(404, "未找到该评分项", "考核结果中没有这一条评分项，可能考核细则或日志已变化。")
    ids = list(line["event_ids"])[:MAX_EVIDENCE]
    events = resolve_events(platform, ids)
    files = evidence_of(platform, [str(e.data.get("event_id", "")) for e in events], by="event_id")
    items = {str(e.data.get("event_id", "")): str(e.originator_id) for e in events
             if e.topic.startswith("events.rectifications:")}  # the record's page shows its attachments
    return render(request, "review_evidence.html.j2", session, doc=document, year=year, part=part, rule=rule,
                  line=line, events=events, shown=len(ids), summary=event_summary, label=line_label, files=files,
                  items=items)
