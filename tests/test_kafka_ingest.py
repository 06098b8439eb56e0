"""Inbound agency feeds against a real broker (tansu) and the local PostgreSQL: a mix of
valid, invalid, spoofed and duplicate messages ends with exactly the right events and
exactly the right dead letters."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer, TopicPartition

from contracts.catalogue import default_catalogue
from events.schools import School
from services.kafka import cloudevents
from services.kafka.ingest import (
    DLQ_CODE,
    DLQ_CONTENT_TYPE,
    DLQ_ORIGIN,
    DLQ_REASON,
    Ingestor,
    KafkaIngest,
    Outcome,
    inbound_event_id,
)
from services.platform import Platform
from tests.conftest import make_platform
from tests.kafka_fixtures import (
    SESSION_TIMEOUT_MS,
    Broker,
    lianxi_process,
    read_topic,
    stop_process,
    unique_topic,
    wait_until,
)

pytest_plugins = ["tests.kafka_fixtures"]
pytestmark = pytest.mark.kafka
DUTY = "cn.lianxi.DutyPerformed.v1"


@pytest.fixture
def county(pg_url: str) -> Iterator[Platform]:
    """The catalogue and three schools on PostgreSQL; the clock at FIXED_NOW (2025-06-30)."""
    platform = make_platform(pg_url)
    platform.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    for sid in ("S1", "S2", "S3"):
        platform.app.save(School.register(
            by_agency="education", by_lead=True, school_id=sid, name=f"学校{sid}", town="满都拉图镇",
            kind="primary", boarding=False, canteen=True, school_bus=False, now=datetime(2024, 2, 1, tzinfo=UTC),
        ))
    yield platform
    platform.close()


def duty(unit: str, duty_code: str | None = None, **over: Any) -> dict[str, Any]:
    code = duty_code or next(d.code for u in default_catalogue().units.units if u.code == unit
                             for d in u.duties if d.applies_to == "all")
    return {"event_id": "sender-owned", "agency": unit, "occurred_on": "2025-06-20", "duty_code": code,
            "school_ids": ["S1", "S2"], "summary": "本单位系统上报的检查",
            "findings": {"count": 1, "text": "灭火器过期"},
            "evidence": ["sha256:abc"], "logged_by": "unit-system", "request_digest": "", **over}


def message(source: str, mid: str, data: Any, type_: str = DUTY, **over: Any) -> bytes:
    return orjson.dumps({"specversion": "1.0", "id": mid, "source": source, "type": type_,
                         "datacontenttype": "application/json", "time": "2025-06-20T08:00:00Z",
                         "data": data, **over})


def fire(mid: str, **over: Any) -> bytes:
    return message("/agencies/fire-rescue", mid, duty("fire-rescue", **over))


def scenario() -> tuple[list[bytes], set[str], Counter[tuple[str, bytes]]]:
    """Messages in send order, the event ids they must produce, and the dead letters."""
    valid = [
        fire("fr-1"),
        fire("fr-2", school_ids=["S3"], findings={"count": 0, "text": ""}),
        message("/agencies/public-security", "ps-1", duty("public-security")),
        message("/agencies/education", "fr-1", duty("education")),  # same id, other source: distinct
        message("/agencies/market-supervision", "ms-1", duty("market-supervision", school_ids=[])),
    ]
    expected_ids = {
        inbound_event_id(s, m) for s, m in [("/agencies/fire-rescue", "fr-1"), ("/agencies/fire-rescue", "fr-2"),
                                           ("/agencies/public-security", "ps-1"), ("/agencies/education", "fr-1"),
                                           ("/agencies/market-supervision", "ms-1")]
    }
    duplicates = [
        valid[0],  # redelivered byte for byte
        message("/agencies/public-security", "ps-1", duty("public-security", summary="重发")),
    ]
    no_spec = orjson.loads(fire("x-1"))
    del no_spec["specversion"]
    dead = [
        ("invalid-json", b"{not json"),
        ("invalid-envelope", b"[1, 2]"),
        ("invalid-envelope", orjson.dumps(no_spec)),
        ("unknown-type", message("/agencies/education", "x-2", {"school_id": "S9"},
                                 type_="cn.lianxi.SchoolRegistered.v1")),
        ("unknown-type", message("/agencies/fire-rescue", "x-3", duty("fire-rescue"), type_="com.example.Foo")),
        ("invalid-data", fire("x-4", occurred_on="2025-02-30")),
        ("invalid-data", message("/agencies/fire-rescue", "x-5", {**duty("fire-rescue"), "student_name": "张三"})),
        ("unknown-source", message("/agencies/nobody", "x-6", duty("nobody", duty_code="nobody.x"))),
        ("unknown-source", message("fire-rescue", "x-7", duty("fire-rescue"))),
        ("spoofed", message("/agencies/public-security", "x-8", duty("fire-rescue"))),
        ("rejected", fire("x-9", duty_code="public-security.campus-protection")),
        ("rejected", fire("x-10", school_ids=["NOPE"])),
        ("rejected", fire("x-11", occurred_on="2025-07-05")),
    ]
    ordered = [valid[0], *[d for _, d in dead[:5]], valid[1], duplicates[0], *[d for _, d in dead[5:]],
               valid[2], valid[3], duplicates[1], valid[4]]
    return ordered, expected_ids, Counter(dead)


def feed_event_ids(platform: Platform) -> list[str]:
    out = []
    for n in platform.app.recorder.select_notifications(start=1, limit=100_000):
        state = orjson.loads(n.state)
        if str(state.get("logged_by", "")).startswith("feed:"):
            out.append(state["event_id"])
    return out


def test_ingest_appends_valid_messages_once_and_dead_letters_the_rest(county: Platform, tansu: Broker) -> None:
    messages, expected_ids, expected_dead = scenario()
    inbound, dlq = unique_topic("lianxi.inbound.v1"), unique_topic("lianxi.inbound.dlq.v1")
    producer = KafkaProducer(bootstrap_servers=tansu.bootstrap, acks="all")
    ingest = KafkaIngest(
        Ingestor(county.app, county.clock), bootstrap=tansu.bootstrap, topic=inbound, dlq_topic=dlq,
        group_id=unique_topic("ingest"), session_timeout_ms=SESSION_TIMEOUT_MS, max_poll_records=8,
        ensure_topics=[(inbound, 3, 1), (dlq, 1, 1)],
    )
    # The database fails the first append: nothing of that batch may be committed or lost.
    real_save, failures = county.app.save, []

    def flaky_save(*aggregates: Any, **kw: Any) -> Any:
        if not failures:
            failures.append(1)
            raise RuntimeError("database went away")
        return real_save(*aggregates, **kw)

    county.app.save = flaky_save  # type: ignore[method-assign]
    try:
        ingest._connect()
        for m in messages:
            producer.send(inbound, value=m, key=b"k" + m[-3:])
        producer.flush()

        def drained() -> bool:
            with contextlib.suppress(RuntimeError):  # the injected failure
                ingest.poll_once(timeout_ms=200)
            s = ingest.stats
            return s.appended + s.duplicates + s.dead == len(messages)

        wait_until(drained, 60, "ingest to handle every message", interval=0)
        assert failures and ingest.stats.retries == 1
        assert ingest.stats.appended == len(expected_ids) and ingest.stats.duplicates == 2

        ids = feed_event_ids(county)
        assert sorted(ids) == sorted(expected_ids)  # exactly once each

        letters = read_topic(tansu.bootstrap, dlq, until=lambda rs: len(rs) >= sum(expected_dead.values()))
        got = Counter((dict(r.headers)[DLQ_CODE].decode(), r.value) for r in letters)
        assert got == expected_dead
        for r in letters:
            headers = dict(r.headers)
            assert headers[DLQ_REASON] and headers[DLQ_ORIGIN].decode().startswith(f"{inbound}/")

        # Committed = one past the last message of each partition. (tansu's ListOffsets
        # answers the last batch's base offset + 1, so end offsets come from the records.)
        sent = read_topic(tansu.bootstrap, inbound, until=lambda rs: len(rs) >= len(messages))
        last: dict[TopicPartition, int] = {}
        for r in sent:
            tp = TopicPartition(r.topic, r.partition)
            last[tp] = max(last.get(tp, 0), r.offset + 1)
        assert {tp: ingest._consumer.committed(tp) for tp in last} == last

        # A full redelivery (a rebalance, a second instance) appends nothing new.
        again = Ingestor(county.app, county.clock).process(messages)
        assert not [o for o in again if o.kind == "appended"]
        assert sorted(feed_event_ids(county)) == sorted(expected_ids)
    finally:
        county.app.save = real_save  # type: ignore[method-assign]
        ingest.close()
        producer.close()


def test_spoofed_fields_never_reach_the_log(county: Platform) -> None:
    """The event carries the platform's id and actor, not the sender's."""
    ingestor = Ingestor(county.app, county.clock)
    [outcome] = ingestor.process([fire("own-1", event_id="chosen-by-sender", logged_by="someone-else")])
    assert outcome == Outcome("appended", inbound_event_id("/agencies/fire-rescue", "own-1"))
    [n] = [n for n in county.app.recorder.select_notifications(start=1, limit=10_000)
           if orjson.loads(n.state).get("event_id") == outcome.event_id]
    state = orjson.loads(n.state)
    assert state["logged_by"] == "feed:/agencies/fire-rescue" and state["agency"] == "fire-rescue"


def test_two_ingest_instances_racing_on_the_same_messages_append_each_once(county: Platform) -> None:
    messages = [fire(f"race-{i}") for i in range(30)]
    results: list[list[Outcome]] = []

    def run() -> None:
        results.append(Ingestor(county.app, county.clock).process(messages))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    appended = [o.event_id for r in results for o in r if o.kind == "appended"]
    assert sorted(appended) == sorted(inbound_event_id("/agencies/fire-rescue", f"race-{i}") for i in range(30))
    assert len(feed_event_ids(county)) == 30


def test_a_message_that_breaks_its_command_is_dead_lettered_not_retried_forever(county: Platform) -> None:
    def broken(ingestor: Ingestor, unit: Any, event: Any, now: datetime) -> Any:
        raise ValueError("bug in a command")

    outcomes = Ingestor(county.app, county.clock, commands={"DutyPerformed": broken}).process([fire("b-1")])
    assert outcomes == [Outcome("dead", code="rejected", reason="ValueError: bug in a command")]


def test_lianxi_ingest_process_end_to_end(county: Platform, pg_url: str, tansu: Broker, tmp_path: Path) -> None:
    inbound, dlq = unique_topic("lianxi.inbound.v1"), unique_topic("lianxi.inbound.dlq.v1")
    env = {"LIANXI_DATABASE_URL": pg_url, "LIANXI_KAFKA_BOOTSTRAP": tansu.bootstrap,
           "LIANXI_KAFKA_INBOUND_TOPIC": inbound, "LIANXI_KAFKA_DLQ_TOPIC": dlq, "LIANXI_KAFKA_PARTITIONS": "2",
           "LIANXI_KAFKA_INGEST_GROUP": unique_topic("ingest"),
           "LIANXI_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS)}
    proc = lianxi_process("ingest", env=env, log_path=tmp_path / "ingest.log")
    producer = KafkaProducer(bootstrap_servers=tansu.bootstrap, acks="all")
    try:
        for m in (fire("cli-1"), fire("cli-1"), b"garbage", fire("cli-2", duty_code="education.lead-coordination")):
            producer.send(inbound, m, key=b"fire-rescue")
        producer.flush()
        letters = read_topic(tansu.bootstrap, dlq, until=lambda rs: len(rs) >= 2, timeout=60)
        assert sorted(dict(r.headers)[DLQ_CODE] for r in letters) == [b"invalid-json", b"rejected"]
        assert feed_event_ids(county) == [inbound_event_id("/agencies/fire-rescue", "cli-1")]
    finally:
        producer.close()
        stop_process(proc)
    assert proc.returncode == 0, (tmp_path / "ingest.log").read_text()


def test_text_the_store_cannot_hold_is_dead_lettered(platform: Platform) -> None:
    """Issue 17 class 2 at the Kafka edge (SQLite and PostgreSQL): NUL and other control
    characters in any text of the data are refused with invalid-data, nothing appended."""
    platform.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    for sid in ("S1", "S2"):
        platform.app.save(School.register(
            by_agency="education", by_lead=True, school_id=sid, name=f"学校{sid}", town="满都拉图镇",
            kind="primary", boarding=False, canteen=True, school_bus=False, now=datetime(2024, 2, 1, tzinfo=UTC)))
    head = platform.app.recorder.max_notification_id()
    bad = [fire("nul-1", summary="检查\x00"), fire("esc-1", findings={"count": 1, "text": "\x1b[31m"}),
           fire("bell-1", evidence=["sha256:a\x07"])]
    outcomes = Ingestor(platform.app, platform.clock).process(bad)
    assert [(o.kind, o.code) for o in outcomes] == [("dead", "invalid-data")] * 3
    assert all("control character" in (o.reason or "") for o in outcomes)
    assert platform.app.recorder.max_notification_id() == head
    [ok] = Ingestor(platform.app, platform.clock).process([fire("tab-1", summary="检查\t完成\n无问题")])
    assert ok.kind == "appended"


# -- binary content mode (CloudEvents Kafka protocol binding) ------------------------------------------


def binary(source: str, mid: str, data: Any, type_: str = DUTY, content_type: bytes | None = b"application/json",
           **headers: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A binary-mode message: attributes as ce_* headers, the data as the value."""
    attrs = {"ce_specversion": b"1.0", "ce_id": mid.encode(), "ce_source": source.encode(),
             "ce_type": type_.encode(), "ce_time": b"2025-06-20T08:00:00Z", **headers}
    hs = [(k, v) for k, v in attrs.items() if v != b"-"]  # b"-": leave the header out
    if content_type is not None:
        hs.append(("content-type", content_type))
    return orjson.dumps(data), hs


def test_the_parser_reads_both_content_modes_alike() -> None:
    data = duty("fire-rescue")
    structured = cloudevents.decode(fire("m-1"), [("content-type", b"application/cloudevents+json")])
    bare = cloudevents.decode(fire("m-1"))  # no headers at all: structured, as the relay sends
    value, hs = binary("/agencies/fire-rescue", "m-1", data)
    from_headers = cloudevents.decode(value, hs)
    assert structured == bare == from_headers
    assert (from_headers.id, from_headers.name, from_headers.version, from_headers.data) == (
        "m-1", "DutyPerformed", 1, data)
    # Header names are case-insensitive, a charset parameter does not matter, and no
    # content-type at all means JSON.
    value, hs = binary("/agencies/fire-rescue", "m-1", data, content_type=b"application/json; charset=utf-8")
    assert cloudevents.decode(value, [(k.upper(), v) for k, v in hs]) == from_headers
    assert cloudevents.decode(*binary("/agencies/fire-rescue", "m-1", data, content_type=None)) == from_headers
    # A cloudevents content-type means structured mode even when ce_ headers are present.
    _, hs = binary("/agencies/fire-rescue", "other", data)
    mixed = cloudevents.decode(fire("m-1"), [(k, v) for k, v in hs if k != "content-type"]
                               + [("content-type", b"application/cloudevents+json")])
    assert mixed.id == "m-1"


@pytest.mark.parametrize(("message", "code", "reason"), [
    (binary("/agencies/fire-rescue", "b-1", duty("fire-rescue"), ce_specversion=b"0.3"),
     "invalid-envelope", "specversion must be '1.0'"),
    (binary("/agencies/fire-rescue", "b-2", duty("fire-rescue"), ce_type=b"-"),
     "invalid-envelope", "attribute 'type' must be a non-empty string"),
    (binary("/agencies/fire-rescue", "", duty("fire-rescue")), "invalid-envelope", "attribute 'id'"),
    ((b"{not json", binary("/agencies/fire-rescue", "b-4", {})[1]), "invalid-json", "binary mode: the value"),
    ((b"", binary("/agencies/fire-rescue", "b-5", {})[1]), "invalid-json", "binary mode: the message value"),
    (binary("/agencies/fire-rescue", "b-6", [1, 2]), "invalid-envelope", "attribute 'data' must be a JSON object"),
    (binary("/agencies/fire-rescue", "b-7", duty("fire-rescue"), content_type=b"application/xml"),
     "invalid-envelope", "datacontenttype 'application/xml'"),
    ((orjson.dumps(duty("fire-rescue")), [*binary("/agencies/fire-rescue", "b-8", {})[1], ("ce_id", b"again")]),
     "invalid-envelope", "header 'ce_id' appears 2 times"),
    (binary("/agencies/fire-rescue", "b-9", duty("fire-rescue"), ce_source=b"\xff\xfe"),
     "invalid-envelope", "header 'ce_source' is not UTF-8"),
    (binary("/agencies/fire-rescue", "b-10", duty("fire-rescue"), type_="cn.lianxi.SchoolRegistered.v1"),
     "unknown-type", "is not accepted inbound"),
    (binary("/agencies/fire-rescue", "b-11", duty("fire-rescue", occurred_on="2025-02-30")),
     "invalid-data", "data/occurred_on"),
    (binary("/agencies/public-security", "b-12", duty("fire-rescue")), "spoofed", "may not write"),
])
def test_a_malformed_binary_message_is_dead_lettered_with_the_right_reason(
        county: Platform, message: tuple[bytes, list[tuple[str, bytes]]], code: str, reason: str) -> None:
    head = county.app.recorder.max_notification_id()
    [outcome] = Ingestor(county.app, county.clock).process([message[0]], [message[1]])
    assert (outcome.kind, outcome.code) == ("dead", code), outcome
    assert reason in (outcome.reason or ""), outcome.reason
    assert county.app.recorder.max_notification_id() == head


def test_binary_mode_messages_are_ingested_through_the_broker(county: Platform, tansu: Broker) -> None:
    """Binary and structured messages on one topic: each valid one appended once (a binary
    redelivery included), the malformed binary one dead-lettered with its own reason, its ce_*
    headers kept and its content-type recorded beside application/octet-stream."""
    inbound, dlq = unique_topic("lianxi.inbound.v1"), unique_topic("lianxi.inbound.dlq.v1")
    producer = KafkaProducer(bootstrap_servers=tansu.bootstrap, acks="all")
    ingest = KafkaIngest(
        Ingestor(county.app, county.clock), bootstrap=tansu.bootstrap, topic=inbound, dlq_topic=dlq,
        group_id=unique_topic("ingest"), session_timeout_ms=SESSION_TIMEOUT_MS,
        ensure_topics=[(inbound, 2, 1), (dlq, 1, 1)],
    )
    sent = [
        binary("/agencies/fire-rescue", "bin-1", duty("fire-rescue")),
        binary("/agencies/public-security", "bin-2", duty("public-security", school_ids=["S3"])),
        (fire("str-1"), [("content-type", b"application/cloudevents+json")]),
        binary("/agencies/fire-rescue", "bin-1", duty("fire-rescue")),  # redelivered
        binary("/agencies/fire-rescue", "bin-3", duty("fire-rescue"), ce_specversion=b"0.3"),
    ]
    try:
        ingest._connect()
        for value, hs in sent:
            producer.send(inbound, value=value, key=b"k", headers=hs)
        producer.flush()

        def drained() -> bool:
            ingest.poll_once(timeout_ms=200)
            s = ingest.stats
            return s.appended + s.duplicates + s.dead == len(sent)

        wait_until(drained, 60, "ingest to handle every message", interval=0)
        assert (ingest.stats.appended, ingest.stats.duplicates, ingest.stats.dead) == (3, 1, 1)
        assert sorted(feed_event_ids(county)) == sorted(
            inbound_event_id(s, m) for s, m in [("/agencies/fire-rescue", "bin-1"),
                                                ("/agencies/public-security", "bin-2"),
                                                ("/agencies/fire-rescue", "str-1")])
        [letter] = read_topic(tansu.bootstrap, dlq, until=lambda rs: len(rs) >= 1)
        headers = dict(letter.headers)
        assert headers[DLQ_CODE] == b"invalid-envelope"
        assert headers[DLQ_REASON] == b"specversion must be '1.0'"
        assert headers["ce_id"] == b"bin-3" and headers["ce_specversion"] == b"0.3"
        assert headers["content-type"] == b"application/octet-stream"
        assert headers[DLQ_CONTENT_TYPE] == b"application/json"
        assert letter.value == sent[-1][0]
    finally:
        ingest.close()
        producer.close()


def test_a_feed_naming_an_unknown_evidence_digest_is_dead_lettered(county: Platform, tansu: Broker,
                                                                  tmp_path: Path) -> None:
    """Feeds carry evidence as digests of blobs uploaded through the API: a duty record naming
    its unit's upload is appended, one naming a digest nobody (or another unit) uploaded goes to
    the dead-letter topic with code unknown-evidence and the digest in the reason."""
    from services.evidence.storage import FileBlobs
    from services.kernel.principal import Principal
    from tests.evidence_fixtures import photo_with_gps

    fire_liaison = Principal(token_id="feed-test", agency="fire-rescue", role="liaison", label="feed-test")
    [upload] = county.app.upload_evidence(fire_liaison, FileBlobs(tmp_path / "evidence"),
                                          files=[(photo_with_gps(), "检查.jpg")], max_bytes=10_000_000,
                                          now=county.clock())
    unknown = "ab" * 32
    inbound, dlq = unique_topic("lianxi.inbound.v1"), unique_topic("lianxi.inbound.dlq.v1")
    producer = KafkaProducer(bootstrap_servers=tansu.bootstrap, acks="all")
    ingest = KafkaIngest(
        Ingestor(county.app, county.clock), bootstrap=tansu.bootstrap, topic=inbound, dlq_topic=dlq,
        group_id=unique_topic("ingest"), session_timeout_ms=SESSION_TIMEOUT_MS,
        ensure_topics=[(inbound, 1, 1), (dlq, 1, 1)],
    )
    sent = [fire("ev-1", evidence=[upload.ref]), fire("ev-2", evidence=[upload.ref, f"sha256:{unknown}"]),
            message("/agencies/public-security", "ev-3", duty("public-security", evidence=[upload.ref]))]
    try:
        ingest._connect()
        for value in sent:
            producer.send(inbound, value=value, key=b"k")
        producer.flush()

        def drained() -> bool:
            ingest.poll_once(timeout_ms=200)
            s = ingest.stats
            return s.appended + s.duplicates + s.dead == len(sent)

        wait_until(drained, 60, "ingest to handle every message", interval=0)
        assert (ingest.stats.appended, ingest.stats.dead) == (1, 2)
        assert feed_event_ids(county) == [inbound_event_id("/agencies/fire-rescue", "ev-1")]
        letters = read_topic(tansu.bootstrap, dlq, until=lambda rs: len(rs) >= 2)
        assert [r.value for r in letters] == sent[1:]
        headers = [dict(r.headers) for r in letters]
        assert [h[DLQ_CODE] for h in headers] == [b"unknown-evidence"] * 2
        assert unknown.encode() in headers[0][DLQ_REASON]  # the first unknown digest is named
        assert upload.digest.encode() in headers[1][DLQ_REASON]  # another unit's upload is unknown to it
    finally:
        ingest.close()
        producer.close()
