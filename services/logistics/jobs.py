"""The missing-record job: records every due compliance record still absent past its grace,
once. Safe on several instances at once and as often as wanted: gap ids derive from
(school, kind, period), so each gap is stored once."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from events.base import COUNTY_TZ, local_date
from projections.compliance import missing_candidates
from services.kernel.jobs import JobContext, JobSpec
from services.logistics.gaps import Gap
from services.logistics.use_cases import SweepResult

log = logging.getLogger(__name__)


def run_compliance_sweep(ctx: JobContext, now: datetime) -> SweepResult:
    """Reads the compliance read model after catching it up, so a record logged before the
    sweep started is seen; a record logged after its grace is late either way."""
    ctx.catch_up("catalogue", "compliance")
    today = local_date(now)
    with ctx.read_engine.connect() as conn:
        gaps = [Gap(**c) for c in missing_candidates(conn, ctx.app.calendar, today)]
    result: SweepResult = ctx.app.record_gaps(gaps, now=now)
    if result.recorded:
        log.info("compliance sweep %s: %d gap(s) recorded, %d hazard(s) opened, %d already recorded",
                 today, result.recorded, result.hazards, result.already)
    return result


def compliance_sweep(ctx: JobContext, now: datetime) -> dict[str, Any]:
    r = run_compliance_sweep(ctx, now)
    return {"as_of": now.isoformat(), "candidates": r.candidates, "recorded": r.recorded, "hazards": r.hazards,
            "already_recorded": r.already}


JOBS = [
    # 01:30 county time: the day before is over, so a record due yesterday with its grace
    # ended yesterday is missing today.
    JobSpec("compliance-sweep", "compliance: record each due record still missing past its grace (once per school, "
            "kind and period); some kinds also open a hazard", compliance_sweep,
            lambda: CronTrigger(hour=1, minute=30, timezone=COUNTY_TZ)),
]
