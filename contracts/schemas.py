"""JSON Schemas (draft 2020-12) of every domain event's payload, generated from the code.

Discovery walks every module of the ``events`` package, and in each the nested event classes
of its aggregates that derive from ``events.base.Recorded``: a new event module is picked up
without registering it anywhere. One file per event type and class version lives in
``contracts/schemas/<EventName>.v<N>.json``; ``lianxi schemas --write`` (``make schemas``)
rewrites them and tests/test_contracts.py fails when they drift from the code.

The payload is what the log stores and what the Kafka relay sends as CloudEvent ``data``:
the event's fields minus eventsourcing's bookkeeping (originator id/version/topic,
timestamp). Payload values are JSON-native by design (events/base.py), so a small type map
covers them; pydantic cannot be used here because ``typing.TypedDict`` is refused on 3.11.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

import events
from events.base import Recorded, RecordedCreated

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Also the CloudEvents ``dataschema`` of each relayed event.
SCHEMA_BASE_URI = "https://schemas.lianxi.cn/events"
CONTRACTS_DIR = Path(__file__).parent
SCHEMAS_DIR = CONTRACTS_DIR / "schemas"
ASYNCAPI_FILE = "asyncapi.yaml"
HIDDEN_FIELDS = frozenset({"originator_id", "originator_version", "originator_topic", "timestamp"})
DATE_FIELDS = frozenset({"occurred_on", "found_on", "deadline"})

JsonSchema = dict[str, Any]


@dataclass(frozen=True)
class EventType:
    """One domain event class as the outside sees it."""

    name: str  # class __name__: the feed's `type`
    version: int  # class_version (1 when unset)
    cls: type[Recorded]
    aggregate: str

    @property
    def topic(self) -> str:
        return get_topic(self.cls)

    @property
    def file_name(self) -> str:
        return f"{self.name}.v{self.version}.json"

    @property
    def schema_uri(self) -> str:
        return f"{SCHEMA_BASE_URI}/{self.file_name}"


def _event_modules() -> Iterator[types.ModuleType]:
    for info in sorted(pkgutil.iter_modules(events.__path__), key=lambda m: m.name):
        yield importlib.import_module(f"{events.__name__}.{info.name}")


def discover_event_types() -> list[EventType]:
    """Every Recorded event class nested in an aggregate of the events package, by name.
    Two classes with one name would share a feed type, so that is refused."""
    found: dict[str, EventType] = {}
    for module in _event_modules():
        for agg in vars(module).values():
            if not (isinstance(agg, type) and issubclass(agg, Aggregate) and agg.__module__ == module.__name__):
                continue
            for cls in vars(agg).values():
                if not isinstance(cls, type) or not issubclass(cls, Recorded):
                    continue
                if cls in (Recorded, RecordedCreated) or cls.__module__ != module.__name__:
                    continue
                et = EventType(cls.__name__, int(getattr(cls, "class_version", 1)), cls, agg.__name__)
                other = found.get(et.name)
                if other is not None and other.cls is not cls:
                    raise TypeError(f"event type name {et.name!r} is used by {other.topic} and {et.topic}")
                found[et.name] = et
    return sorted(found.values(), key=lambda e: e.name)


def is_date_field(name: str) -> bool:
    return name in DATE_FIELDS or name.endswith("_on")


class _SchemaBuilder:
    def __init__(self) -> None:
        self.defs: dict[str, JsonSchema] = {}
        self._typed: dict[str, Any] = {}

    def field(self, name: str, tp: Any) -> JsonSchema:
        schema = self.type(tp)
        if is_date_field(name) and schema.get("type") == "string":
            schema = {**schema, "format": "date"}
        return schema

    def type(self, tp: Any) -> JsonSchema:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if tp is Any or tp is object:
            return {}
        if tp is type(None):
            return {"type": "null"}
        if tp is str:
            return {"type": "string"}
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer"}
        if tp is float:
            return {"type": "number"}
        if origin is typing.Literal:
            return {"enum": list(args)}
        if origin in (typing.Union, types.UnionType):
            options = [self.type(a) for a in args]
            return {"anyOf": options}
        if origin in (list, tuple, set, frozenset) or tp in (list, tuple):
            if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
                args = args[:1]
            items = self.type(args[0]) if len(args) == 1 else {}
            return {"type": "array", "items": items}
        if origin is dict or tp is dict:
            values = self.type(args[1]) if len(args) == 2 else {}
            return {"type": "object", "additionalProperties": values}
        if typing.is_typeddict(tp):
            return self.typed_dict(tp)
        raise TypeError(f"event payload type {tp!r} is not JSON-native (see events/base.py)")

    def typed_dict(self, tp: Any) -> JsonSchema:
        name = tp.__name__
        known = self._typed.setdefault(name, tp)
        if known is not tp:
            name = f"{tp.__module__.rsplit('.', 1)[-1]}.{tp.__qualname__}"
        if name not in self.defs:
            self.defs[name] = {}  # placeholder: allows self-reference
            hints = typing.get_type_hints(tp)
            required: frozenset[str] = tp.__required_keys__
            self.defs[name] = {
                "type": "object",
                "properties": {k: self.field(k, v) for k, v in hints.items()},
                "required": sorted(required),
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{name}"}


def event_schema(et: EventType) -> JsonSchema:
    """The JSON Schema of one event type's payload."""
    builder = _SchemaBuilder()
    hints = typing.get_type_hints(et.cls)
    properties: dict[str, JsonSchema] = {}
    required: list[str] = []
    for f in dataclasses.fields(et.cls):
        if f.name in HIDDEN_FIELDS:
            continue
        prop = builder.field(f.name, hints[f.name])
        if f.default is not dataclasses.MISSING:
            prop = {**prop, "default": f.default}
        elif f.default_factory is dataclasses.MISSING:
            required.append(f.name)
        properties[f.name] = prop
    schema: JsonSchema = {
        "$schema": SCHEMA_DIALECT,
        "$id": et.schema_uri,
        "title": et.name,
        "description": f"Payload of {et.aggregate}.{et.name} (class version {et.version}).",
        "x-lianxi-topic": et.topic,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if builder.defs:
        schema["$defs"] = dict(sorted(builder.defs.items()))
    return schema


def render(schema: JsonSchema) -> bytes:
    """Stable bytes for a schema file (sorted keys, 2-space indent, trailing newline)."""
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def generate(inbound: Sequence[str] = ()) -> dict[str, bytes]:
    """Path under contracts/ -> content: the schema of the current version of every event
    type, and the AsyncAPI document (``inbound``: event types units may send)."""
    types_ = discover_event_types()
    out = {f"schemas/{et.file_name}": render(event_schema(et)) for et in types_}
    out[ASYNCAPI_FILE] = render_asyncapi(asyncapi_document(types_, inbound))
    return out


@dataclass(frozen=True)
class Drift:
    missing: list[str]  # generated, not on disk
    changed: list[str]  # on disk with other content
    stale: list[str]  # on disk, not an event type of the code (older versions are kept)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.changed or self.stale)

    def describe(self) -> str:
        parts = [f"{label}: {', '.join(names)}" for label, names in
                 (("missing", self.missing), ("changed", self.changed), ("stale", self.stale)) if names]
        return "; ".join(parts)


def _on_disk(root: Path) -> dict[str, bytes]:
    files = {f"schemas/{p.name}": p.read_bytes() for p in sorted((root / "schemas").glob("*.json"))}
    if (root / ASYNCAPI_FILE).is_file():
        files[ASYNCAPI_FILE] = (root / ASYNCAPI_FILE).read_bytes()
    return files


def _stale(names: list[str], generated: dict[str, bytes]) -> list[str]:
    """Schema files of no current event type. An older class version of a known type stays:
    stored events of that version are still relayed with its schema."""
    current: dict[str, int] = {}
    for n in generated:
        if n.startswith("schemas/"):
            stem, _, version = n[len("schemas/"):-len(".json")].rpartition(".v")
            current[stem] = int(version)
    out = []
    for n in names:
        if n in generated or not n.startswith("schemas/"):
            continue
        stem, _, version = n[len("schemas/"):-len(".json")].rpartition(".v")
        if not (stem in current and version.isdigit() and int(version) < current[stem]):
            out.append(n)
    return out


def check(inbound: Sequence[str] = (), root: Path = CONTRACTS_DIR) -> Drift:
    generated = generate(inbound)
    disk = _on_disk(root)
    return Drift(
        missing=sorted(n for n in generated if n not in disk),
        changed=sorted(n for n in generated if n in disk and disk[n] != generated[n]),
        stale=_stale(sorted(disk), generated),
    )


def write(inbound: Sequence[str] = (), root: Path = CONTRACTS_DIR) -> Drift:
    """Bring the files in line with the code; returns what was out of date."""
    drift = check(inbound, root)
    (root / "schemas").mkdir(parents=True, exist_ok=True)
    for name, content in generate(inbound).items():
        path = root / name
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
    for name in drift.stale:
        (root / name).unlink()
    return drift


# -- AsyncAPI ------------------------------------------------------------------------------

EVENTS_TOPIC = "lianxi.events.v1"
INBOUND_TOPIC = "lianxi.inbound.v1"
DLQ_TOPIC = "lianxi.inbound.dlq.v1"
DEAD_LETTER_CODES = (
    "invalid-json", "invalid-envelope", "unknown-type", "invalid-data", "unknown-source", "spoofed", "unknown-evidence",
    "rejected",
)
_KAFKA_BINDING = "0.5.0"

CLOUD_EVENT_ENVELOPE: JsonSchema = {
    "type": "object",
    "description": "CloudEvents 1.0, structured JSON mode.",
    "required": ["specversion", "id", "source", "type", "data"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "minLength": 1, "maxLength": 200},
        "source": {"type": "string", "pattern": "^/agencies/[a-z0-9][a-z0-9-]{0,63}$"},
        "type": {"type": "string", "pattern": "^cn\\.lianxi\\.[A-Za-z][A-Za-z0-9]*\\.v[1-9][0-9]*$"},
        "subject": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"const": "application/json"},
        "dataschema": {"type": "string", "format": "uri"},
        "lianxiposition": {"type": "integer", "minimum": 1},
        "data": {"type": "object"},
    },
}


def asyncapi_document(types_: Sequence[EventType], inbound: Sequence[str]) -> dict[str, Any]:
    """The AsyncAPI 3.0 description of the three topics. Outbound messages cover every
    event type; inbound ones the types listed in services/kafka/ingest.py INBOUND_COMMANDS."""
    by_name = {et.name: et for et in types_}
    unknown = [n for n in inbound if n not in by_name]
    if unknown:
        raise ValueError(f"inbound event types without an event class: {', '.join(unknown)}")
    key_binding = {"kafka": {"key": {"type": "string", "description": "unit code (成员单位代码)"},
                             "bindingVersion": _KAFKA_BINDING}}

    def message(et: EventType, *, inbound_msg: bool) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "type": {"const": f"cn.lianxi.{et.name}.v{et.version}"},
            "data": {"$ref": f"./schemas/{et.file_name}"},
        }
        if not inbound_msg:
            envelope["dataschema"] = {"const": et.schema_uri}
            envelope["subject"] = {"type": "string", "format": "uuid", "description": "aggregate id"}
        summary = (f"{et.name} sent by a member unit's own system." if inbound_msg
                   else f"{et.name} ({et.aggregate}) as recorded in the log.")
        return {
            "name": f"{et.name}.v{et.version}",
            "title": et.name,
            "summary": summary,
            "contentType": "application/cloudevents+json",
            "bindings": key_binding,
            "payload": {"allOf": [{"$ref": "#/components/schemas/CloudEvent"},
                                  {"type": "object", "properties": envelope}]},
        }

    outbound = {f"{et.name}": message(et, inbound_msg=False) for et in types_}
    inbound_msgs = {f"Inbound{name}": message(by_name[name], inbound_msg=True) for name in sorted(inbound)}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Lianxi 联席 event bus",
            "version": "1.0.0",
            "description": (
                "Kafka topics between the platform and member units. GENERATED by `make schemas` "
                "from events/ and services/kafka/ingest.py; do not edit by hand."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "kafka": {"host": "kafka:9092", "protocol": "kafka",
                      "description": "set with LIANXI_KAFKA_BOOTSTRAP"},
        },
        "channels": {
            "events": {
                "address": EVENTS_TOPIC,
                "title": "Every event of the log",
                "description": (
                    "Published by `lianxi relay` in log order, keyed by unit code so each unit's events "
                    "stay in order. At least once: consumers drop repeats by CloudEvent id "
                    "(services/kafka/dedupe.py)."
                ),
                "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in outbound},
                "bindings": {"kafka": {"topic": EVENTS_TOPIC, "bindingVersion": _KAFKA_BINDING}},
            },
            "inbound": {
                "address": INBOUND_TOPIC,
                "title": "Agency feeds",
                "description": (
                    "Member units' systems publish here; `lianxi ingest` appends each valid message. "
                    "source /agencies/<code> may only write that unit's events. The platform replaces "
                    "event_id (uuid5 of source and id, so a redelivery is a no-op), logged_by and "
                    "request_digest. Either content mode of the CloudEvents Kafka protocol binding: "
                    "structured (the envelope below as the value; content-type "
                    "application/cloudevents+json or none) or binary (the attributes as ce_specversion, "
                    "ce_id, ce_source, ce_type[, ce_subject, ce_time] UTF-8 headers, content-type "
                    "application/json as datacontenttype, and the value is data itself)."
                ),
                "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in inbound_msgs},
                "bindings": {"kafka": {"topic": INBOUND_TOPIC, "bindingVersion": _KAFKA_BINDING}},
            },
            "deadLetters": {
                "address": DLQ_TOPIC,
                "title": "Refused inbound messages",
                "description": ("The original bytes, key and headers of each refused message, with the reason "
                                "in headers."),
                "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
                "bindings": {"kafka": {"topic": DLQ_TOPIC, "bindingVersion": _KAFKA_BINDING}},
            },
        },
        "operations": {
            "publishEvents": {
                "action": "send", "channel": {"$ref": "#/channels/events"},
                "messages": [{"$ref": f"#/channels/events/messages/{n}"} for n in outbound],
            },
            "receiveInbound": {
                "action": "receive", "channel": {"$ref": "#/channels/inbound"},
                "messages": [{"$ref": f"#/channels/inbound/messages/{n}"} for n in inbound_msgs],
                "bindings": {"kafka": {"groupId": {"type": "string", "const": "lianxi-ingest"},
                                       "bindingVersion": _KAFKA_BINDING}},
            },
            "publishDeadLetters": {
                "action": "send", "channel": {"$ref": "#/channels/deadLetters"},
                "messages": [{"$ref": "#/channels/deadLetters/messages/DeadLetter"}],
            },
        },
        "components": {
            "schemas": {"CloudEvent": CLOUD_EVENT_ENVELOPE},
            "messages": {
                **outbound,
                **inbound_msgs,
                "DeadLetter": {
                    "name": "DeadLetter",
                    "title": "Dead letter",
                    "contentType": "application/octet-stream",
                    "summary": "An inbound message that was refused, byte for byte.",
                    "headers": {
                        "type": "object",
                        "required": ["lianxi-dlq-code", "lianxi-dlq-reason", "lianxi-dlq-origin"],
                        "properties": {
                            "lianxi-dlq-code": {"type": "string", "enum": list(DEAD_LETTER_CODES)},
                            "lianxi-dlq-reason": {"type": "string"},
                            "lianxi-dlq-origin": {"type": "string",
                                                  "description": "topic/partition/offset of the original"},
                            "lianxi-dlq-content-type": {"type": "string",
                                                        "description": "the original content-type, if any"},
                        },
                    },
                    "payload": {"description": "the original message value, unchanged"},
                    "bindings": key_binding,
                },
            },
        },
    }


def render_asyncapi(doc: dict[str, Any]) -> bytes:
    text: str = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110)
    return text.encode()


def load_schema(name: str, version: int, directory: Path = SCHEMAS_DIR) -> JsonSchema | None:
    """The committed schema of one event type and version, or None when there is none."""
    path = directory / f"{name}.v{version}.json"
    if not path.is_file():
        return None
    loaded: JsonSchema = orjson.loads(path.read_bytes())
    return loaded
