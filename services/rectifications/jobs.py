"""The hourly overdue-and-escalation sweep (督办 → 通报 → 纳入考核).

Candidates come from the rectification board (open items past their deadline that still lack
a step now due); each aggregate then decides. Exactly-once does not rest on the scheduler:
step events derive their ids from (item, deadline, level), the aggregate remembers the steps
it took, and a save that loses the optimistic-concurrency race to another instance is redone
from a fresh load, which finds nothing left to do."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from events.base import COUNTY_TZ, local_date
from projections.rectification_board import overdue_candidates
from services.kernel.jobs import JobContext, JobSpec


def overdue_sweep(ctx: JobContext, now: datetime) -> dict[str, Any]:
    ctx.catch_up("rectification_board")
    with ctx.read_engine.connect() as conn:
        ids = overdue_candidates(conn, local_date(now), ctx.rules.level_due)
    result = ctx.app.sweep_overdue([uuid.UUID(i) for i in ids], now=now, rules=ctx.rules, on_decided=ctx.on_decided)
    return {"as_of": now.isoformat(), **result.as_dict()}


JOBS = [
    JobSpec(
        name="overdue-sweep",
        description="rectifications: mark overdue and escalate (督办 → 通报 → 纳入考核)",
        run=overdue_sweep,
        # Hourly, on the hour, county time: escalation is counted in days, so an hour's delay
        # at most is plenty, and every instance firing at the same minute is harmless.
        trigger=lambda: CronTrigger(minute=0, timezone=COUNTY_TZ),
    ),
]
