"""The orphan sweep: stored evidence blobs that no record names, a day after they were stored
(an upload never attached, or one whose event failed). It lists them for an operator; it does
not delete evidence. It does remove the temporary files of uploads killed mid-write, an hour
after their last write: they are no evidence (never under a digest, named by no record)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from events.base import COUNTY_TZ
from services.evidence.use_cases import orphan_blobs, stale_temps
from services.kernel.jobs import JobContext, JobSpec

log = logging.getLogger(__name__)


def evidence_orphans(ctx: JobContext, now: datetime) -> dict[str, Any]:
    ctx.catch_up("evidence")
    with ctx.read_engine.connect() as conn:
        found = orphan_blobs(conn, ctx.blobs, now=now, min_age=timedelta(hours=ctx.settings.evidence_orphan_age_h))
    if found:
        log.warning("%d evidence blob(s) are referenced by no record; `lianxi evidence orphans` lists them",
                    len(found))
    temps = stale_temps(ctx.blobs, now=now)
    for t in temps:
        ctx.blobs.remove_temp(t["temp"])
    if temps:
        log.warning("removed %d temporary file(s) of uploads that never finished", len(temps))
    return {"as_of": now.isoformat(), "orphans": len(found), "bytes": sum(o["size"] for o in found),
            "temps_removed": len(temps)}


JOBS = [
    JobSpec("evidence-orphans", "evidence: list stored blobs no record references (older than a day), "
                                "remove temporary files of killed uploads (older than an hour)",
            evidence_orphans, lambda: CronTrigger(hour=3, minute=30, timezone=COUNTY_TZ)),
]
