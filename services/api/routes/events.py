"""The raw event log as a cursor-paginated feed, for the lead and auditors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from contracts.api import EventOut, Page
from projections.base import LoggedEvent
from services.api.deps import (
    CursorQ,
    LimitQ,
    PlatformDep,
    PrincipalDep,
    decode_position,
    encode_cursor,
    require_all_reader,
)

router = APIRouter(prefix="/api/v1", tags=["event log"])


def feed_item(e: LoggedEvent) -> EventOut:
    return EventOut(position=e.position, id=str(e.data.get("event_id", "")), type=e.type,
                    agency=str(e.data.get("agency", "")), occurred_on=str(e.data.get("occurred_on", "")),
                    recorded_at=e.recorded_at, data=e.data)


@router.get("/events", response_model=Page[EventOut])
def events_feed(
    platform: PlatformDep, principal: PrincipalDep, limit: LimitQ = 100, cursor: CursorQ = None,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="start after this position")] = None,
) -> Page[EventOut]:
    require_all_reader(principal)
    start = after or 0
    decoded = decode_position(cursor)
    if decoded is not None:
        start = decoded
    notifications = platform.app.recorder.select_notifications(start=start, limit=limit, inclusive_of_start=False)
    items = [feed_item(LoggedEvent.from_notification(n)) for n in notifications]
    next_cursor = None
    if len(items) == limit:
        next_cursor = encode_cursor(str(items[-1].position))
    return Page[EventOut](items=items, next_cursor=next_cursor)
