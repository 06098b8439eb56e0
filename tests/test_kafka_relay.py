"""The outbound relay against a real broker (tansu) and the local PostgreSQL: every event
arrives as a valid CloudEvent, at least once and in order per unit, across a kill -9 of the
relay and a restart of the broker."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from contracts import schemas
from contracts.catalogue import default_catalogue
from services.app import LianxiApp
from services.demo.year import run_demo
from services.kafka.dedupe import SeenIds, deduplicated
from services.kafka.relay import Relay, kafka_producer_factory, relay_tracking
from services.kernel.principal import Principal
from services.platform import Platform
from tests.conftest import make_platform
from tests.kafka_fixtures import (
    ROOT,
    Broker,
    lianxi_process,
    read_topic,
    stop_process,
    unique_topic,
    wait_until,
)

pytest_plugins = ["tests.kafka_fixtures"]
pytestmark = pytest.mark.kafka
DEMO_NOW = datetime(2025, 3, 31, 10, 0, tzinfo=UTC)
ENVELOPE = yaml.safe_load((ROOT / "contracts" / "asyncapi.yaml").read_text())["components"]["schemas"]["CloudEvent"]


def demo_platform(url: str, schools: int = 8) -> Platform:
    platform = make_platform(url)
    run_demo(platform.app, default_catalogue(), schools=schools, year=2025, seed=5, now=DEMO_NOW)
    return platform


def logged(app: LianxiApp) -> list[tuple[int, str, str]]:
    """(position, event_id, unit) of every stored event, in log order."""
    out = []
    for n in app.recorder.select_notifications(start=1, limit=1_000_000):
        state = orjson.loads(n.state)
        out.append((int(n.id), state["event_id"], state["agency"]))
    return out


class DutyWriter:
    """Appends DutyPerformed events one transaction at a time, as liaisons would."""

    def __init__(self, app: LianxiApp) -> None:
        self.app = app
        self.units: list[tuple[str, str]] = []
        for unit in default_catalogue().units.units:
            for duty in app.agency(unit.code).current_duties:
                if duty["applies_to"] in ("all", "none"):
                    self.units.append((unit.code, duty["code"]))
                    break
        self.count = 0

    def write(self, n: int) -> None:
        for _ in range(n):
            code, duty = self.units[self.count % len(self.units)]
            self.count += 1
            principal = Principal(token_id="t", agency=code, role="liaison", label="test")
            self.app.log_duty(
                principal, duty_code=duty, school_ids=["S00001"], occurred_on=date(2025, 3, 30),
                summary=f"巡查 {self.count}", findings={"count": 0, "text": ""}, evidence=[],
                idempotency_key=None, body={"n": self.count}, now=DEMO_NOW + timedelta(minutes=self.count),
            )


def assert_delivered(records: list[Any], expected: list[tuple[int, str, str]]) -> None:
    """Every expected event at least once; per unit, first deliveries in log order, on one
    partition, keyed by the unit."""
    partitions: dict[bytes, set[int]] = defaultdict(set)
    first_seen: dict[str, list[int]] = defaultdict(list)
    seen = SeenIds()
    for r in records:
        event = orjson.loads(r.value)
        partitions[r.key].add(r.partition)
        assert r.key == event["source"].rsplit("/", 1)[-1].encode()
        if seen.first_time(event["id"]):
            first_seen[event["source"]].append(event["lianxiposition"])
    delivered = {p for ps in first_seen.values() for p in ps}
    missing = [p for p, _, _ in expected if p not in delivered]
    assert not missing, f"{len(missing)} events never arrived, first positions {missing[:10]}"
    for source, positions in first_seen.items():
        assert positions == sorted(positions), f"{source}: out of order"
    assert all(len(ps) == 1 for ps in partitions.values()), "a unit's events spread over partitions"


def test_relay_publishes_every_event_as_a_valid_cloudevent(database_url: str, tansu: Broker) -> None:
    platform = demo_platform(database_url)
    topic = unique_topic("lianxi.events.v1")
    relay = Relay(platform.app.recorder, platform.write_engine,
                  kafka_producer_factory(tansu.bootstrap, ensure_topics=[(topic, 3, 1)]), topic=topic,
                  batch_size=100)
    try:
        relay.setup()
        sent = relay.catch_up()
        expected = logged(platform.app)
        assert sent == len(expected) and relay.position() == expected[-1][0] and relay.lag() == 0
        assert relay.catch_up() == 0  # nothing new: nothing resent

        records = read_topic(tansu.bootstrap, topic, until=lambda rs: len(rs) >= len(expected))
        assert len(records) == len(expected)  # no failure: exactly once
        assert_delivered(records, expected)
        envelope = Draft202012Validator(ENVELOPE, format_checker=FormatChecker())
        by_position = {n.id: n for n in platform.app.recorder.select_notifications(start=1, limit=100_000)}
        types_seen = set()
        for r in records:
            event = orjson.loads(r.value)
            assert dict(r.headers)["content-type"] == b"application/cloudevents+json"
            assert not list(envelope.iter_errors(event)), event
            name, version = event["type"].removeprefix("cn.lianxi.").rsplit(".v", 1)
            schema = schemas.load_schema(name, int(version))
            assert schema is not None and event["dataschema"] == schema["$id"]
            data_errors = list(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(event["data"]))
            assert not data_errors, (event["type"], data_errors[0].message)
            n = by_position[event["lianxiposition"]]
            stored = orjson.loads(n.state)
            assert event["id"] == stored["event_id"] and event["subject"] == str(n.originator_id)
            assert event["source"] == f"/agencies/{stored['agency']}"
            assert datetime.fromisoformat(event["time"]) == datetime.fromisoformat(stored["timestamp"])
            types_seen.add(name)
        assert {"AgencyRegistered", "SchoolRegistered", "DutyPerformed"} <= types_seen
    finally:
        relay.close()
        platform.close()


def relay_position(platform: Platform) -> int:
    try:
        with platform.write_engine.connect() as conn:
            row = conn.execute(relay_tracking.select()).first()
    except sa.exc.ProgrammingError:  # no relay has created its table yet
        return 0
    return 0 if row is None else int(row.position)


def test_two_relays_survive_kill_9_mid_stream(pg_url: str, tansu: Broker, tmp_path: Path) -> None:
    """Two relay processes share the work through the row lock; one is killed with -9 while
    events are being written and published, then restarted. Every event arrives at least
    once, in order per unit, none missing."""
    platform = demo_platform(pg_url, schools=16)  # a backlog of about 800 events
    writer = DutyWriter(platform.app)
    topic = unique_topic("lianxi.events.v1")
    env = {"LIANXI_DATABASE_URL": pg_url, "LIANXI_KAFKA_BOOTSTRAP": tansu.bootstrap,
           "LIANXI_KAFKA_EVENTS_TOPIC": topic, "LIANXI_KAFKA_PARTITIONS": "3", "LIANXI_RELAY_BATCH_SIZE": "10"}
    relays = [lianxi_process("relay", env=env, log_path=tmp_path / f"relay{i}.log") for i in range(2)]
    stop_writing = threading.Event()

    def keep_writing() -> None:
        while not stop_writing.is_set():
            writer.write(5)

    background = threading.Thread(target=keep_writing, daemon=True)
    try:
        background.start()
        wait_until(lambda: relay_position(platform) > 100, 60, "the relays to publish", interval=0.01)
        relays[0].send_signal(signal.SIGKILL)
        relays[0].wait(10)
        killed_at = relay_position(platform)
        head_then = platform.app.recorder.max_notification_id() or 0
        assert killed_at < head_then  # the kill came mid-stream
        wait_until(lambda: relay_position(platform) > killed_at + 30, 60, "the other relay to go on")
        relays[0] = lianxi_process("relay", env=env, log_path=tmp_path / "relay0b.log")
        time.sleep(0.5)
        stop_writing.set()
        background.join(30)
        head = platform.app.recorder.max_notification_id() or 0
        wait_until(lambda: relay_position(platform) == head, 60, "the relays to reach the head")
        expected = logged(platform.app)
        records = read_topic(tansu.bootstrap, topic,
                             until=lambda rs: len({orjson.loads(r.value)["id"] for r in rs}) >= len(expected))
        assert_delivered(records, expected)
        ids = [orjson.loads(r.value)["id"] for r in records]
        assert len(set(ids)) == len(expected)
        assert len(list(deduplicated(records))) == len(expected)
    finally:
        stop_writing.set()
        for p in relays:
            stop_process(p)
        platform.close()


def test_relay_recovers_from_a_broker_restart(pg_url: str, own_tansu: Broker) -> None:
    """tansu restarts empty and the old idempotent producer then fails for good; the relay
    replaces it by itself and publishes everything after its acknowledged position."""
    platform = demo_platform(pg_url, schools=4)
    writer = DutyWriter(platform.app)
    topic = unique_topic("lianxi.events.v1")
    factory = kafka_producer_factory(own_tansu.bootstrap, ensure_topics=[(topic, 3, 1)], request_timeout_ms=2000,
                                     delivery_timeout_ms=4000)
    relay = Relay(platform.app.recorder, platform.write_engine, factory, topic=topic, batch_size=50,
                  flush_timeout_s=5)
    relay.setup()
    stop = threading.Event()
    thread = threading.Thread(target=relay.run_forever, args=(stop,), kwargs={"idle_sleep": 0.05,
                                                                             "max_backoff": 0.5})
    try:
        thread.start()
        head = platform.app.recorder.max_notification_id() or 0
        wait_until(lambda: relay.position() == head, 30, "the first publish")
        acked = relay.position()

        own_tansu.restart()  # fresh and empty, same port
        writer.write(40)
        head = platform.app.recorder.max_notification_id() or 0
        wait_until(lambda: relay.position() == head, 60, "the relay to recover")
        assert relay.stats.producer_restarts >= 1 and relay.stats.failures >= 1

        expected = [e for e in logged(platform.app) if e[0] > acked]
        assert len(expected) == 40
        records = read_topic(own_tansu.bootstrap, topic,
                             until=lambda rs: len({orjson.loads(r.value)["id"] for r in rs}) >= len(expected))
        assert_delivered(records, expected)
    finally:
        stop.set()
        thread.join(30)
        relay.close()
        platform.close()


def test_kafka_workers_refuse_to_start_without_a_bootstrap(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from services import cli
    from services.settings import get_settings

    monkeypatch.delenv("LIANXI_KAFKA_BOOTSTRAP", raising=False)
    get_settings.cache_clear()
    try:
        for command in ("relay", "ingest"):
            monkeypatch.setattr(sys, "argv", ["lianxi", command])
            with pytest.raises(SystemExit) as exited:
                cli.main()
            assert exited.value.code == 1
            assert capsys.readouterr().err.strip() == (
                "lianxi: error: LIANXI_KAFKA_BOOTSTRAP is not set (host:port of the Kafka brokers)")
    finally:
        get_settings.cache_clear()


def test_seen_ids_drop_repeats_and_forget_the_oldest() -> None:
    seen = SeenIds(capacity=2)
    assert [seen.first_time(i) for i in ("a", "b", "a", "c", "a", "b")] == [True, True, False, True, False, True]
    assert seen.repeats == 2 and len(seen) == 2
