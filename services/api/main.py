"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from services.api import docs, limits, problems
from services.api.routes import (
    audit as audit_routes,
)
from services.api.routes import (
    campaigns,
    catalogue,
    duty_log,
    duty_log_import,
    events,
    evidence,
    health,
    inbox,
    logistics,
    meetings,
    rectifications,
    reviews,
    warnings,
)
from services.platform import Platform
from services.scheduler import LianxiScheduler
from services.security import audit
from services.web import site as web_pages


def create_app(platform: Platform, *, background: bool = False) -> FastAPI:
    """``background`` runs projections in-process while the app serves (the embedded default)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler = None
        if background:
            platform.start_background()
            # The embedded default also runs the scheduled jobs in-process.
            scheduler = LianxiScheduler(platform)
            scheduler.start()
        # What startup built (app, routes, schemas, catalogue, pools) lives as long as the
        # process: moved out of the collector's view, a full collection no longer walks it.
        # Those walks took 80-115 ms under write load and were the whole p99 of the write path
        # (bench/RESULTS.md §1); after freezing they take ~1.5 ms.
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()  # collectable again once the app is gone (tests start many apps in one process)
        if scheduler is not None:
            scheduler.shutdown()

    # Swagger UI and ReDoc's files from the installed fastapi-offline package, never a CDN (county
    # networks have no internet); the two pages themselves are services/api/docs.py's.
    app = FastAPIOffline(
        None, None, static_url=docs.ASSETS,
        title="Lianxi 联席 API",
        version="1.0.0",
        description="校园安全局际联席会议协同平台 — duty log, ledgers, rectifications, meetings, reviews.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    problems.install(app)
    docs.install(app)
    for module in (health, catalogue, duty_log, duty_log_import, events, evidence, audit_routes, rectifications,
                   campaigns, warnings, meetings, logistics, inbox, reviews):
        app.include_router(module.router)
    duty_log.install_hot_write(app)
    web_pages.install(app)  # the server-rendered pages (/signin, /units/..., /dashboard) and /static
    # One middleware: the audit trail (outermost: it records the limits' refusals too), body
    # size, rate and timeout; it also documents their problems.
    limits.install(app, platform.settings, audit=audit.request_audit(app, platform))
    return app
