"""What every Lianxi domain event carries, and the county calendar.

Event payloads hold only JSON-native values (dates as ISO strings, ids as strings), so the
stored JSON is the event's public shape: projections, the Kafka relay and the JSON Schemas
read it without a domain-object round trip.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate

# Dates in the seeds and in the field are local dates of the county.
COUNTY_TZ = ZoneInfo("Asia/Shanghai")

# Namespace for deterministic ids (uuid5). Never change it: stored ids derive from it.
LIANXI_NS = uuid.UUID("6f1c3b1e-6a52-5c1f-9d0e-4c1a6a1d0b11")


def derive_id(*parts: str) -> uuid.UUID:
    """A stable id for something that follows from other things (an idempotency key,
    a scheduled step, an inbound message), so a retry cannot create a duplicate."""
    return uuid.uuid5(LIANXI_NS, "\x1f".join(parts))


def local_date(moment: datetime) -> date:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(COUNTY_TZ).date()


class Recorded(Aggregate.Event):
    """Fields on every Lianxi event.

    ``timestamp`` (from eventsourcing) is when the event was recorded; ``occurred_on`` is
    when the action happened in the world. ``agency`` is the member unit the event belongs
    to (the Kafka partition key and the unit in the feed).
    """

    event_id: str
    agency: str
    occurred_on: str


class RecordedCreated(Recorded, Aggregate.Created):
    """First event of an aggregate."""


def event_payload(event: Any) -> dict[str, Any]:
    """The public data of an event: its fields minus eventsourcing bookkeeping."""
    hidden = {"originator_id", "originator_version", "originator_topic", "timestamp"}
    return {k: v for k, v in vars(event).items() if k not in hidden}
