"""The draft agenda N days before each meeting, the tasks' overdue-and-escalation sweep, and
the briefs people open next rendered ahead of them.
Each finds candidates in a read model (after catching it up) and lets the aggregates decide;
ids derive from what the step follows from, so re-runs and concurrent instances never repeat
a step."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from events.base import COUNTY_TZ, local_date
from projections.meetings import assemble_agenda, list_meetings, task_overdue_candidates
from services.kernel.jobs import JobContext, JobSpec

# The formats rendered ahead: the PDF takes seconds (WeasyPrint lays out every page); HTML
# renders in a fraction of a second and DOCX in about one, so readers wait for those.
PRERENDER_FORMATS = ("pdf",)


def agenda_draft(ctx: JobContext, now: datetime) -> dict[str, Any]:
    days = ctx.settings.agenda_draft_days
    today = local_date(now)
    ctx.catch_up()
    drafted = 0
    with ctx.read_engine.connect() as conn:
        due = [m for m in list_meetings(conn) if m["status"] == "scheduled" and m["drafted_event_id"] is None
               and today <= date.fromisoformat(m["scheduled_for"]) <= today + timedelta(days=days)]
        agendas = [assemble_agenda(conn, m["meeting_id"], today) for m in due]
    for m, agenda in zip(due, agendas, strict=True):
        if agenda is None:
            continue
        drafted += ctx.app.record_agenda_draft(
            uuid.UUID(m["meeting_id"]), period_start=date.fromisoformat(agenda["period_start"]),
            period_end=date.fromisoformat(agenda["period_end"]), sections=agenda["counts"], now=now)
    return {"as_of": now.isoformat(), "candidates": len(due), "drafted": drafted}


def task_overdue(ctx: JobContext, now: datetime) -> dict[str, Any]:
    ctx.catch_up("meetings")
    with ctx.read_engine.connect() as conn:
        ids = task_overdue_candidates(conn, local_date(now), ctx.rules.level_due)
    result = ctx.app.sweep_tasks([uuid.UUID(i) for i in ids], now=now, rules=ctx.rules)
    return {"as_of": now.isoformat(), **result}


def brief_candidates(meetings: list[dict[str, Any]], today: date) -> list[str]:
    """Pure: the meetings whose brief people open next: the latest held on or before today
    and the next one still to come."""
    past = [m for m in meetings if m["status"] == "held" and m["scheduled_for"] <= today.isoformat()]
    coming = [m for m in meetings if m["status"] == "scheduled" and m["scheduled_for"] >= today.isoformat()]
    chosen = [max(past, key=lambda m: m["scheduled_for"])] if past else []
    chosen += [min(coming, key=lambda m: m["scheduled_for"])] if coming else []
    return [str(m["meeting_id"]) for m in chosen]


def brief_prerender(ctx: JobContext, now: datetime) -> dict[str, Any]:
    """Renders those briefs as of today whenever their data changed (the cache is keyed by a
    digest of the data, so unchanged data renders nothing): the first reader after a change
    gets the file from the shared store instead of waiting for the PDF engine."""
    if ctx.assemble_brief is None or ctx.briefs is None:
        return {"as_of": now.isoformat(), "meetings": 0, "rendered": 0}  # a context without briefs
    today = local_date(now)
    ctx.catch_up()
    with ctx.read_engine.connect() as conn:
        ids = brief_candidates(list_meetings(conn), today)
    rendered = 0
    for mid in ids:
        data = ctx.assemble_brief(mid, today)
        for fmt in PRERENDER_FORMATS if data is not None else ():
            rendered += ctx.briefs.prerender(data, fmt)
    return {"as_of": now.isoformat(), "meetings": len(ids), "rendered": rendered}


JOBS = [
    JobSpec("agenda-draft", "meetings: assemble the draft agenda N days before each meeting",
            agenda_draft, lambda: CronTrigger(hour=7, minute=0, timezone=COUNTY_TZ)),
    JobSpec("task-overdue", "tasks: mark overdue and escalate (督办 → 通报 → 纳入考核)",
            task_overdue, lambda: CronTrigger(minute=5, timezone=COUNTY_TZ)),
    JobSpec("brief-prerender", "meetings: render the latest and the next meeting's brief when its data changed",
            brief_prerender, lambda: CronTrigger(minute="*/5", timezone=COUNTY_TZ)),
]
