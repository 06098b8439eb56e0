"""The event JSON Schemas and the AsyncAPI document are generated from the code; these tests
fail when the committed files drift, and hold real stored events to their schemas."""

from __future__ import annotations

import re
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker

import events
from contracts import schemas
from contracts.catalogue import default_catalogue
from projections.base import LoggedEvent
from services.demo.year import run_demo
from services.kafka.ingest import INBOUND_COMMANDS
from services.settings import Settings
from tests.conftest import make_platform

ROOT = Path(__file__).resolve().parent.parent


def validator_for(name: str, version: int) -> Draft202012Validator:
    schema = schemas.load_schema(name, version)
    assert schema is not None, f"no committed schema for {name} v{version}; run `make schemas`"
    return Draft202012Validator(schema, format_checker=FormatChecker())


def test_committed_contracts_match_the_code() -> None:
    drift = schemas.check(sorted(INBOUND_COMMANDS))
    assert drift.clean, f"contracts drifted from the code ({drift.describe()}): run `make schemas`"


def test_every_schema_is_valid_draft_2020_12_and_dates_have_format() -> None:
    types_ = schemas.discover_event_types()
    assert {"DutyPerformed", "AgencyRegistered", "SchoolRegistered"} <= {t.name for t in types_}
    for et in types_:
        schema = schemas.event_schema(et)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        props = schema["properties"]
        assert not set(props) & schemas.HIDDEN_FIELDS, et.name
        assert {"event_id", "agency", "occurred_on"} <= set(props), et.name
        for name, prop in props.items():
            if schemas.is_date_field(name) and prop.get("type") == "string":
                assert prop["format"] == "date", (et.name, name)


def test_new_event_modules_are_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "zz_probe.py").write_text(textwrap.dedent('''
        from __future__ import annotations
        from typing import TypedDict
        from eventsourcing.domain import Aggregate
        from events.base import Recorded, RecordedCreated

        class Window(TypedDict):
            starts_on: str
            note: str

        class Probe(Aggregate):
            class ProbeOpened(RecordedCreated):
                deadline: str
                found_on: str
                window: Window
                level: int | None

            class ProbeRevised(Recorded):
                class_version = 2
                tags: list[str]
    '''))
    monkeypatch.setattr(events, "__path__", [*events.__path__, str(tmp_path)])
    try:
        found = {t.name: t for t in schemas.discover_event_types()}
        assert found["ProbeRevised"].file_name == "ProbeRevised.v2.json"
        opened = schemas.event_schema(found["ProbeOpened"])
        assert opened["properties"]["deadline"]["format"] == "date"
        assert opened["properties"]["found_on"]["format"] == "date"
        assert opened["$defs"]["Window"]["properties"]["starts_on"]["format"] == "date"
        assert opened["properties"]["level"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
        v = Draft202012Validator(opened, format_checker=FormatChecker())
        good = {"event_id": "e", "agency": "a", "occurred_on": "2025-01-02", "deadline": "2025-03-31",
                "found_on": "2025-01-01", "window": {"starts_on": "2025-01-01", "note": ""}, "level": None}
        assert not list(v.iter_errors(good))
        assert list(v.iter_errors({**good, "deadline": "2025-02-30"}))
    finally:
        sys.modules.pop("events.zz_probe", None)
        if hasattr(events, "zz_probe"):
            delattr(events, "zz_probe")


def test_schemas_refuse_wrong_payloads() -> None:
    v = validator_for("DutyPerformed", 1)
    good = {"event_id": "x", "agency": "fire-rescue", "occurred_on": "2025-05-01", "duty_code": "fire-rescue.x",
            "school_ids": ["S1"], "summary": "s", "findings": {"count": 0, "text": ""}, "evidence": [],
            "logged_by": "l", "request_digest": ""}
    assert not list(v.iter_errors(good))
    bad = [
        {**good, "occurred_on": "2025-13-01"},
        {**good, "extra": 1},
        {k: val for k, val in good.items() if k != "duty_code"},
        {**good, "findings": {"count": "1", "text": ""}},
        {**good, "school_ids": "S1"},
    ]
    for payload in bad:
        assert list(v.iter_errors(payload)), payload


def test_stored_events_of_a_demo_validate_against_their_schemas(tmp_path: Path) -> None:
    platform = make_platform(f"sqlite:///{tmp_path / 'demo.db'}")
    try:
        run_demo(platform.app, default_catalogue(), schools=6, year=2025, seed=3,
                 now=datetime(2025, 4, 15, tzinfo=UTC))
        notifications = platform.app.recorder.select_notifications(start=1, limit=100_000)
        seen: dict[str, int] = {}
        for n in notifications:
            e = LoggedEvent.from_notification(n)
            version = int(orjson.loads(n.state).get("class_version", 1))
            errors = list(validator_for(e.type, version).iter_errors(e.data))
            assert not errors, (e.type, e.data, [err.message for err in errors])
            seen[e.type] = seen.get(e.type, 0) + 1
        assert seen.get("DutyPerformed", 0) > 50 and seen.get("SchoolRegistered") == 6
    finally:
        platform.close()


# -- AsyncAPI ------------------------------------------------------------------------------

def _resolve(doc: dict[str, Any], pointer: str) -> Any:
    node: Any = doc
    for part in pointer.lstrip("#/").split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return out + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_asyncapi_describes_the_topics_and_event_types_of_the_code() -> None:
    doc = yaml.safe_load((ROOT / "contracts" / "asyncapi.yaml").read_text())
    assert doc["asyncapi"] == "3.0.0"
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {settings.kafka_events_topic, settings.kafka_inbound_topic, settings.kafka_dlq_topic}
    channels = {c["address"]: c for c in doc["channels"].values()}
    code_types = {t.name: t for t in schemas.discover_event_types()}

    out_msgs = [_resolve(doc, m["$ref"]) for m in channels[settings.kafka_events_topic]["messages"].values()]
    assert {m["title"] for m in out_msgs} == set(code_types)
    in_msgs = [_resolve(doc, m["$ref"]) for m in channels[settings.kafka_inbound_topic]["messages"].values()]
    assert {m["title"] for m in in_msgs} == set(INBOUND_COMMANDS)
    for m in out_msgs + in_msgs:
        et = code_types[m["title"]]
        props = m["payload"]["allOf"][1]["properties"]
        assert props["type"]["const"] == f"cn.lianxi.{et.name}.v{et.version}"
        assert props["data"]["$ref"] == f"./schemas/{et.file_name}"

    for ref in _refs(doc):
        if ref.startswith("#/"):
            _resolve(doc, ref)  # raises KeyError when dangling
        else:
            assert (ROOT / "contracts" / ref).is_file(), ref


def test_dead_letter_codes_in_the_code_are_documented() -> None:
    source = "".join((ROOT / "services" / f).read_text() for f in ("kafka/cloudevents.py", "kafka/ingest.py"))
    used = set(re.findall(r'InvalidMessage\(\s*"([a-z-]+)"', source))
    assert used and used <= set(schemas.DEAD_LETTER_CODES)
