"""Send due webhook and email deliveries, retrying with back-off."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from events.base import COUNTY_TZ
from services.kernel.jobs import JobContext, JobSpec
from services.notify.deliver import Deliverer


def notify_deliver(ctx: JobContext, now: datetime) -> dict[str, Any]:
    """Bring the notifications up to the log (which plans delivery records), then send what
    is due."""
    ctx.catch_up("notifications")
    r = Deliverer(ctx.write_engine, ctx.settings).run_once(now)
    return {"as_of": now.isoformat(), "delivered": r.delivered, "failed_attempts": r.failed, "gave_up": r.gave_up,
            "expired": r.expired, "cancelled": r.cancelled}


JOBS = [
    JobSpec("notify-deliver", "notifications: send due webhook and email deliveries, retrying with back-off",
            notify_deliver, lambda: CronTrigger(minute="*", timezone=COUNTY_TZ)),
]
