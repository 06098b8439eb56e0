"""A cited event's log position comes from the event index (derived ids) or the log's primary
key (an aggregate's own id), never from reading the whole log; the answer is the one a full
scan of the log gives, on SQLite and PostgreSQL, live and after a rebuild."""

from __future__ import annotations

import uuid

import orjson
import sqlalchemy as sa

from contracts.catalogue import default_catalogue
from projections.event_index import event_index
from services.demo.year import run_demo
from tests.conftest import FIXED_NOW, make_platform


def scanned_positions(platform: object) -> dict[str, int]:
    """Every event id and aggregate id -> its first position, by reading the whole log."""
    recorder = platform.app.recorder  # type: ignore[attr-defined]
    found: dict[str, int] = {}
    start = 0
    while rows := recorder.select_notifications(start=start, limit=5000, inclusive_of_start=False):
        for n in rows:
            if n.originator_version == 1:
                found.setdefault(str(n.originator_id), int(n.id))
            event_id = orjson.loads(n.state).get("event_id")
            if event_id:
                found.setdefault(str(event_id), int(n.id))
        start = int(rows[-1].id)
    return found


def test_positions_equal_a_full_scan_live_and_rebuilt(database_url: str) -> None:
    platform = make_platform(database_url)
    try:
        run_demo(platform.app, default_catalogue(), schools=6, year=2024, seed=5, now=FIXED_NOW)
        expected = scanned_positions(platform)
        unknown = [str(uuid.uuid4()), "not-an-id", ""]
        ids = list(expected) + unknown

        live = platform.event_positions(ids)
        assert live == expected  # unknown ids absent, every known one at its first position
        with platform.read_engine.connect() as conn:
            indexed = conn.execute(sa.select(sa.func.count()).select_from(event_index)).scalar_one()
        derived = sum(1 for i, p in expected.items() if p != platform.app.position_of(uuid.UUID(i), 1))
        assert 0 < indexed == derived  # exactly the ids that are not an aggregate's own are kept
        assert indexed < len(expected) / 2

        platform.runner.reset("event_index")
        assert platform.event_positions(ids) == expected
    finally:
        platform.close()
