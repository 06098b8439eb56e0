"""The draft agenda N days before each meeting, and the tasks' overdue-and-escalation sweep.
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


JOBS = [
    JobSpec("agenda-draft", "meetings: assemble the draft agenda N days before each meeting",
            agenda_draft, lambda: CronTrigger(hour=7, minute=0, timezone=COUNTY_TZ)),
    JobSpec("task-overdue", "tasks: mark overdue and escalate (督办 → 通报 → 纳入考核)",
            task_overdue, lambda: CronTrigger(minute=5, timezone=COUNTY_TZ)),
]
