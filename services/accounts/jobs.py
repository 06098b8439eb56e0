"""Purge page sessions that can no longer be used (ended, idle or past their absolute timeout)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from events.base import COUNTY_TZ
from services.accounts.sessions import session_store
from services.kernel.jobs import JobContext, JobSpec


def purge_sessions(ctx: JobContext, now: datetime) -> dict[str, Any]:
    store = session_store(ctx.write_engine, ctx.settings.session_idle_minutes, ctx.settings.session_absolute_hours)
    return {"as_of": now.isoformat(), "purged": store.purge(now)}


JOBS = [
    JobSpec("sessions-purge", "accounts: delete ended, idle and expired page sessions", purge_sessions,
            lambda: CronTrigger(minute="*/15", timezone=COUNTY_TZ)),
]
