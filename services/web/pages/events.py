"""The event log (事件日志) for the lead and auditors, and the access audit trail (访问审计)
for auditors, both newest first."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from projections.base import LoggedEvent
from services.api.deps import PlatformDep
from services.documents import labels
from services.web.base import SessionDep, WebError, event_summary, render, require_overview

router = APIRouter(include_in_schema=False)

FEED_PAGE = 50


@router.get("/events", response_class=HTMLResponse)
def event_feed(
    request: Request, session: SessionDep, platform: PlatformDep,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    """Newest first, 50 a page; every entry keeps both its times (occurred and recorded)."""
    require_overview(session)
    head = platform.app.recorder.max_notification_id() or 0
    end = min(before - 1, head) if before else head
    start = max(end - FEED_PAGE, 0)
    notifications = platform.app.recorder.select_notifications(start=start, limit=FEED_PAGE, stop=end,
                                                              inclusive_of_start=False) if end > 0 else []
    events = [LoggedEvent.from_notification(n) for n in reversed(notifications)]
    older = f"/events?before={events[-1].position}" if events and events[-1].position > 1 else None
    newer = f"/events?before={end + FEED_PAGE + 1}" if end < head else None
    return render(request, "feed.html.j2", session, events=events, head=head, older=older, newer=newer,
                  summary=event_summary)


@router.get("/audit", response_class=HTMLResponse)
def audit_trail(
    request: Request, session: SessionDep, platform: PlatformDep,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    unit: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    """Newest first, 50 a page (the API pages oldest first); only auditors read the trail (as
    /api/v1/audit). Actions, actors and outcomes in words; the raw request stays a detail."""
    require_overview(session)
    if session.principal.role != "auditor":
        raise WebError(403, "访问审计记录仅限考核/纪检账号查看", "牵头单位可在“事件日志”中查看全部业务记录。")
    rows = platform.audit.page(before=before, newest_first=True, limit=FEED_PAGE + 1, unit=unit or None,
                               outcome=outcome if outcome in labels.AUDIT_OUTCOME else None)
    more = len(rows) > FEED_PAGE
    rows = rows[:FEED_PAGE]
    filters = {"unit": unit or "", "outcome": outcome or ""}
    chosen = {k: v for k, v in filters.items() if v}
    older = "/audit?" + urlencode({**chosen, "before": rows[-1]["id"]}) if more else None
    newest = "/audit" + ("?" + urlencode(chosen) if chosen else "") if before else None
    people = platform.accounts.names_for(session.principal)  # the rows hold account ids only
    return render(request, "audit.html.j2", session, rows=rows, filters=filters, older=older, newest=newest,
                  action=labels.audit_action, actor=actor_text, status_text=labels.HTTP_STATUS, people=people)


def actor_text(row: dict[str, Any], units: dict[str, str], people: dict[str, str]) -> str:
    """Who acted, as people name them: the person (an account's sign-in or token), the unit or
    review group and the role of the credential; a request without a valid credential was made
    by someone not signed in."""
    if row["role"] and row["unit"]:
        unit = labels.REVIEW_GROUP_NAMES.get(row["unit"]) or units.get(row["unit"], row["unit"])
        person = f"{people[row['token_id']]} · " if row.get("token_id") in people else ""
        return f"{person}{unit}（{labels.ROLE_NAMES.get(row['role'], row['role'])}）"
    actor = str(row["actor"] or "")
    if actor in SYSTEM_ACTORS:
        return SYSTEM_ACTORS[actor]
    role, _, rest = actor.partition(":")
    if role in labels.ROLE_NAMES and rest:  # the accounts service's own rows name the acting credential only
        token_id = rest.split(":", 1)[0]
        person = f"{people[token_id]} · " if token_id in people else ""
        return f"{person}{labels.ROLE_NAMES[role]}"
    if actor.startswith("token:"):
        return "未登录（凭证无效）"
    return "未登录"


# Rows written by operators' commands rather than by a signed-in person.
SYSTEM_ACTORS = {"cli": "运维人员（命令行）", "demo": "演示数据"}
