"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.api.deps import PlatformDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {
    "description": "database unreachable, projections lagging, or a projection degraded (events quarantined)"}})
def readyz(platform: PlatformDep) -> Any:
    try:
        with platform.read_engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        lag = platform.runner.lag()
        degraded = platform.runner.degraded()
    except Exception as e:  # readiness reports failures, never raises them
        return JSONResponse({"status": "unavailable", "reason": f"database: {type(e).__name__}"}, status_code=503)
    worst = max(lag.values(), default=0)
    ok = worst <= platform.settings.readiness_max_lag and not degraded
    status = "degraded" if degraded else "ready" if ok else "lagging"
    body: dict[str, Any] = {"status": status, "projection_lag": lag}
    if degraded:  # read models that skipped events: `lianxi projections quarantine` lists them
        body["quarantined_events"] = degraded
    return JSONResponse(body, status_code=200 if ok else 503)
