"""Scheduled jobs: APScheduler 3.x BackgroundScheduler, job store in the platform's own database.

Exactly-once never rests on the scheduler: each step's event id derives from what it follows
from, and aggregates decide, so a restart, a re-run, a coalesced misfire or two instances
sharing the job store never emit a step twice (see each context's ``jobs.py``).

Each context's ``jobs.py`` lists its jobs (``services.kernel.jobs.JobSpec``); a job gets a
``JobContext`` (app, runner, engines, rules, settings), never this module or the platform.
Jobs are looked up by name in ``JOBS``. The job store
holds only the textual reference ``services.scheduler:run_job`` and the job name; each
scheduler's executor threads are bound to their own ``LianxiScheduler`` (and so to its
platform and clock), so nothing unpicklable is stored.

``now`` always comes from an injectable clock: ``lianxi jobs run-once --now ...`` runs every
job once as of any instant, and tests walk a simulated month day by day.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from contracts.escalation import EscalationRules, load_escalation_rules
from events.base import COUNTY_TZ
from services.accounts import jobs as account_jobs
from services.campaigns import jobs as campaign_jobs
from services.evidence import jobs as evidence_jobs
from services.kernel.jobs import JobSpec
from services.logistics import jobs as logistics_jobs
from services.meetings import jobs as meeting_jobs
from services.notify import jobs as notify_jobs
from services.platform import Platform
from services.rectifications import jobs as rectification_jobs
from services.store.database import ddl_lock
from services.warnings import jobs as warning_jobs

log = logging.getLogger(__name__)

JOB_TABLE = "apscheduler_jobs"
RUN_JOB_REF = f"{__name__}:run_job"


# Each context's scheduled work, by name. The job store refers to jobs by name only.
JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for module in (rectification_jobs, warning_jobs, meeting_jobs, campaign_jobs, logistics_jobs, notify_jobs,
                   account_jobs, evidence_jobs)
    for spec in module.JOBS
}


_bound = threading.local()


def _bind(scheduler: LianxiScheduler) -> None:
    _bound.scheduler = scheduler


def run_job(name: str) -> dict[str, Any]:
    """What the job store refers to. Runs in an executor thread of the scheduler that fired it."""
    scheduler: LianxiScheduler | None = getattr(_bound, "scheduler", None)
    if scheduler is None:
        raise RuntimeError("run_job called outside a LianxiScheduler executor thread")
    return scheduler.run_job(name)


class LianxiScheduler:
    def __init__(
        self, platform: Platform, *, clock: Callable[[], datetime] | None = None,
        rules: EscalationRules | None = None, on_decided: Callable[[int], None] | None = None,
    ) -> None:
        self.platform = platform
        self.clock = clock or platform.clock
        # Read once per scheduler: editing escalation.yaml takes effect at the next start.
        self.rules = rules or load_escalation_rules()
        self.context = platform.job_context(rules=self.rules, on_decided=on_decided)
        self.aps: BackgroundScheduler | None = None
        self.runs: list[tuple[str, datetime, dict[str, Any]]] = []  # recent runs, newest last
        self._runs_lock = threading.Lock()

    # -- running jobs ----------------------------------------------------------------------

    def run_job(self, name: str, now: datetime | None = None) -> dict[str, Any]:
        spec = JOBS.get(name)
        if spec is None:
            raise KeyError(f"unknown job {name!r}; known: {', '.join(JOBS)}")
        moment = now or self.clock()
        if moment.tzinfo is None:
            raise ValueError("the job clock must be timezone-aware")
        started = time.perf_counter()
        result = spec.run(self.context, moment)
        result["seconds"] = round(time.perf_counter() - started, 3)
        log.info("job %s as of %s: %s", name, moment.isoformat(), result)
        with self._runs_lock:
            self.runs = [*self.runs[-99:], (name, moment, result)]
        return result

    def run_once(self, now: datetime) -> dict[str, dict[str, Any]]:
        """Every job once, as of ``now`` (all jobs are periodic, so each is due at any instant)."""
        return {name: self.run_job(name, now) for name in JOBS}

    # -- the background scheduler ----------------------------------------------------------

    def start(self) -> None:
        if self.aps is not None:
            return
        engine = self.platform.write_engine
        store = SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)
        with ddl_lock(engine):
            store.jobs_t.create(engine, checkfirst=True)
        self.aps = BackgroundScheduler(
            jobstores={"default": store},
            executors={"default": ThreadPoolExecutor(1, pool_kwargs={"initializer": _bind, "initargs": (self,)})},
            job_defaults={
                # coalesce: runs missed while no instance was up (or while a sweep ran long)
                # collapse into one. The sweep works from the clock at run time and catches up
                # every step due in one pass, so repeating it for each missed hour adds nothing.
                "coalesce": True,
                # misfire_grace_time=None: a late run still runs, however late. Lateness never
                # makes the sweep wrong (it decides from `now`, not from the scheduled time),
                # while skipping a misfired run would leave escalations due during a restart
                # waiting up to another hour.
                "misfire_grace_time": None,
                # One sweep at a time per instance; other instances are handled by the domain.
                "max_instances": 1,
            },
            timezone=COUNTY_TZ,
        )
        self.aps.start(paused=True)
        for spec in JOBS.values():
            self._ensure_job(spec)
        self.aps.resume()
        log.info("scheduler started with jobs: %s", ", ".join(JOBS))

    def _ensure_job(self, spec: JobSpec) -> None:
        assert self.aps is not None
        trigger = spec.trigger()
        existing = self.aps.get_job(spec.name)
        if existing is not None and existing.func_ref == RUN_JOB_REF and str(existing.trigger) == str(trigger):
            # Keep the stored job and its next run time: a run missed while every instance
            # was down is then seen as a misfire and run once (coalesced) right away.
            return
        self.aps.add_job(RUN_JOB_REF, trigger=trigger, args=[spec.name], id=spec.name, name=spec.description,
                         replace_existing=True)

    def shutdown(self, wait: bool = True) -> None:
        if self.aps is not None:
            self.aps.shutdown(wait=wait)
            self.aps = None
