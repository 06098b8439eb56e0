"""The duty log (履职记录)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from contracts.api import Created, DutyLogIn
from services.api.deps import PlatformDep, PrincipalDep, require_writer

router = APIRouter(prefix="/api/v1", tags=["duty log"])


@router.post(
    "/duty-logs", status_code=201, response_model=Created,
    responses={
        200: {"model": Created, "description": "replay of an earlier request with the same Idempotency-Key"},
        403: {"description": "read-only credential"},
        409: {"description": "Idempotency-Key reused with a different body"},
        422: {"description": "invalid body or a broken rule (duty not the unit's, unknown school, future date)"},
    },
)
async def log_duty(
    body: DutyLogIn, platform: PlatformDep, principal: PrincipalDep, response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> Created:
    """Records a duty performed by the caller's own unit (the unit comes from the token)."""
    # async: the hottest write awaits its group commit on the event loop rather than holding
    # a worker thread; the checks before it read caches (unit, schools), not the database.
    require_writer(principal)
    appended = await platform.app.log_duty_async(
        principal, duty_code=body.duty_code, school_ids=list(body.school_ids), occurred_on=body.occurred_on,
        summary=body.summary, findings={"count": body.findings.count, "text": body.findings.text},
        evidence=list(body.evidence), idempotency_key=idempotency_key,
        body=body.model_dump(mode="json"), now=platform.clock(),
    )
    # A replay answers with the same id and position; 201 either way keeps clients simple.
    return Created(id=appended.id, position=appended.position, replayed=appended.replayed)
