"""The scheduled-job interface. A context's ``jobs.py`` lists ``JobSpec``s whose ``run`` gets a
``JobContext``: what a job may touch, never the composition root. ``services/scheduler.py``
collects every context's ``JOBS`` and runs them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from apscheduler.triggers.base import BaseTrigger

from contracts.escalation import EscalationRules
from projections.runner import ProjectionRunner
from services.settings import Settings


@dataclass(frozen=True)
class JobContext:
    app: Any  # LianxiApp: each job calls its own context's use cases on it
    runner: ProjectionRunner
    read_engine: sa.Engine
    write_engine: sa.Engine
    rules: EscalationRules
    settings: Settings
    on_decided: Callable[[int], None] | None = None  # test hook of the overdue sweep
    blobs: Any = None  # the evidence BlobStore (services/evidence/storage.py)
    briefs: Any = None  # the platform's BriefCache (services/meetings/briefs.py): the pre-render job fills it
    # (meeting id, county day) -> the brief's data, as the API and the pages assemble it
    assemble_brief: Callable[[str, date], dict[str, Any] | None] | None = None

    def catch_up(self, *names: str) -> None:
        """Bring the named read models (all when none are named) up to the log: jobs find
        their candidates there."""
        if not names:
            self.runner.catch_up()
        for name in names:
            if name in self.runner.projections:
                self.runner.catch_up(name)


@dataclass(frozen=True)
class JobSpec:
    name: str
    description: str
    run: Callable[[JobContext, datetime], dict[str, Any]]
    trigger: Callable[[], BaseTrigger]
