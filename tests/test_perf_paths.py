"""The fast paths behind the benchmarks (bench/) give the same answers as the slow ones:
batched inserts still return each event's log position, the bulk path stores what
``save`` would, ``LoggedEvent.from_notification``'s fast timestamp path equals the general one, the ledger's
rows do not depend on how the runner reads the log or cuts it into batches, and the SQLite
write gate queues writers instead of failing them."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from eventsourcing.persistence import IntegrityError, Notification

from events.agencies import Agency, agency_id
from events.base import local_date
from events.duty_log import DutyRecord
from events.schools import School
from projections import ledger
from projections.base import LoggedEvent, county_day, utc_text
from services.platform import Platform
from services.store.bulk import BulkAppender
from tests.conftest import make_platform

NOW = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)


def _records(platform: Platform, n: int, *, start: int = 0) -> list[DutyRecord]:
    education: Agency = platform.app.repository.get(agency_id("education"))
    return [
        DutyRecord.perform(
            record_id=uuid.uuid5(uuid.NAMESPACE_URL, f"perf-{i}"), agency=education,
            duty_code="education.drinking-water", school_ids=[f"S{i % 5:03d}"] if i % 2 else [],
            occurred_on=date(2025, 3, 1) + timedelta(days=i % 90),
            summary="月度检查", findings={"count": i % 3, "text": ""}, evidence=[], logged_by="test",
            request_digest="", school_exists=lambda _s: True, now=NOW + timedelta(seconds=i),
        )
        for i in range(start, start + n)
    ]


def _stored(platform: Platform) -> list[tuple[Any, ...]]:
    notes = platform.app.recorder.select_notifications(start=1, limit=1_000_000)
    return [(n.id, n.originator_id, n.originator_version, n.topic, bytes(n.state)) for n in notes]


def test_batched_save_returns_each_events_position(platform: Platform) -> None:
    head = platform.app.recorder.max_notification_id() or 0
    recordings = platform.app.save(*_records(platform, 7))
    positions = [r.notification.id for r in recordings]
    assert positions == list(range(head + 1, head + 8))
    stored = {(n.originator_id, n.originator_version): n.id
              for n in platform.app.recorder.select_notifications(start=head + 1, limit=100)}
    assert [stored[(r.domain_event.originator_id, 1)] for r in recordings] == positions


def test_bulk_append_stores_what_save_would(database_url: str, tmp_path: Any) -> None:
    from contracts.catalogue import default_catalogue

    a = make_platform(database_url)
    b = make_platform(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        for p in (a, b):
            p.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
        head = a.app.recorder.max_notification_id() or 0
        result = BulkAppender(a.app, batch_size=4, keep_positions=True).append(_records(a, 10))
        assert (result.appended, result.skipped, result.batches) == (10, 0, 3)
        assert result.positions == list(range(head + 1, head + 11))
        assert (result.first_position, result.last_position) == (head + 1, head + 10)
        b.app.save(*_records(b, 10))
        assert [row[1:] for row in _stored(a)] == [row[1:] for row in _stored(b)]
    finally:
        a.close()
        b.close()


def test_bulk_append_skips_what_is_already_stored_or_refuses_it(platform: Platform) -> None:
    platform.app.save(*_records(platform, 3))
    count = len(_stored(platform))
    with pytest.raises(IntegrityError):
        BulkAppender(platform.app, batch_size=100).append(_records(platform, 5))
    assert len(_stored(platform)) == count  # the failed batch left nothing
    result = BulkAppender(platform.app, batch_size=100, skip_existing=True).append(_records(platform, 5))
    assert (result.appended, result.skipped) == (2, 3)
    assert len(_stored(platform)) == count + 2


def test_bulk_append_keeps_committed_batches_when_the_stream_fails(platform: Platform) -> None:
    count = len(_stored(platform))

    def stream() -> Any:
        yield from _records(platform, 6)
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        BulkAppender(platform.app, batch_size=4).append(stream())
    assert len(_stored(platform)) == count + 4  # the full batch before the failure


@pytest.mark.parametrize("timestamp", [
    datetime(2025, 3, 1, 8, 30, tzinfo=UTC),
    datetime(2025, 3, 1, 8, 30, 0, 123456, tzinfo=UTC),
    datetime(2025, 3, 1, 16, 30, 5, 7, tzinfo=timezone(timedelta(hours=8))),
    datetime(2025, 3, 1, 16, 30, tzinfo=timezone(timedelta(hours=8))),
])
def test_fast_timestamp_decoding_equals_the_general_path(sqlite_platform: Platform, timestamp: datetime) -> None:
    school = School.register(by_agency="education", by_lead=True, school_id="D1", name="一小", town="镇",
                             kind="primary", boarding=False, canteen=True, school_bus=False, now=timestamp)
    event = school.collect_events()[0]
    stored = sqlite_platform.app.mapper.to_stored_event(event)
    n = Notification(id=42, originator_id=stored.originator_id, originator_version=stored.originator_version,
                     topic=stored.topic, state=stored.state)
    decoded = LoggedEvent.from_notification(n)
    assert decoded.recorded_at == utc_text(timestamp)
    assert decoded.type == "SchoolRegistered" and "timestamp" not in decoded.data


def _ledger_rows(conn: sa.Connection) -> list[tuple[Any, ...]]:
    """The day rows, then the rollups' rows (none may depend on the batches)."""
    return (sorted(tuple(r) for r in conn.execute(sa.select(ledger.days)))
            + sorted(("month", *r) for r in conn.execute(sa.select(ledger.school_months)))
            + sorted(("year", *r) for r in conn.execute(sa.select(ledger.school_years)))
            + sorted(("totals", *r) for r in conn.execute(sa.select(ledger.months)))
            + sorted(("coverage", *r) for r in conn.execute(sa.select(ledger.year_coverage))))


def _rollups_agree_with_their_sources(conn: sa.Connection) -> None:
    """The month totals are the day rows summed by month; a year's coverage counter is the
    number of that year's school rows."""
    d, y = ledger.days.c, ledger.school_years.c
    month = sa.func.substr(d.occurred_on, 1, 7)
    summed = conn.execute(sa.select(d.agency, month, d.duty_code, sa.func.sum(d.performed_count),
                                    sa.func.sum(d.findings_count), sa.func.max(d.occurred_on))
                          .group_by(d.agency, month, d.duty_code)).tuples()
    assert sorted(summed) == sorted(conn.execute(sa.select(ledger.months)).tuples())
    counted = conn.execute(sa.select(y.agency, y.year, y.duty_code, sa.func.count())
                           .group_by(y.agency, y.year, y.duty_code)).tuples()
    assert sorted(counted) == sorted(conn.execute(sa.select(ledger.year_coverage)).tuples())


def test_ledger_rows_do_not_depend_on_the_read_path_or_the_batches(platform: Platform) -> None:
    """Raw rows read in the runner's transaction (growing batches) = the recorder's
    notifications (batches of 7) = decoded events applied in other batches."""
    platform.app.save(*_records(platform, 40))
    runner = platform.runner
    assert runner.log is not None  # the log lives in the read models' database
    runner.catch_up()
    with platform.read_engine.connect() as conn:
        fast = _ledger_rows(conn)
    assert sum(r[4] for r in fast if r[0] not in ("month", "year", "totals", "coverage")) == 40
    assert {"month", "year", "totals", "coverage"} <= {r[0] for r in fast}  # the rollups were written
    with platform.read_engine.connect() as conn:
        _rollups_agree_with_their_sources(conn)
    raw_log = runner.log
    runner.log, runner.batch_size, runner.max_batch_size = None, 7, 7  # through select_notifications
    try:
        runner.reset("ledger")
        runner.catch_up("ledger")
    finally:
        runner.log = raw_log
    with platform.read_engine.connect() as conn:
        assert _ledger_rows(conn) == fast
    runner.reset("ledger")
    view = runner.projections["ledger"]
    notes = platform.app.recorder.select_notifications(start=1, limit=10_000, topics=view.topics)
    events = [LoggedEvent.from_notification(n) for n in notes]
    with platform.write_engine.begin() as conn:
        for i in range(0, len(events), 11):
            view.apply(conn, events[i:i + 11])
    with platform.read_engine.connect() as conn:
        assert _ledger_rows(conn) == fast


def test_a_rebuild_drops_the_tables_an_earlier_version_kept(platform: Platform) -> None:
    runner = platform.runner
    with platform.write_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE rm_ledger_entries (position INTEGER)"))
        conn.execute(sa.text("UPDATE projection_tracking SET version = 1 WHERE name = 'ledger'"))
    runner.setup()  # version 1 -> 2: rebuild
    assert runner.position("ledger") == 0
    assert not sa.inspect(platform.write_engine).has_table("rm_ledger_entries")
    assert sa.inspect(platform.write_engine).has_table("rm_ledger_days")


@pytest.mark.parametrize("moment", [
    datetime(2025, 3, 1, 15, 59, 59, 999999, tzinfo=UTC),  # 23:59:59 in the county
    datetime(2025, 3, 1, 16, 0, tzinfo=UTC),  # midnight in the county: the next day
    datetime(2024, 12, 31, 23, 30, tzinfo=UTC),
    datetime(1988, 6, 1, 15, 30, tzinfo=UTC),  # China kept daylight saving time then
])
def test_county_day_of_a_recorded_time(moment: datetime) -> None:
    assert county_day(utc_text(moment)) == local_date(moment).isoformat()


def test_write_gate_queues_writers_of_one_process(sqlite_platform: Platform) -> None:
    """A projection-style transaction holds SQLite's write lock; an event save from another
    thread waits for it (no 'database is locked') and lands right after it commits."""
    saved: list[float] = []
    records = _records(sqlite_platform, 1)
    with sqlite_platform.write_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS gate_probe (x INTEGER)")
        t = threading.Thread(target=lambda: (sqlite_platform.app.save(*records), saved.append(time.monotonic())))
        t.start()
        time.sleep(0.3)
        assert not saved  # still waiting for the gate
        released = time.monotonic()
    t.join(timeout=10)
    assert saved and saved[0] >= released
    # A rolled-back transaction gives the gate back too.
    with pytest.raises(RuntimeError), sqlite_platform.write_engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO gate_probe VALUES (1)")
        raise RuntimeError("abandon")
    sqlite_platform.app.save(*_records(sqlite_platform, 1, start=1))
