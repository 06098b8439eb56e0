"""The demo's shortcuts agree with what they stand in for (services/demo/created.py, year.py)."""

from __future__ import annotations

import gc
import random
import uuid
import zlib
from bisect import bisect
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import Compressor, Mapper

from contracts.catalogue import load_catalogue
from events.base import COUNTY_TZ, derive_id
from events.duty_log import DutyRecord
from services.demo.created import Created, derived_ids
from services.demo.profiles import plant
from services.demo.year import (
    FINDINGS_CUM,
    FINDINGS_TOTAL,
    FINDINGS_WEIGHTS,
    GC_THRESHOLDS,
    _utc,
    few_collections,
    make_schools,
    plan_year,
)
from services.store.bulk import EncodedEvent, row_encoder
from services.store.database import OrjsonTranscoder, sqlite_originator_id


def test_derived_ids_are_derive_id() -> None:
    ids = derived_ids("demo", "7", "2024")
    assert [ids(str(n)) for n in range(200)] == [derive_id("demo", "7", "2024", str(n)) for n in range(200)]


def test_the_planners_draws_are_randoms_own() -> None:
    """plan_year draws randint and choices as CPython's Random does, in fewer calls."""
    ours, theirs = random.Random(3), random.Random(3)

    def below(n: int) -> int:
        k = n.bit_length()
        r = ours.getrandbits(k)
        while r >= n:
            r = ours.getrandbits(k)
        return r

    for n in (1, 2, 11, 51, 60, 92):
        assert [below(n) for _ in range(300)] == [theirs.randrange(n) for _ in range(300)]
    assert ([bisect(FINDINGS_CUM, ours.random() * FINDINGS_TOTAL, 0, 3) for _ in range(300)]
            == [theirs.choices((0, 1, 2, 3), FINDINGS_WEIGHTS)[0] for _ in range(300)])


def test_a_built_event_that_differs_from_the_domains_stops_the_demo() -> None:
    made = Created(DutyRecord, DutyRecord.DutyPerformed)
    rid = derive_id("t", "1")
    now = datetime(2024, 3, 1, 2, tzinfo=UTC)
    fields = dict(agency="education", occurred_on="2024-03-01", duty_code="d", school_ids=["S00001"],
                  summary="s", findings={"count": 0, "text": ""}, evidence=[], logged_by="x", request_digest="")
    domain = DutyRecord._create(DutyRecord.DutyPerformed, id=rid, timestamp=now, event_id=str(rid), **fields)
    assert made.unchecked("k")
    made.compare("k", made(rid, now, **fields), domain)
    assert not made.unchecked("k")
    other = DutyRecord._create(DutyRecord.DutyPerformed, id=rid, timestamp=now, event_id=str(rid),
                               **{**fields, "summary": "t"})
    with pytest.raises(RuntimeError, match="differs from the domain"):
        made.compare("j", made(rid, now, **fields), other)


def test_derived_ids_are_whole_uuids() -> None:
    """Made without ``uuid.UUID.__init__``: every face of the UUID is uuid5's."""
    ids = derived_ids("demo", "7", "2024")
    for n in ("0", "1", "99999", "S00001\x1fkind\x1f2024-03\x1f1"):
        ours, theirs = ids(n), derive_id("demo", "7", "2024", n)
        assert (ours.int, ours.hex, str(ours), ours.version, ours.variant, ours.is_safe, hash(ours)) == (
            theirs.int, theirs.hex, str(theirs), theirs.version, theirs.variant, theirs.is_safe, hash(theirs))
        assert type(ours) is uuid.UUID and ours == theirs and {ours: 1}[theirs] == 1


def _duty_fields() -> dict[str, Any]:
    return dict(agency="education", occurred_on="2024-03-01", duty_code="d", school_ids=["S00001"],
                summary="s", findings={"count": 0, "text": ""}, evidence=[], logged_by="x", request_digest="")


def test_with_a_mapper_a_record_is_the_row_the_appender_stores_for_the_domains_event() -> None:
    mapper: Mapper[Any] = Mapper(transcoder=OrjsonTranscoder())
    made = Created(DutyRecord, DutyRecord.DutyPerformed, mapper)
    rid = derive_id("t", "1")
    now = datetime(2024, 3, 1, 2, tzinfo=UTC)
    domain = DutyRecord._create(DutyRecord.DutyPerformed, id=rid, timestamp=now, event_id=str(rid), **_duty_fields())
    [event] = domain.collect_events()
    row = made(rid, now, **_duty_fields())
    assert isinstance(row, EncodedEvent)
    assert row_encoder(mapper, sqlite_originator_id)(row) == row_encoder(mapper, sqlite_originator_id)(event)
    # from_state with the state in the event's order is the same row
    state = {"timestamp": now, "originator_topic": made.topic, "event_id": str(rid), **_duty_fields()}
    assert made.from_state(rid, state) == row
    made.compare("k", row, DutyRecord._create(DutyRecord.DutyPerformed, id=rid, timestamp=now, event_id=str(rid),
                                              **_duty_fields()))
    # the same fields in another order encode differently: the guard stops it
    shuffled = {"timestamp": now, "originator_topic": made.topic, "event_id": str(rid),
                **dict(reversed(list(_duty_fields().items())))}
    with pytest.raises(RuntimeError, match="differs from the domain"):
        made.compare("j", made.from_state(rid, shuffled), DutyRecord._create(
            DutyRecord.DutyPerformed, id=rid, timestamp=now, event_id=str(rid), **_duty_fields()))


def test_a_mapper_that_compresses_gets_events_and_refuses_encoded_rows() -> None:
    class Zlib(Compressor):
        def compress(self, data: bytes) -> bytes:
            return zlib.compress(data)

        def decompress(self, data: bytes) -> bytes:
            return zlib.decompress(data)

    mapper: Mapper[Any] = Mapper(transcoder=OrjsonTranscoder(), compressor=Zlib())
    rid = derive_id("t", "2")
    now = datetime(2024, 3, 1, 2, tzinfo=UTC)
    event = Created(DutyRecord, DutyRecord.DutyPerformed, mapper)(rid, now, **_duty_fields())
    assert isinstance(event, DutyRecord.DutyPerformed)
    encode = row_encoder(mapper, sqlite_originator_id)
    with pytest.raises(TypeError):
        encode(EncodedEvent(rid, 1, "t", b"{}"))


def test_utc_minutes_are_the_zones_own() -> None:
    day = date(2024, 1, 1)
    while day.year == 2024:
        for hour, minute in ((0, 0), (8, 0), (12, 34), (18, 59), (23, 59)):
            exact = datetime.combine(day, time(hour, minute), tzinfo=COUNTY_TZ).astimezone(UTC)
            assert _utc(day, hour, minute) == exact and _utc(day, hour, minute).tzinfo is UTC
        day += timedelta(days=1)


def test_the_plans_months_come_in_recording_order() -> None:
    """Stable sort by time alone, the backdated records first: the same order as (recorded_at, seq)."""
    catalogue = load_catalogue()
    schools = make_schools(60, random.Random(5))
    months = list(plan_year(catalogue, schools, 2024, 5, date(2024, 12, 31), plant(catalogue, 5)))
    records = [r for m in months for r in m]
    assert any(r.recorded_at.date() > r.occurred_on for r in records)  # some backdated
    assert [(r.recorded_at, r.seq) for r in records] == sorted((r.recorded_at, r.seq) for r in records)
    assert len({r.seq for r in records}) == len(records)


def test_collections_are_restored_after_the_year() -> None:
    before = gc.get_threshold()
    with few_collections():
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
