"""The same integration suite on SQLite and PostgreSQL: durability settings, group commit,
rebuild equals live, as-of equals live."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from contracts.catalogue import default_catalogue
from events.agencies import agency_id
from projections.base import metadata
from projections.ledger import asof_ledger, live_ledger
from projections.periods import Period
from services.demo.year import run_demo
from services.kernel.event_store import CommitItem
from services.kernel.principal import Principal
from services.platform import Platform
from tests.conftest import Clock, make_platform

DEMO_NOW = datetime(2025, 12, 31, 15, 0, tzinfo=UTC)


def snapshot(platform: Platform) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model row, ordered, for row-for-row comparison."""
    out = {}
    with platform.read_engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name == "projection_tracking" or not sa.inspect(conn).has_table(table.name):
                continue
            cols = list(table.c)
            out[table.name] = [tuple(r) for r in conn.execute(sa.select(*cols).order_by(*cols))]
    return out


def test_demo_year_rebuild_equals_live_and_asof_equals_live(database_url: str) -> None:
    platform = make_platform(database_url, clock=Clock(DEMO_NOW))
    try:
        counts = run_demo(platform.app, default_catalogue(), schools=12, year=2025, seed=7, now=DEMO_NOW)
        assert counts["events"] > 1000
        # Catch up in small batches, as the live follower would; rebuild in growing batches.
        platform.runner.batch_size = platform.runner.max_batch_size = 97
        platform.runner.catch_up()
        live = snapshot(platform)
        assert live["rm_ledger_days"] and live["rm_schools"]
        # Each read model rebuilt alone equals the one pass over the log ...
        for name in platform.runner.projections:
            platform.runner.reset(name)
        platform.runner.batch_size, platform.runner.max_batch_size, platform.runner.batch_seconds = 50, 4000, 10.0
        for name in platform.runner.projections:
            platform.runner.catch_up(name)
        assert snapshot(platform) == live
        # ... and so does the one pass with some read models far behind the others (they catch
        # up alone, then join the pass where the others stand).
        behind = ["ledger", "rectification_board", "meetings"]
        for name in behind:
            platform.runner.reset(name)
        first = platform.runner.step_together()
        assert first.start == 0 and first.applied > 0
        assert {n: platform.runner.position(n) for n in behind} == dict.fromkeys(behind, first.position)
        assert platform.runner.position("catalogue") > first.position  # the others waited
        platform.runner.catch_up()
        assert snapshot(platform) == live

        today = date(2025, 12, 31)
        with platform.read_engine.connect() as conn:
            for unit in default_catalogue().units.units:
                for period in ("2025", "2025-S2", "2025-Q3", "2025-11"):
                    p = Period.parse(period)
                    assert asof_ledger(conn, unit.code, p, today) == live_ledger(conn, unit.code, p, today)
            # Some unit is silent on some duty all year: blind spots exist.
            blind = [live_ledger(conn, u.code, Period.parse("2025"), today)["blind_spots"]
                     for u in default_catalogue().units.units]
            assert any(blind)
            # The ledger as of mid-year counts less than the ledger at year end.
            mid = asof_ledger(conn, "fire-rescue", Period.parse("2025"), date(2025, 6, 30))
            end = asof_ledger(conn, "fire-rescue", Period.parse("2025"), today)
            assert sum(d["performed_count"] for d in mid["duties"]) < sum(d["performed_count"] for d in end["duties"])
    finally:
        platform.close()


def test_asof_ledger_equals_a_replay_of_the_log(sqlite_url: str) -> None:
    """The as-of read model agrees with a brute-force filter of the raw log."""
    platform = make_platform(sqlite_url, clock=Clock(DEMO_NOW))
    try:
        run_demo(platform.app, default_catalogue(), schools=8, year=2025, seed=3, now=DEMO_NOW)
        platform.runner.catch_up()
        as_of = date(2025, 8, 15)
        cutoff = "2025-08-15T15:59:59.999999Z"  # end of the county day in UTC
        from projections.base import LoggedEvent

        counts: dict[str, int] = {}
        for n in platform.app.recorder.select_notifications(start=1, limit=10**7):
            e = LoggedEvent.from_notification(n)
            if e.type == "DutyPerformed" and e.data["agency"] == "public-security" and e.recorded_at <= cutoff \
                    and "2025-01-01" <= e.data["occurred_on"] <= as_of.isoformat():
                counts[e.data["duty_code"]] = counts.get(e.data["duty_code"], 0) + 1
        with platform.read_engine.connect() as conn:
            view = asof_ledger(conn, "public-security", Period.parse("2025"), as_of)
        assert {d["duty_code"]: d["performed_count"] for d in view["duties"] if d["performed_count"]} == counts
    finally:
        platform.close()


def test_brief_activity_equals_a_replay_of_the_log(sqlite_url: str) -> None:
    """The brief's per-unit records, findings and distinct schools over days that do not
    line up with months (a meeting period) agree with a brute-force pass over the log."""
    from projections.base import LoggedEvent
    from projections.ledger import activity

    platform = make_platform(sqlite_url, clock=Clock(DEMO_NOW))
    try:
        run_demo(platform.app, default_catalogue(), schools=8, year=2025, seed=5, now=DEMO_NOW)
        platform.runner.catch_up()
        start, end = date(2025, 4, 16), date(2025, 7, 15)
        expected: dict[str, dict[str, Any]] = {}
        for n in platform.app.recorder.select_notifications(start=1, limit=10**7):
            e = LoggedEvent.from_notification(n)
            if e.type == "DutyPerformed" and start.isoformat() <= e.data["occurred_on"] <= end.isoformat():
                unit = expected.setdefault(e.data["agency"], {"records": 0, "findings": 0, "schools": set()})
                unit["records"] += 1
                unit["findings"] += e.data["findings"]["count"]
                unit["schools"].update(e.data["school_ids"])
        with platform.read_engine.connect() as conn:
            got = activity(conn, start, end)
        assert got == {a: {**v, "schools": len(v["schools"])} for a, v in expected.items()}
        assert any(v["schools"] for v in got.values()) and any(v["findings"] for v in got.values())
    finally:
        platform.close()


def test_sqlite_store_is_wal_with_full_synchronous(sqlite_url: str) -> None:
    platform = make_platform(sqlite_url)
    try:
        with platform.app.recorder.datastore.transaction(commit=False) as cur:  # type: ignore[attr-defined]
            cur.execute("PRAGMA synchronous")
            assert cur.fetchone()[0] == 2  # FULL
            cur.execute("PRAGMA journal_mode")
            assert cur.fetchone()[0] == "wal"
    finally:
        platform.close()
    path = sqlite_url.split(":///", 1)[1]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_group_commit_acknowledges_every_concurrent_write(database_url: str) -> None:
    platform = make_platform(database_url, group_commit=True)
    try:
        platform.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
        fire = Principal(token_id="t", agency="fire-rescue", role="liaison", label="desk")
        acknowledged: list[tuple[str, int | None]] = []
        lock = threading.Lock()

        def writer(k: int) -> None:
            for i in range(25):
                a = platform.app.log_duty(
                    fire, duty_code="fire-rescue.inspection", school_ids=[], occurred_on=date(2025, 6, 1),
                    summary=f"检查 {k}-{i}", findings={"count": 0, "text": ""}, evidence=[],
                    idempotency_key=f"{k}-{i}", body={"k": k, "i": i}, now=datetime(2025, 6, 2, tzinfo=UTC))
                with lock:
                    acknowledged.append((a.id, a.position))

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(acknowledged) == 200
        positions = [p for _, p in acknowledged]
        assert len(set(positions)) == 200 and None not in positions
        stored = {str(n.originator_id) for n in platform.app.recorder.select_notifications(start=1, limit=10_000)}
        assert {i for i, _ in acknowledged} <= stored
    finally:
        platform.close()


def test_group_commit_isolates_a_conflicting_item(sqlite_url: str) -> None:
    """One stale aggregate in a batch fails alone; its neighbours commit."""
    from eventsourcing.persistence import IntegrityError

    from services.store.group_commit import GroupCommitter

    platform = make_platform(sqlite_url)
    committer = GroupCommitter(platform.app._save_batch)  # the app's own batch transaction

    def commit(agg: Any) -> Any:
        return committer.commit(CommitItem(tuple(agg.collect_events())))

    def writable(code: str) -> Any:  # app.agency() hands out a shared cached copy, for reading
        return platform.app.repository.get(agency_id(code))

    try:
        platform.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
        stale = writable("fire-rescue")
        fresh = writable("fire-rescue")
        for agg in (stale, fresh):
            agg.revise(name=agg.name + "!", name_en=agg.name_en, duties=agg.current_duties,
                       effective_on=date(2025, 1, 1), reason="x", now=datetime(2025, 1, 1, tzinfo=UTC))
        other = writable("meteorology")
        other.revise(name=other.name + "!", name_en=other.name_en, duties=other.current_duties,
                     effective_on=date(2025, 1, 1), reason="x", now=datetime(2025, 1, 1, tzinfo=UTC))
        commit(fresh)
        results: dict[str, Any] = {}

        def go(name: str, agg: Any) -> None:
            try:
                results[name] = commit(agg)
            except IntegrityError as e:
                results[name] = e

        threads = [threading.Thread(target=go, args=(name, agg)) for name, agg in (("stale", stale), ("other", other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert isinstance(results["stale"], IntegrityError)
        assert not isinstance(results["other"], Exception)
        assert platform.app.agency("meteorology").name.endswith("!")
    finally:
        committer.close()
        platform.close()


def test_the_application_name_is_pinned() -> None:
    """PostgreSQL's table names derive from Application.name; eventsourcing names each subclass
    after itself, so the composed class must pin it (a rename would strand the stored log)."""
    from services.app import LianxiApp

    assert LianxiApp.name == "lianxi"
