"""Tamper evidence: the hash chain over the log, signed checkpoints, and `lianxi verify`.

Each tampering is done with direct SQL on the stored events (SQLite: `stored_events`, rowid
as position; PostgreSQL: `lianxi_events`, notification_id) on both backends, and must be
reported at the position where it happened.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.kernel.principal import Principal
from services.platform import Platform
from services.security import hashchain
from services.security.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_now,
    load_key,
    public_hex,
    verify_against,
)
from tests.conftest import Clock
from tests.zygote import run_cli

LEAD = Principal("t-lead", "education", "lead", "test-lead")
FIRE = Principal("t-fire", "fire-rescue", "liaison", "test-fire")


@pytest.fixture(autouse=True)
def checkpoint_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "checkpoint.key"
    monkeypatch.setenv("LIANXI_CHECKPOINT_KEY", str(path))
    return path


def add_events(platform: Platform, n: int = 6) -> None:
    now = platform.clock()
    for i in range(n):
        platform.app.register_school(LEAD, school_id=f"H{i:03d}", name=f"学校{i}", town="满都拉图镇",
                                     kind="primary", boarding=False, canteen=True, school_bus=False, now=now)
    for i in range(n):
        platform.app.log_duty(FIRE, duty_code="fire-rescue.inspection", school_ids=[f"H{i:03d}"],
                              occurred_on=date(2025, 6, 1) + timedelta(days=i), summary="消防检查",
                              findings={"count": 0, "text": ""}, evidence=[], idempotency_key=f"k{i}",
                              body={"i": i}, now=now)
    platform.runner.catch_up()


def sql_table(platform: Platform) -> tuple[str, str]:
    return ("stored_events", "rowid") if platform.database.kind == "sqlite" else ("lianxi_events", "notification_id")


def positions(platform: Platform) -> list[int]:
    table, pos = sql_table(platform)
    with platform.write_engine.connect() as conn:
        return [int(r[0]) for r in conn.exec_driver_sql(f"SELECT {pos} FROM {table} ORDER BY {pos}")]


def edit_one_byte(platform: Platform, position: int) -> None:
    table, pos = sql_table(platform)
    with platform.write_engine.begin() as conn:
        state = bytearray(conn.exec_driver_sql(f"SELECT state FROM {table} WHERE {pos} = {position}").scalar_one())
        i = state.index(b'"agency"')  # inside the JSON, so the row still decodes
        state[i + 1] ^= 0x20  # "agency" -> "Agency"
        conn.execute(sa.text(f"UPDATE {table} SET state = :s WHERE {pos} = {position}"), {"s": bytes(state)})


def delete_event(platform: Platform, position: int) -> None:
    table, pos = sql_table(platform)
    with platform.write_engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {table} WHERE {pos} = {position}")


def swap_events(platform: Platform, p: int, q: int) -> None:
    """Exchange the contents of two rows, keeping their positions."""
    table, pos = sql_table(platform)
    cols = "originator_id, originator_version, topic, state"
    with platform.write_engine.begin() as conn:
        a = conn.exec_driver_sql(f"SELECT {cols} FROM {table} WHERE {pos} = {p}").one()
        b = conn.exec_driver_sql(f"SELECT {cols} FROM {table} WHERE {pos} = {q}").one()
        temp: Any = uuid.uuid4() if platform.database.kind == "postgres" else uuid.uuid4().hex
        upd = sa.text(f"UPDATE {table} SET originator_id = :o, originator_version = :v, topic = :t, state = :s "
                      f"WHERE {pos} = :p")
        conn.execute(upd, {"o": temp, "v": a[1], "t": a[2], "s": a[3], "p": p})
        conn.execute(upd, {"o": a[0], "v": a[1], "t": a[2], "s": a[3], "p": q})
        conn.execute(upd, {"o": b[0], "v": b[1], "t": b[2], "s": b[3], "p": p})


def truncate_tail(platform: Platform, keep_upto: int, *, with_chain: bool) -> None:
    """Delete every event after ``keep_upto``; a thorough forger also cuts the chain and its
    follower's position, so only a checkpoint kept elsewhere can tell."""
    table, pos = sql_table(platform)
    with platform.write_engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {table} WHERE {pos} > {keep_upto}")
        if with_chain:
            conn.exec_driver_sql(f"DELETE FROM log_chain WHERE position > {keep_upto}")
            conn.exec_driver_sql(f"UPDATE projection_tracking SET position = {keep_upto} WHERE name = 'log_chain'")


def check(platform: Platform, cp: Checkpoint | None = None) -> hashchain.Verification:
    return verify_against(platform, cp)


# -- the chain follows the log ---------------------------------------------------------------


def test_every_stored_event_is_linked_in_log_order(platform: Platform) -> None:
    add_events(platform)
    pos = positions(platform)
    with platform.read_engine.connect() as conn:
        chained = [int(r[0]) for r in conn.execute(sa.select(hashchain.log_chain.c.position)
                                                    .order_by(hashchain.log_chain.c.position))]
    assert chained == pos and len(pos) > 30
    result = check(platform)
    assert result.ok and result.events == len(pos) and result.head.position == pos[-1]
    # The head link is the fold of every event's stored bytes, position included.
    table, p = sql_table(platform)
    with platform.read_engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT {p}, originator_id, originator_version, topic, state FROM {table} ORDER BY {p}").all()
    prev = hashchain.GENESIS
    for r in rows:
        prev = hashchain.link(prev, int(r[0]), r[1], int(r[2]), r[3], bytes(r[4]))
    assert prev == result.head.hash
    assert platform.runner.lag()[hashchain.CHAIN_NAME] == 0  # it shows in readiness like any follower


def test_new_events_are_linked_and_a_rebuild_rechecks_instead_of_relinking(platform: Platform) -> None:
    add_events(platform, 3)
    first = check(platform).head
    add_events_more = [f"H{i:03d}" for i in range(3)]
    platform.app.log_duty(FIRE, duty_code="fire-rescue.inspection", school_ids=add_events_more,
                          occurred_on=date(2025, 6, 20), summary="复查", findings={"count": 0, "text": ""},
                          evidence=[], idempotency_key="more", body={}, now=platform.clock())
    second = check(platform).head
    assert second.position > first.position
    # Rebuilding every read model leaves the chain as it was (it re-checks the links it has).
    for name in platform.runner.projections:
        platform.runner.reset(name)
    platform.runner.catch_up()
    assert check(platform).head == second
    # ...and refuses to re-link over an edited event, loudly, at the edited position.
    target = positions(platform)[5]
    edit_one_byte(platform, target)
    platform.runner.reset(hashchain.CHAIN_NAME)
    with pytest.raises(hashchain.ChainBroken) as err:
        platform.runner.catch_up(hashchain.CHAIN_NAME)
    assert err.value.position == target


def test_a_rebuild_links_what_the_chain_lacks_and_rechecks_the_rest(platform: Platform) -> None:
    """Batches the chain covers whole are checked by their last link, batches it covers in part
    link the rest: the chain ends up as the follower made it, and a deleted event still breaks
    the re-check at the position after it."""
    add_events(platform)
    with platform.read_engine.connect() as conn:
        followed = list(conn.execute(sa.select(hashchain.log_chain).order_by(hashchain.log_chain.c.position)))
    middle = positions(platform)[len(followed) // 2]
    with platform.write_engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM log_chain WHERE position > {middle}")
    platform.runner.reset(hashchain.CHAIN_NAME)
    platform.runner.batch_size = platform.runner.max_batch_size = 7  # batches straddle the cut
    platform.runner.catch_up(hashchain.CHAIN_NAME)
    with platform.read_engine.connect() as conn:
        assert list(conn.execute(sa.select(hashchain.log_chain).order_by(hashchain.log_chain.c.position))) == followed
    target = positions(platform)[3]
    delete_event(platform, target)
    platform.runner.reset(hashchain.CHAIN_NAME)
    with pytest.raises(hashchain.ChainBroken) as err:
        platform.runner.catch_up(hashchain.CHAIN_NAME)
    assert err.value.position == positions(platform)[3]  # the event after the deleted one


def test_the_fast_catch_up_links_exactly_as_the_follower(platform: Platform) -> None:
    add_events(platform)  # linked by the projection runner
    with platform.read_engine.connect() as conn:
        followed = list(conn.execute(sa.select(hashchain.log_chain).order_by(hashchain.log_chain.c.position)))
    with platform.write_engine.begin() as conn:
        conn.execute(hashchain.log_chain.delete())
        conn.exec_driver_sql("UPDATE projection_tracking SET position = 0 WHERE name = 'log_chain'")
    assert hashchain.catch_up(platform.write_engine, batch=7) == len(followed)
    with platform.read_engine.connect() as conn:
        fast = list(conn.execute(sa.select(hashchain.log_chain).order_by(hashchain.log_chain.c.position)))
    assert fast == followed
    assert platform.runner.catch_up(hashchain.CHAIN_NAME) == 0  # the runner sees the same position
    # Re-linking from zero over an edited event refuses at that event.
    target = positions(platform)[9]
    edit_one_byte(platform, target)
    with platform.write_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE projection_tracking SET position = 0 WHERE name = 'log_chain'")
    with pytest.raises(hashchain.ChainBroken) as err:
        hashchain.catch_up(platform.write_engine, batch=5)
    assert err.value.position == target


# -- tampering, on SQLite and PostgreSQL -------------------------------------------------------


def test_editing_one_byte_is_detected_at_that_position(platform: Platform) -> None:
    add_events(platform)
    cp, _ = checkpoint_now(platform, now=platform.clock())
    target = positions(platform)[-4]
    edit_one_byte(platform, target)
    result = check(platform, cp)
    assert not result.ok and result.broken_at == target
    assert "edited" in (result.reason or "")


def test_deleting_one_event_is_detected_at_that_position(platform: Platform) -> None:
    add_events(platform)
    target = positions(platform)[10]
    delete_event(platform, target)
    result = check(platform)
    assert not result.ok and result.broken_at == target and "deleted" in (result.reason or "")


def test_swapping_two_events_is_detected_at_the_first(platform: Platform) -> None:
    add_events(platform)
    pos = positions(platform)
    swap_events(platform, pos[-2], pos[7])
    result = check(platform)
    assert not result.ok and result.broken_at == pos[7]


def test_truncating_the_tail_after_a_checkpoint_is_detected(platform: Platform) -> None:
    add_events(platform)
    cp, _ = checkpoint_now(platform, now=platform.clock())
    pos = positions(platform)
    assert cp.position == pos[-1]
    truncate_tail(platform, pos[-4], with_chain=False)
    result = check(platform, cp)
    assert not result.ok and result.broken_at == pos[-3]


def test_a_thorough_truncation_is_caught_by_the_checkpoint_alone(platform: Platform) -> None:
    add_events(platform)
    cp, _ = checkpoint_now(platform, now=platform.clock())
    pos = positions(platform)
    truncate_tail(platform, pos[-4], with_chain=True)
    assert check(platform).ok  # the cut chain agrees with the cut log: only the checkpoint knows
    result = check(platform, cp)
    assert not result.ok and result.broken_at == pos[-3] and "truncated" in (result.reason or "")


def test_rewriting_log_and_chain_together_is_caught_by_the_checkpoint(platform: Platform) -> None:
    add_events(platform)
    cp, _ = checkpoint_now(platform, now=platform.clock())
    target = positions(platform)[3]
    edit_one_byte(platform, target)
    with platform.write_engine.begin() as conn:  # the forger relinks the whole chain
        conn.execute(hashchain.log_chain.delete())
        conn.exec_driver_sql("UPDATE projection_tracking SET position = 0 WHERE name = 'log_chain'")
    assert check(platform).ok
    result = check(platform, cp)
    assert not result.ok and result.broken_at == cp.position and "checkpoint" in (result.reason or "")


def test_events_appended_after_a_checkpoint_still_match_it(platform: Platform) -> None:
    add_events(platform, 2)
    cp, _ = checkpoint_now(platform, now=platform.clock())
    add_events_later = Principal("t-fire2", "fire-rescue", "liaison", "x")
    platform.app.log_duty(add_events_later, duty_code="fire-rescue.inspection", school_ids=["H000"],
                          occurred_on=date(2025, 6, 21), summary="再查", findings={"count": 0, "text": ""},
                          evidence=[], idempotency_key="later", body={}, now=platform.clock())
    result = check(platform, cp)
    assert result.ok and result.head.position > cp.position


# -- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_key_is_created_once_with_0600_and_signatures_verify(sqlite_platform: Platform,
                                                                        checkpoint_key: Path) -> None:
    add_events(sqlite_platform, 2)
    cp, _ = checkpoint_now(sqlite_platform, now=datetime(2025, 7, 1, tzinfo=UTC))
    assert stat.S_IMODE(checkpoint_key.stat().st_mode) == 0o600
    assert cp.public_key == public_hex(load_key())  # the same key again, not a new one
    assert cp.time == "2025-07-01T00:00:00.000000Z"
    again = Checkpoint.from_json(cp.to_json())
    again.check_signature(cp.public_key)
    forged = Checkpoint.from_dict({**cp.as_dict(), "position": cp.position - 1})
    with pytest.raises(CheckpointError, match="signature is invalid"):
        forged.check_signature()
    with pytest.raises(CheckpointError, match="not by this platform's key"):
        cp.check_signature("00" * 32)
    with pytest.raises(CheckpointError, match="head_hash"):
        Checkpoint.from_dict({**cp.as_dict(), "head_hash": "zz"})


def test_a_key_readable_by_others_is_refused(checkpoint_key: Path) -> None:
    load_key()
    os.chmod(checkpoint_key, 0o644)
    with pytest.raises(CheckpointError, match="readable by others"):
        load_key()


def test_no_checkpoint_is_signed_for_a_broken_log(sqlite_platform: Platform) -> None:
    add_events(sqlite_platform, 2)
    delete_event(sqlite_platform, positions(sqlite_platform)[4])
    with pytest.raises(CheckpointError, match="refusing to sign: chain broken at position"):
        checkpoint_now(sqlite_platform, now=sqlite_platform.clock())


# -- the command line ------------------------------------------------------------------------


def lianxi(args: list[str], db: str, key: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIANXI_DATABASE_URL": db, "LIANXI_CHECKPOINT_KEY": str(key)}
    return run_cli(args, env=env, timeout=120)


def test_cli_checkpoint_and_verify(sqlite_url: str, tmp_path: Path, checkpoint_key: Path) -> None:
    platform = Platform_(sqlite_url)
    try:
        add_events(platform)
        cp_file = tmp_path / "cp.json"
        out = lianxi(["checkpoint", "-o", str(cp_file)], sqlite_url, checkpoint_key)
        assert out.returncode == 0, out.stderr
        cp = json.loads(cp_file.read_text())
        assert set(cp) >= {"position", "head_hash", "time", "signature", "public_key"}
        ok = lianxi(["verify", "--checkpoint", str(cp_file)], sqlite_url, checkpoint_key)
        assert ok.returncode == 0 and f"matches the checkpoint at position {cp['position']}" in ok.stdout
        target = positions(platform)[-5]
        edit_one_byte(platform, target)
        bad = lianxi(["verify", "--checkpoint", str(cp_file)], sqlite_url, checkpoint_key)
        lines = [x for x in bad.stderr.splitlines() if x.strip()]
        assert bad.returncode == 1 and lines == [f"lianxi: error: chain broken at position {target}: "
                                                 "the stored event does not match its link (edited or moved)"]
        cp_file.write_text(cp_file.read_text().replace(cp["time"], "2030-01-01T00:00:00.000000Z"))
        forged = lianxi(["verify", "--checkpoint", str(cp_file)], sqlite_url, checkpoint_key)
        assert forged.returncode == 1 and "signature is invalid" in forged.stderr
    finally:
        platform.close()


def Platform_(url: str) -> Platform:
    from contracts.catalogue import default_catalogue
    from tests.conftest import make_platform

    p = make_platform(url, clock=Clock())
    p.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    return p
