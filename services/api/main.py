"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.api import problems, routes_catalogue, routes_duty_log, routes_events, routes_health
from services.platform import Platform


def create_app(platform: Platform, *, background: bool = False) -> FastAPI:
    """``background`` runs projections in-process while the app serves (the embedded default)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background:
            platform.start_background()
        yield

    app = FastAPI(
        title="Lianxi 联席 API",
        version="1.0.0",
        description="校园安全局际联席会议协同平台 — duty log, ledgers, rectifications, meetings, reviews.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    problems.install(app)
    for module in (routes_health, routes_catalogue, routes_duty_log, routes_events):
        app.include_router(module.router)
    return app
