"""CloudEvents 1.0 in structured JSON mode, as Lianxi sends and accepts them on Kafka.

Outbound (the relay): one message per stored event::

    id          = the event's event_id
    type        = cn.lianxi.<EventName>.v<class_version>
    source      = /agencies/<unit code>
    subject     = the aggregate id
    time        = when the event was recorded (RFC 3339, UTC)
    dataschema  = the event type's JSON Schema in contracts/schemas/
    data        = the stored payload (contracts/schemas.py)
    lianxiposition = the event's position in the log (extension attribute)

Inbound (ingest): the same envelope; ``data`` must validate against the schema of ``type``.
Either content mode of the CloudEvents Kafka protocol binding is accepted:

- structured: the value is the JSON envelope above (``content-type`` header
  ``application/cloudevents+json``, or no header at all, as Lianxi's own relay and older
  feeds send it);
- binary: the attributes are ``ce_<name>`` headers (UTF-8; ``ce_specversion`` "1.0",
  ``ce_id``, ``ce_source``, ``ce_type``, optionally ``ce_subject`` and ``ce_time``), the
  ``content-type`` header is ``datacontenttype`` (``application/json``; absent means JSON)
  and the value is ``data`` itself.

As the binding says, a ``content-type`` starting ``application/cloudevents`` means structured
mode; otherwise a message carrying a ``ce_specversion`` header is binary. Both then pass the
same checks, so a fault in either mode gets the same dead-letter code and reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator, FormatChecker

from contracts.schemas import SCHEMA_BASE_URI, load_schema
from contracts.text import find_control_character
from events.base import derive_id
from projections.base import type_of_topic

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
BINARY_PREFIX = "ce_"
Headers = Sequence[tuple[str, bytes | None]]
TYPE_PREFIX = "cn.lianxi."
TYPE_PATTERN = re.compile(r"^cn\.lianxi\.([A-Za-z][A-Za-z0-9]*)\.v([1-9][0-9]*)$")
SOURCE_PATTERN = re.compile(r"^/agencies/([a-z0-9][a-z0-9-]{0,63})$")
HEADERS = [("content-type", CONTENT_TYPE.encode())]
_BOOKKEEPING = ("originator_id", "originator_version", "originator_topic", "timestamp", "class_version")


def event_type(name: str, version: int) -> str:
    return f"{TYPE_PREFIX}{name}.v{version}"


def agency_source(code: str) -> str:
    return f"/agencies/{code}"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def from_notification(n: Any) -> dict[str, Any]:
    """The CloudEvent of one stored event (an eventsourcing Notification), decoded straight
    from its stored JSON: the relay never builds domain objects."""
    state: dict[str, Any] = orjson.loads(n.state)
    version = int(state.get("class_version", 1))
    recorded = datetime.fromisoformat(state["timestamp"])
    data = {k: v for k, v in state.items() if k not in _BOOKKEEPING}
    name = type_of_topic(n.topic)
    agency = data.get("agency")
    # Every Lianxi event has event_id and agency; anything else still gets a stable id.
    event_id = data.get("event_id") or str(derive_id("notification", str(n.originator_id),
                                                     str(n.originator_version)))
    return {
        "specversion": SPEC_VERSION,
        "id": str(event_id),
        "type": event_type(name, version),
        "source": agency_source(agency) if agency else "/platform",
        "subject": str(n.originator_id),
        "time": rfc3339(recorded),
        "datacontenttype": "application/json",
        "dataschema": f"{SCHEMA_BASE_URI}/{name}.v{version}.json",
        "lianxiposition": int(n.id),
        "data": data,
    }


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


class InvalidMessage(Exception):
    """An inbound message that can never be accepted; ``code`` names the kind of fault."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class CloudEvent:
    id: str
    source: str
    type: str
    name: str  # event type name, e.g. DutyPerformed
    version: int
    data: dict[str, Any]
    subject: str | None = None
    time: str | None = None


def header(headers: Headers | None, name: str) -> str | None:
    """A header's value as text (names compared case-insensitively); None when absent.
    A header sent twice or not UTF-8 is refused: which one was meant cannot be known."""
    found = [v for k, v in headers or () if k.lower() == name]
    if not found:
        return None
    if len(found) > 1:
        raise InvalidMessage("invalid-envelope", f"header {name!r} appears {len(found)} times")
    try:
        return (found[0] or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMessage("invalid-envelope", f"header {name!r} is not UTF-8") from None


def is_binary(headers: Headers | None) -> bool:
    content_type = header(headers, "content-type")
    if content_type is not None and content_type.strip().lower().startswith("application/cloudevents"):
        return False
    return any(k.lower() == f"{BINARY_PREFIX}specversion" for k, _ in headers or ())


def decode(value: bytes | None, headers: Headers | None = None) -> CloudEvent:
    """Parse and check a CloudEvent in either content mode (not yet its data's schema)."""
    raw = _binary_envelope(value, headers) if is_binary(headers) else _structured_envelope(value)
    return _checked(raw)


def _structured_envelope(value: bytes | None) -> dict[str, Any]:
    if not value:
        raise InvalidMessage("invalid-json", "empty message")
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise InvalidMessage("invalid-json", f"not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise InvalidMessage("invalid-envelope", "a CloudEvent must be a JSON object")
    return raw


def _binary_envelope(value: bytes | None, headers: Headers | None) -> dict[str, Any]:
    """The attributes from the ce_* headers, datacontenttype from content-type, data from
    the value: the same dict a structured message holds."""
    raw: dict[str, Any] = {}
    for key, _ in headers or ():
        name = key.lower()
        if name.startswith(BINARY_PREFIX) and name[len(BINARY_PREFIX):] not in raw:
            raw[name[len(BINARY_PREFIX):]] = header(headers, name)
    content_type = header(headers, "content-type")
    if content_type is not None:
        # Media type parameters (charset=utf-8) do not change what JSON is.
        raw["datacontenttype"] = content_type.split(";", 1)[0].strip().lower()
    if not value:
        raise InvalidMessage("invalid-json", "binary mode: the message value (the event's data) is empty")
    try:
        raw["data"] = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise InvalidMessage("invalid-json", f"binary mode: the value (data) is not JSON: {e}") from None
    return raw


def _checked(raw: dict[str, Any]) -> CloudEvent:
    if raw.get("specversion") != SPEC_VERSION:
        raise InvalidMessage("invalid-envelope", f"specversion must be {SPEC_VERSION!r}")
    for attr in ("id", "source", "type"):
        if not isinstance(raw.get(attr), str) or not raw[attr]:
            raise InvalidMessage("invalid-envelope", f"attribute {attr!r} must be a non-empty string")
    if len(raw["id"]) > 200:
        raise InvalidMessage("invalid-envelope", "attribute 'id' is longer than 200 characters")
    content_type = raw.get("datacontenttype", "application/json")
    if content_type != "application/json":
        raise InvalidMessage("invalid-envelope", f"datacontenttype {content_type!r} is not application/json")
    if not isinstance(raw.get("data"), dict):
        raise InvalidMessage("invalid-envelope", "attribute 'data' must be a JSON object")
    m = TYPE_PATTERN.match(raw["type"])
    if m is None:
        raise InvalidMessage("unknown-type", f"type {raw['type']!r} is not cn.lianxi.<EventName>.v<N>")
    return CloudEvent(id=raw["id"], source=raw["source"], type=raw["type"], name=m.group(1),
                      version=int(m.group(2)), data=raw["data"], subject=raw.get("subject"),
                      time=raw.get("time"))


@cache
def validator(name: str, version: int) -> Draft202012Validator | None:
    schema = load_schema(name, version)
    if schema is None:
        return None
    return Draft202012Validator(schema, format_checker=FormatChecker())


def validate_data(event: CloudEvent) -> None:
    """Raise InvalidMessage unless ``data`` matches the JSON Schema of the event's type."""
    v = validator(event.name, event.version)
    if v is None:
        raise InvalidMessage("unknown-type", f"no schema for {event.type}")
    errors = sorted(v.iter_errors(event.data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidMessage("invalid-data", f"data/{where}: {first.message}{more}")
    problem = find_control_character(event.data, "data")  # the API's rule: text the store can hold
    if problem is not None:
        raise InvalidMessage("invalid-data", str(problem))


def source_unit(source: str) -> str:
    """The unit code a source names, or InvalidMessage."""
    m = SOURCE_PATTERN.match(source)
    if m is None:
        raise InvalidMessage("unknown-source", f"source {source!r} is not /agencies/<unit code>")
    return m.group(1)
