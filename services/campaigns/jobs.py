"""Phase-deadline reminders for schools behind a campaign's schedule, once per
(campaign, phase, kind)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from events.base import COUNTY_TZ, local_date
from projections.campaign_progress import reminders_due
from services.kernel.jobs import JobContext, JobSpec


def campaign_reminders(ctx: JobContext, now: datetime) -> dict[str, Any]:
    ctx.catch_up("campaign_progress")
    with ctx.read_engine.connect() as conn:
        due = reminders_due(conn, local_date(now), ctx.settings.campaign_reminder_days)
    issued = sum(
        ctx.app.issue_phase_reminder(
            campaign_id=uuid.UUID(r["campaign_id"]), template=r["template"], phase=r["phase"], kind=r["kind"],
            deadline=r["deadline"], school_ids=r["school_ids"], now=now)
        for r in due
    )
    return {"as_of": now.isoformat(), "candidates": len(due), "issued": issued}


JOBS = [
    JobSpec("campaign-reminders", "campaigns: phase-deadline reminders for schools behind schedule",
            campaign_reminders, lambda: CronTrigger(hour=8, minute=0, timezone=COUNTY_TZ)),
]
