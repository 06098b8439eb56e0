"""How the stores write a group commit's transaction. PostgreSQL sends it as one query string
(services/store/postgres.py ``insert_events``): BEGIN, the side rows, the table lock, the events
and COMMIT, values bound as literals. It must land exactly what eventsourcing's own insert
landed (forced here by ONE_TRIP_MAX_EVENTS = 0), keep the table lock, and leave nothing of a
failed transaction. Both stores answer each event's own position and insert a batch's audit
rows as one statement per table, in the writers' order."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from contracts.catalogue import default_catalogue
from events.schools import School
from services.kernel.event_store import CommitItem
from services.kernel.principal import Principal
from services.platform import Platform
from services.security.audit import AUDIT_COLUMNS
from services.store import postgres
from services.store.group_commit import GroupCommitter
from tests.conftest import PG_BASE, drop_pg_schema, make_platform

NOW = datetime(2025, 6, 2, tzinfo=UTC)
FIRE = Principal(token_id="t", agency="fire-rescue", role="liaison", label="desk")


def audit_row(action: str, **values: Any) -> tuple[str, tuple[str, ...], list[tuple[Any, ...]]]:
    row = {c: None for c in AUDIT_COLUMNS} | {
        "at": "2025-06-30T04:00:00.000000Z", "actor": "test", "action": action, "target": "/x?q='a'\\b",
        "status": 201, "outcome": "ok"} | values
    return ("audit_log", AUDIT_COLUMNS, [tuple(row[c] for c in AUDIT_COLUMNS)])


def duty(platform: Platform, key: str, summary: str) -> CommitItem:
    """A duty record for ``key`` (its id derives from the Idempotency-Key), not yet saved,
    with its request's audit row."""
    record = platform.app.prepare_duty_log(
        FIRE, duty_code="fire-rescue.inspection", school_ids=[], occurred_on=date(2025, 6, 1), summary=summary,
        findings={"count": 0, "text": "引号 ' 反斜杠 \\ 换行\n"}, evidence=[], idempotency_key=key,
        body={"key": key}, now=NOW)
    return CommitItem(tuple(record.collect_events()), (audit_row(f"POST {key}", resource_id=str(record.id)),))


def school(sid: str) -> School:
    return School.register(by_agency="education", by_lead=True, school_id=sid, name="学校 'A'", town="镇",
                           kind="primary", boarding=False, canteen=False, school_bus=False, now=NOW)


def run_scenario(url: str) -> tuple[list[str], dict[str, list[tuple[Any, ...]]]]:
    """One group-commit batch of five writers: two with the same Idempotency-Key, one whose key
    an earlier request took, an item carrying two events and an audit-only item. The batch
    fails on the duplicates and the committer retries each item alone."""
    platform = make_platform(url)
    gate = threading.Event()

    def commit_batch(items: Any) -> Any:
        if any(i.side_rows and i.side_rows[0][2][0][AUDIT_COLUMNS.index("action")] == "hold" for i in items):
            gate.wait(10)  # holds the committer so that the next five queue as one batch
        return platform.app._save_batch(items)

    committer = GroupCommitter(commit_batch)
    try:
        platform.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
        committer.commit(duty(platform, "taken", "先到"))
        hold = committer.submit(CommitItem(side_rows=(audit_row("hold"),)))
        two = CommitItem(tuple(e for s in (school("P1"), school("P2")) for e in s.collect_events()),
                         (audit_row("two schools", detail="多行\n'x'"),))
        items = [duty(platform, "k1", "一"), duty(platform, "k1", "一 again"), duty(platform, "taken", "后到"), two,
                 CommitItem(side_rows=(audit_row("read", status=200, client=None),))]
        futures = [committer.submit(item) for item in items]
        gate.set()
        hold.result(10)
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f"ok {[r.notification.id for r in f.result(10)]}")
            except IntegrityError:
                outcomes.append("IntegrityError")
        # After the failures the pooled connections still work.
        outcomes.append(f"ok {[r.notification.id for r in committer.commit(duty(platform, 'k2', '二'))]}")
    finally:
        committer.close()
        platform.close()
    schema = url.split("schema=")[1]
    with psycopg.connect(PG_BASE) as conn:
        tables = {
            "events": conn.execute(f'SELECT originator_id, originator_version, topic, state, notification_id '
                                   f'FROM "{schema}".lianxi_events ORDER BY notification_id').fetchall(),
            "audit": conn.execute(f'SELECT * FROM "{schema}".audit_log ORDER BY id').fetchall(),
        }
    return outcomes, tables


def test_a_failing_batch_lands_as_with_eventsourcings_insert(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    other = pg_url.replace("schema=lxt_", "schema=lxo_")
    try:
        new_outcomes, new_tables = run_scenario(pg_url)
        monkeypatch.setattr(postgres, "ONE_TRIP_MAX_EVENTS", 0)
        old_outcomes, old_tables = run_scenario(other)
    finally:
        drop_pg_schema(other.split("schema=")[1])
    assert new_outcomes == old_outcomes
    assert new_outcomes[1:3] == ["IntegrityError", "IntegrityError"] and new_outcomes[0].startswith("ok [")
    assert new_outcomes[4] == "ok []"
    assert new_tables == old_tables
    actions = [row[AUDIT_COLUMNS.index("action") + 1] for row in new_tables["audit"]]
    assert "POST k1" in actions and "two schools" in actions and "read" in actions and "POST k2" in actions
    assert actions.count("POST taken") == 1 and actions.count("POST k1") == 1  # the refused ones left no row
    ids = [row[4] for row in new_tables["events"]]
    assert ids == sorted(ids)


def test_events_wait_for_the_table_lock(pg_url: str) -> None:
    """Another transaction holding the log's lock holds our insert back until it commits."""
    platform = make_platform(pg_url)
    try:
        platform.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
        schema = pg_url.split("schema=")[1]
        done: list[Any] = []
        with psycopg.connect(PG_BASE) as conn:
            conn.execute(f'LOCK TABLE "{schema}".lianxi_events IN EXCLUSIVE MODE')
            writer = threading.Thread(target=lambda: done.append(platform.app.save(school("L1"))))
            writer.start()
            time.sleep(0.5)
            assert not done
        writer.join(10)
        assert done and platform.app.school_exists("L1")
    finally:
        platform.close()


def test_a_batchs_positions_are_where_its_events_stand(database_url: str) -> None:
    """Both stores answer a multi-event save with each event's own log position (PostgreSQL's
    RETURNING of one query string, SQLite's INSERT ... RETURNING matched by key)."""
    platform = make_platform(database_url)
    try:
        platform.app.save(school("B0"))
        recordings = platform.app.save(*(school(f"B{i}") for i in range(1, 6)))
        positions = [r.notification.id for r in recordings]
        assert len(set(positions)) == 5 and positions == sorted(positions)
        for r in recordings:
            event = r.domain_event
            assert platform.app.position_of(event.originator_id, event.originator_version) == r.notification.id
    finally:
        platform.close()


def test_a_batchs_audit_rows_land_in_the_writers_order(database_url: str) -> None:
    """Each writer's audit row is an entry of its own; the batch inserts them as one statement
    per table (``merge_side_rows``) and their ids keep the writers' order."""
    platform = make_platform(database_url)
    try:
        items = [CommitItem(tuple(school(f"W{i}").collect_events()) if i % 2 else (), (audit_row(f"writer {i}"),))
                 for i in range(6)]
        answers = platform.app._save_batch(items)
        assert [len(a) for a in answers] == [0, 1, 0, 1, 0, 1]
        actions = [r["action"] for r in sorted(platform.audit.page(limit=100), key=lambda r: r["id"])]
        assert actions == [f"writer {i}" for i in range(6)]
    finally:
        platform.close()


def test_merge_side_rows_keeps_each_tables_order() -> None:
    from services.store.database import merge_side_rows

    a, b = ("a", ("x",)), ("b", ("y", "z"))
    side = [(*a, [(1,)]), (*b, [(2, 3)]), (*a, [(4,), (5,)]), (*b, [])]
    assert merge_side_rows(side) == [("a", ("x",), [(1,), (4,), (5,)]), ("b", ("y", "z"), [(2, 3)])]


def test_a_commit_notifies_the_logs_listeners(pg_url: str) -> None:
    """Followers of the log may wait on its channel: the one-trip query still sends NOTIFY."""
    platform = make_platform(pg_url)
    try:
        channel = platform.app.recorder.channel_name  # type: ignore[attr-defined]
        with psycopg.connect(PG_BASE, autocommit=True) as listener:
            listener.execute(f'LISTEN "{channel}"')
            platform.app.save(school("N1"), school("N2"))
            assert [n.channel for n in listener.notifies(timeout=5, stop_after=1)] == [channel]
    finally:
        platform.close()
