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


@router.get("/readyz", responses={503: {"description": "database unreachable or projections lagging"}})
def readyz(platform: PlatformDep) -> Any:
    try:
        with platform.read_engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        lag = platform.runner.lag()
    except Exception as e:  # readiness reports failures, never raises them
        return JSONResponse({"status": "unavailable", "reason": f"database: {type(e).__name__}"}, status_code=503)
    worst = max(lag.values(), default=0)
    ok = worst <= platform.settings.readiness_max_lag
    body = {"status": "ready" if ok else "lagging", "projection_lag": lag}
    return JSONResponse(body, status_code=200 if ok else 503)
