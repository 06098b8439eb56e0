"""Creation events the demo builds itself, for its hundreds of thousands of records.

A domain factory (``DutyRecord.perform``, ``ComplianceRecord.log``) checks its inputs, then
eventsourcing constructs the event and an aggregate around it; the bulk appender takes only
the event. At province scale that aggregate, thrown away at once, was most of a record's cost.
Here the event is built directly, with what the factory would put in it, or (given the
application's mapper) straight as the row the bulk appender stores for it, an
``EncodedEvent``, without the event object: its construction and its mapping were a third
of a record's cost. The first event of each kind of record (a key the caller picks) is also
made by the factory itself and must come out equal (as stored bytes, with a mapper), so a
change in the domain stops the demo instead of slipping past it. The demo's inputs satisfy
the factories' checks by construction (each caller says why).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Mapper
from eventsourcing.utils import get_topic

from events.base import LIANXI_NS
from services.store.bulk import EncodedEvent, row_encoder, state_encoder


class Created:
    def __init__(self, aggregate: type, event: type, mapper: Mapper[Any] | None = None) -> None:
        self.topic = get_topic(aggregate)
        self._event: Any = event  # a dataclass made by eventsourcing's metaclass: mypy sees no fields
        self._checked: set[Hashable] = set()
        # None without a mapper, or with one that compresses or encrypts: then events
        self._encode = state_encoder(mapper) if mapper is not None else None
        self._row: Callable[[Any], Any] | None = None
        if mapper is not None and self._encode is not None:
            self._event_topic = get_topic(event)
            self._class_version: int = getattr(event, "class_version", 1)
            self._row = row_encoder(mapper, lambda originator_id: originator_id)

    def __call__(self, record_id: uuid.UUID, timestamp: datetime, **fields: Any) -> Any:
        """The creation event; with a mapper, its ``EncodedEvent``. ``fields`` in the event's
        field order (see ``from_state``)."""
        return self.from_state(record_id, {"timestamp": timestamp, "originator_topic": self.topic,
                                           "event_id": str(record_id), **fields})

    def from_state(self, record_id: uuid.UUID, state: dict[str, Any]) -> Any:
        """The creation event with ``state`` (what ``vars(event)`` holds but the originator id
        and version: ``timestamp``, ``originator_topic`` (this aggregate's ``topic``),
        ``event_id``, then the event's own fields, in the event's field order); with a mapper,
        its ``EncodedEvent``, ``state`` encoded as it is (the comparison with the domain's
        event checks the order too). The hottest callers build ``state`` in place."""
        encode = self._encode
        if encode is None:
            return self._event(originator_id=record_id, originator_version=1, **state)
        if self._class_version > 1:
            state["class_version"] = self._class_version
        return EncodedEvent(record_id, 1, self._event_topic, encode(state))

    def unchecked(self, key: Hashable) -> bool:
        """Whether no event of ``key`` has been compared with the domain's yet."""
        return key not in self._checked

    def compare(self, key: Hashable, event: Any, domain: Any) -> None:
        """``domain`` is the aggregate the factory made from the same inputs as ``event``."""
        [expected] = domain.collect_events()
        if self._row is not None:  # as stored: (originator id, version, topic, state bytes)
            expected, event = tuple(self._row(expected)), tuple(event)
        if expected != event:
            raise RuntimeError(f"the demo's event differs from the domain's: {event} != {expected}")
        self._checked.add(key)


# A version 5 UUID from the first 16 bytes of a SHA-1 digest: what uuid.UUID(bytes=...,
# version=5) sets (RFC 4122 variant, version 5), without its argument checks.
_V5_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_V5_SET = (0x8000 << 48) | (5 << 76)
_new_uuid = object.__new__
_set_field = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


def derived_ids(*parts: str) -> Callable[[str], uuid.UUID]:
    """``derive_id(*parts, last)`` for many ``last``: uuid5's own steps (SHA-1 of the namespace
    and the name) without its per-call overhead, a tenth of a record's cost; the UUID is made
    as ``uuid.UUID.__init__`` leaves it (its slots), skipping that method's checks
    (tests/test_demo_stream.py compares them with ``uuid.uuid5``'s)."""
    # SHA-1 of the namespace and the parts, continued with each ``last`` from a copy
    prefix = hashlib.sha1(LIANXI_NS.bytes + "\x1f".join((*parts, "")).encode(), usedforsecurity=False)
    from_bytes = int.from_bytes
    UUID = uuid.UUID

    def derived(last: str) -> uuid.UUID:
        sha1 = prefix.copy()
        sha1.update(last.encode())
        u = _new_uuid(UUID)
        _set_field(u, "int", from_bytes(sha1.digest()[:16]) & _V5_CLEAR | _V5_SET)
        _set_field(u, "is_safe", _UNKNOWN)
        return u

    return derived
