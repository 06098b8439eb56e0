"""Consumer helper for ``lianxi.events.v1``: the relay delivers at least once (a crash or a
broker failure resends from its acknowledged position), so a consumer drops repeats by the
CloudEvent id (= the event's event_id).

    seen = SeenIds()
    for record in consumer:
        event = first_delivery(record, seen)
        if event is not None:
            handle(event)

``SeenIds`` remembers the most recent ``capacity`` ids. Repeats arrive soon after the
original (at most one relay batch plus what was in flight), so a bounded memory is enough; a
consumer that must survive its own restarts keeps the ids with its own state instead.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import orjson


class SeenIds:
    """A bounded set of recently seen ids (oldest forgotten first)."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self.repeats = 0

    def first_time(self, event_id: str) -> bool:
        """True the first time an id is seen, False for a repeat."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            self.repeats += 1
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)


def first_delivery(record: Any, seen: SeenIds) -> dict[str, Any] | None:
    """The decoded CloudEvent of a consumer record, or None when its id was seen before."""
    event: dict[str, Any] = orjson.loads(record.value)
    return event if seen.first_time(str(event["id"])) else None


def deduplicated(records: Iterable[Any], seen: SeenIds | None = None) -> Iterator[dict[str, Any]]:
    """Decoded CloudEvents from consumer records, each event once."""
    seen = seen if seen is not None else SeenIds()
    for record in records:
        event = first_delivery(record, seen)
        if event is not None:
            yield event
