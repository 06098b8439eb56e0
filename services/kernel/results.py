"""The one internal answer to a write, shared by every context."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson


def request_digest(body: dict[str, Any]) -> str:
    """Canonical hash of a request body: an Idempotency-Key replay must carry the same one."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class Written:
    """A write happened (or was replayed): the aggregate, the last event it appended, where
    that event stands in the log, and the aggregate's status after it where it has one.
    ``related`` names aggregates created in the same commit (hazards, tasks)."""

    id: str
    position: int | None
    event_id: str | None = None
    type: str | None = None
    status: str | None = None
    replayed: bool = False
    related: tuple[str, ...] = ()


def written(agg_id: uuid.UUID, recordings: Sequence[Any], *, status: str | None = None,
            related: Sequence[str] = ()) -> Written:
    """The answer to a commit: its last event of ``agg_id``."""
    last = [r for r in recordings if r.domain_event.originator_id == agg_id][-1]
    event: Any = last.domain_event
    return Written(id=str(agg_id), position=last.notification.id, event_id=event.event_id, type=type(event).__name__,
                   status=status, related=tuple(related))
