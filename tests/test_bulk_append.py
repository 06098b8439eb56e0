"""The bulk path's shortcuts give the answers of the general path: rows mapped without a
``StoredEvent`` carry the bytes the mapper would store, batches that span several INSERT
statements (SQLite) or go through COPY (PostgreSQL) still get their exact log positions,
and a bulk load leaves SQLite's WAL checkpointed and the other connections' settings as
they were. (Ordering, skip_existing and failures: tests/test_perf_paths.py.)"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Compressor, Mapper

from events.agencies import Agency, agency_id
from events.duty_log import DutyRecord
from services.platform import Platform
from services.store import database as store
from services.store.bulk import BulkAppender, row_encoder
from services.store.database import OrjsonTranscoder, sqlite_originator_id

NOW = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)


def _records(platform: Platform, n: int, *, tag: str = "bulk") -> list[DutyRecord]:
    education: Agency = platform.app.repository.get(agency_id("education"))
    return [
        DutyRecord.perform(
            record_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}-{i}"), agency=education,
            duty_code="education.drinking-water", school_ids=[f"S{i:05d}"],
            occurred_on=date(2025, 3, 1) + timedelta(days=i % 90), summary="月度检查" + "。" * (i % 7),
            findings={"count": i % 3, "text": ""}, evidence=[], logged_by="test", request_digest="",
            school_exists=lambda _s: True, now=NOW + timedelta(seconds=i),
        )
        for i in range(n)
    ]


@dataclass(frozen=True)
class _Revised(DomainEvent):
    """An event of a later class version: the mapper adds ``class_version`` to its state."""

    class_version = 2
    note: str


class _Zlib(Compressor):
    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data)

    def decompress(self, data: bytes) -> bytes:
        return zlib.decompress(data)


@pytest.mark.parametrize("compressor", [None, _Zlib()])
def test_rows_carry_what_the_mapper_stores(sqlite_platform: Platform, compressor: Compressor | None) -> None:
    mapper: Mapper[Any] = Mapper(transcoder=OrjsonTranscoder(), compressor=compressor)
    events: list[Any] = [e for r in _records(sqlite_platform, 5) for e in r.collect_events()]
    events.append(_Revised(originator_id=uuid.uuid4(), originator_version=3, timestamp=NOW, note="二版"))
    rows = [row_encoder(mapper, sqlite_originator_id)(e) for e in events]
    stored = [mapper.to_stored_event(e) for e in events]
    assert rows == [(sqlite_originator_id(s.originator_id), s.originator_version, s.topic, s.state) for s in stored]
    if compressor is None:
        assert rows[-1][3].endswith(b',"class_version":2}')


@pytest.mark.parametrize("ahead", [1, 3])  # batches mapped ahead of the writer thread (the demo's 8)
def test_batches_spanning_several_statements_keep_exact_positions(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, ahead: int,
) -> None:
    monkeypatch.setattr(store, "ROWS_PER_STATEMENT", 3)  # a batch of 7: statements of 3, 3 and 1
    platform.app.save(*_records(platform, 2, tag="before"))
    head = platform.app.recorder.max_notification_id() or 0
    with pytest.raises(ValueError, match="ahead"):
        BulkAppender(platform.app, ahead=0)
    result = BulkAppender(platform.app, batch_size=7, keep_positions=True, ahead=ahead).append(
        _records(platform, 17))
    assert result.positions == list(range(head + 1, head + 18))
    notes = platform.app.recorder.select_notifications(start=head + 1, limit=100)
    expected = [(r.id, 1) for r in _records(platform, 17)]
    assert [(n.originator_id, n.originator_version) for n in notes] == expected
    recordings = platform.app.save(*_records(platform, 7, tag="after"))  # the group-commit path
    assert [r.notification.id for r in recordings] == list(range(head + 18, head + 25))


def test_a_bulk_load_checkpoints_the_wal_and_leaves_other_connections_alone(sqlite_platform: Platform) -> None:
    recorder: Any = sqlite_platform.app.recorder
    db = Path(recorder.datastore.pool.db_name)
    size_before = db.stat().st_size
    # ~1 MiB of events, below every auto-checkpoint threshold: only the closing checkpoint
    # copies them from the WAL into the database file.
    BulkAppender(sqlite_platform.app, batch_size=500).append(_records(sqlite_platform, 2000))
    assert db.stat().st_size > size_before + 512 * 1024
    with recorder.datastore.transaction(commit=False) as c:
        c.execute("PRAGMA wal_autocheckpoint")
        assert c.fetchone()[0] == 1000
        c.execute("PRAGMA cache_size")
        assert c.fetchone()[0] == -2000
