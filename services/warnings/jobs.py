"""Escalate warnings that stay unacknowledged past their window to the lead, once each."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from events.base import COUNTY_TZ
from projections.warning_response import due_for_escalation
from services.kernel.jobs import JobContext, JobSpec


def warning_escalation(ctx: JobContext, now: datetime) -> dict[str, Any]:
    ctx.catch_up("warning_response")
    with ctx.read_engine.connect() as conn:
        due = due_for_escalation(conn, now, ctx.app.warning_rules)
    escalated = sum(
        ctx.app.escalate_warning(uuid.UUID(w["warning_id"]), schools=w["schools"], units=w["units"], now=now)
        for w in due
    )
    return {"as_of": now.isoformat(), "candidates": len(due), "escalated": escalated}


JOBS = [
    # Every 15 minutes: the shortest escalation window (red) is counted in hours.
    JobSpec("warning-escalation", "warnings: escalate unacknowledged warnings to the lead",
            warning_escalation, lambda: CronTrigger(minute="*/15", timezone=COUNTY_TZ)),
]
