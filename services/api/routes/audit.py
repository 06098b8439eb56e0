"""The audit trail, read-only, for auditors (纪检/考核组)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from contracts.api import AuditEntryOut, Page
from contracts.text import Day
from services.api.deps import CursorQ, LimitQ, PlatformDep, PrincipalDep, decode_position, encode_cursor
from services.api.problems import ProblemError

router = APIRouter(prefix="/api/v1", tags=["audit"])

UnitQ = Annotated[str | None, Query(max_length=64, description="acting unit")]


@router.get("/audit", response_model=Page[AuditEntryOut],
            responses={403: {"description": "not an auditor credential"}})
def audit_trail(
    platform: PlatformDep, principal: PrincipalDep, limit: LimitQ = 100, cursor: CursorQ = None,
    unit: UnitQ = None,
    target_unit: Annotated[str | None, Query(max_length=64, description="whose data was touched ('*': all)")] = None,
    token_id: Annotated[str | None, Query(max_length=36)] = None,
    outcome: Literal["ok", "refused", "rejected", "error"] | None = None,
    since: Annotated[Day | None, Query(description="from the start of this day (UTC)")] = None,
    until: Annotated[Day | None, Query(description="before the start of this day (UTC)")] = None,
) -> Page[AuditEntryOut]:
    """Oldest first. Only auditors read the trail; nobody can change it through the platform.
    A person is named (``actor_name``, ``resource_name``) beside the account id only for the
    lead and auditors."""
    if principal.role != "auditor":
        raise ProblemError(403, "only auditor credentials may read the audit trail")
    after = decode_position(cursor) or 0
    rows = platform.audit.page(after=after, limit=limit + 1, unit=unit, target_unit=target_unit,
                                    token_id=token_id, outcome=outcome,
                                    since=since.isoformat() if since else None,
                                    until=until.isoformat() if until else None)
    more = len(rows) > limit
    rows = rows[:limit]
    people = platform.accounts.names_for(principal)  # the rows hold account ids only
    items = [AuditEntryOut(**r, actor_name=people.get(r["token_id"] or ""),
                           resource_name=people.get(r["resource_id"] or "")) for r in rows]
    return Page[AuditEntryOut](items=items,
                               next_cursor=encode_cursor(str(rows[-1]["id"])) if more else None)
