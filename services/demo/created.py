"""Creation events the demo builds itself, for its hundreds of thousands of records.

A domain factory (``DutyRecord.perform``, ``ComplianceRecord.log``) checks its inputs, then
eventsourcing constructs the event and an aggregate around it; the bulk appender takes only
the event. At province scale that aggregate, thrown away at once, was most of a record's cost.
Here the event is built directly, with what the factory would put in it; the first event of
each kind of record (a key the caller picks) is also made by the factory itself and must come
out equal, so a change in the domain stops the demo instead of slipping past it. The demo's
inputs satisfy the factories' checks by construction (each caller says why).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any

from eventsourcing.utils import get_topic

from events.base import LIANXI_NS


class Created:
    def __init__(self, aggregate: type, event: type) -> None:
        self._topic = get_topic(aggregate)
        self._event: Any = event  # a dataclass made by eventsourcing's metaclass: mypy sees no fields
        self._checked: set[Hashable] = set()

    def __call__(self, record_id: uuid.UUID, timestamp: datetime, **fields: Any) -> Any:
        return self._event(originator_topic=self._topic, originator_id=record_id, originator_version=1,
                           timestamp=timestamp, event_id=str(record_id), **fields)

    def unchecked(self, key: Hashable) -> bool:
        """Whether no event of ``key`` has been compared with the domain's yet."""
        return key not in self._checked

    def compare(self, key: Hashable, event: Any, domain: Any) -> None:
        """``domain`` is the aggregate the factory made from the same inputs as ``event``."""
        [expected] = domain.collect_events()
        if expected != event:
            raise RuntimeError(f"the demo's event differs from the domain's: {event} != {expected}")
        self._checked.add(key)


def derived_ids(*parts: str) -> Callable[[str], uuid.UUID]:
    """``derive_id(*parts, last)`` for many ``last``: uuid5's own steps (SHA-1 of the namespace
    and the name) without its per-call overhead, a tenth of a record's cost."""
    prefix = LIANXI_NS.bytes + "\x1f".join((*parts, "")).encode()

    def derived(last: str) -> uuid.UUID:
        return uuid.UUID(bytes=hashlib.sha1(prefix + last.encode(), usedforsecurity=False).digest()[:16], version=5)

    return derived
