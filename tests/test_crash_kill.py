"""Crash safety: kill -9 a writer (and, in the same loop, a projection worker) at random
moments, on SQLite and on PostgreSQL, and after every kill check that

- every write the child saw acknowledged is in the log; for writes through the API (every
  other writer cycle), every acknowledged write and indeed every stored write has its audit
  row (it commits in the write's transaction: no kill falls between them);
- no event is half-written (each stored event decodes, with every field its class declares);
- the hash chain verifies (when `lianxi verify` exists);
- each read model equals a clean replay of the log up to that read model's own position
  (so a killed batch left nothing half-applied), and, once caught up, equals a rebuild.

LIANXI_KILL_CYCLES sets the cycles per backend: 30 in `make test`, 300 in `make soak`.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import sqlalchemy as sa
from eventsourcing.utils import resolve_topic

from contracts.catalogue import default_catalogue
from events.duty_log import DutyRecord
from services.platform import Platform
from services.settings import Settings
from tests.conftest import PG_BASE, drop_pg_schema, make_platform
from tests.crash_writer import API_SUMMARY
from tests.zygote import ForkedProcess, Zygote

ROOT = Path(__file__).resolve().parent.parent
CYCLES = int(os.environ.get("LIANXI_KILL_CYCLES", "30"))
SCHOOLS = ["K001", "K002", "K003", "K004"]
BACKLOG = 400  # events the parent appends before each projection-worker cycle
READY_TIMEOUT_S = 120


class CappedLog:
    """The log as it stood at position ``cap``: replaying through it rebuilds a read model
    exactly up to where a killed worker had committed."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.cap = 0

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *, inclusive_of_start: bool = True) -> Sequence[Any]:
        stop = self.cap if stop is None else min(stop, self.cap)
        found: Sequence[Any] = self.reader.select_notifications(start, limit, stop, topics,
                                                                inclusive_of_start=inclusive_of_start)
        return found

    def max_notification_id(self) -> int | None:
        return min(self.reader.max_notification_id() or 0, self.cap)


@dataclass
class Child:
    proc: subprocess.Popen[str] | ForkedProcess
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @classmethod
    def start(cls, args: list[str], env: dict[str, str], stderr: IO[str]) -> Child:
        return cls._pumped(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr,
                                            text=True))

    @classmethod
    def fork(cls, zygote: Zygote, argv: list[str], out: Path, stderr: Path) -> Child:
        """``python -m argv[0] argv[1:]`` as a child of the warm zygote (started in milliseconds)."""
        return cls._pumped(zygote.spawn(argv, out, stderr))

    @classmethod
    def _pumped(cls, proc: subprocess.Popen[str] | ForkedProcess) -> Child:
        child = cls(proc)

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                child.lines.append(line)

        child.reader = threading.Thread(target=pump, daemon=True)
        child.reader.start()
        return child

    def wait_for(self, word: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not any(line.startswith(word) for line in self.lines):
            assert self.proc.poll() is None, f"child exited with {self.proc.returncode} before {word}"
            assert time.monotonic() < deadline, f"child never printed {word}"
            time.sleep(0.01)

    def kill(self) -> None:
        assert self.proc.poll() is None, f"child died on its own (exit {self.proc.returncode}): {self.lines[-3:]}"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)
        assert self.reader is not None
        self.reader.join(timeout=60)

    def acknowledged(self) -> list[str]:
        # A line cut off by the kill has no newline: the child never finished saying it.
        errors = [line for line in self.lines if line.startswith("ERROR")]
        assert not errors, errors
        return [line.split()[1] for line in self.lines if line.startswith("ACK ") and line.endswith("\n")]


@dataclass
class Checker:
    platform: Platform
    scratch: Platform  # rebuild target: another SQLite file or PostgreSQL schema
    capped: CappedLog
    url: str
    checked_to: int = 0
    stored_ids: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)
    acked_over_http: set[str] = field(default_factory=set)
    stored_over_http: set[str] = field(default_factory=set)
    killed_mid_projection: int = 0
    required: dict[str, frozenset[str]] = field(default_factory=dict)

    def log_is_whole(self) -> None:
        """Every event stored since the last check decodes, with every declared field."""
        recorder = self.platform.app.recorder
        while True:
            batch = recorder.select_notifications(self.checked_to, 1000, inclusive_of_start=False)
            if not batch:
                break
            for n in batch:
                state = orjson.loads(n.state)
                missing = self._fields(n.topic) - state.keys()
                assert not missing, f"event {n.id} ({n.topic}) lacks {sorted(missing)}"
                if n.topic.endswith("DutyPerformed"):
                    self.stored_ids.add(state["event_id"])
                    if str(state.get("summary", "")).startswith(API_SUMMARY):
                        self.stored_over_http.add(str(uuid.UUID(str(n.originator_id))))
            self.checked_to = batch[-1].id
        if self.platform.database.kind == "sqlite":
            with self.platform.write_engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"

    def _fields(self, topic: str) -> frozenset[str]:
        if topic not in self.required:
            names: set[str] = set()
            for klass in resolve_topic(topic).__mro__:
                names |= set(getattr(klass, "__annotations__", {}))
            self.required[topic] = frozenset(names - {"originator_id", "originator_version", "originator_id_type"})
        return self.required[topic]

    def acknowledged_writes_are_stored(self, acked: list[str]) -> None:
        self.acked.update(acked)
        lost = self.acked - self.stored_ids
        assert not lost, f"{len(lost)} acknowledged writes are missing, e.g. {sorted(lost)[:3]}"

    def acknowledged_writes_have_audit_rows(self, acked: list[str]) -> None:
        """Every write the API acknowledged has its audit row: who wrote what, outcome ok."""
        from services.security.audit import audit_log

        self.acked_over_http.update(acked)
        with self.platform.write_engine.connect() as conn:
            audited = set(conn.execute(sa.select(audit_log.c.resource_id).where(
                audit_log.c.action == "POST /api/v1/duty-logs", audit_log.c.outcome == "ok",
                audit_log.c.unit.is_not(None))).scalars())
        missing = self.acked_over_http - audited
        assert not missing, (f"{len(missing)} of {len(self.acked_over_http)} acknowledged API writes have no "
                             f"audit row, e.g. {sorted(missing)[:3]}")
        unaudited = self.stored_over_http - audited
        assert not unaudited, (f"{len(unaudited)} of {len(self.stored_over_http)} stored API writes have no "
                               f"audit row, e.g. {sorted(unaudited)[:3]}")

    def hash_chain_verifies(self) -> None:
        """In-process through the function `lianxi verify` runs, else through the command
        itself; skipped while the platform has no hash chain."""
        try:
            from services.security.checkpoint import verify_against
        except ImportError:
            pass
        else:
            result = verify_against(self.platform, None)
            assert result.ok, result.describe()
            return
        from services.cli import cli

        if "verify" not in {c.name or (c.callback.__name__ if c.callback else "") for c in cli.registered_commands}:
            return
        env = {**os.environ, "LIANXI_DATABASE_URL": self.url}
        out = subprocess.run([sys.executable, "-m", "services.cli", "verify"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr

    def read_models_match_replay(self, *, at_positions: bool) -> None:
        """``at_positions``: compare each read model as the killed process left it with a replay
        up to its own position; otherwise catch up first and compare with the head."""
        runner = self.platform.runner
        if not at_positions:
            runner.catch_up()
        head = self.platform.app.recorder.max_notification_id() or 0
        for name, projection in runner.projections.items():
            position = runner.position(name)
            if at_positions and position < head:
                self.killed_mid_projection += 1
            self.capped.cap = position
            self.scratch.runner.catch_up(name)
            for table in projection.tables:
                assert dump(self.platform.write_engine, table) == dump(self.scratch.write_engine, table), (
                    f"read model {name} ({table.name}) differs from a replay to position {position}")

    def rebuild_from_zero_matches(self) -> None:
        self.platform.runner.catch_up()
        self.capped.cap = self.platform.app.recorder.max_notification_id() or 0
        for name, projection in self.scratch.runner.projections.items():
            self.scratch.runner.reset(name)
            self.scratch.runner.catch_up(name)
            for table in projection.tables:
                assert dump(self.platform.write_engine, table) == dump(self.scratch.write_engine, table), name


def dump(engine: sa.Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted((tuple(r) for r in conn.execute(sa.select(table))), key=repr)


def seed(platform: Platform) -> None:
    from services.kernel.principal import Principal

    platform.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    lead = Principal(token_id="kill-loop", agency="education", role="lead", label="kill-loop")
    for sid in SCHOOLS:
        platform.app.register_school(lead, school_id=sid, name=f"学校{sid}", town="满都拉图镇", kind="primary",
                                     boarding=False, canteen=True, school_bus=True, now=platform.clock())
    platform.runner.catch_up()


def append_backlog(platform: Platform, cycle: int, n: int) -> None:
    """Work for the projection worker: n records, appended by the parent in big batches."""
    agency = platform.app.agency("fire-rescue")
    now = datetime.now(UTC)
    records = [
        DutyRecord.perform(
            record_id=uuid.uuid5(uuid.NAMESPACE_URL, f"backlog-{cycle}-{i}"), agency=agency,
            duty_code="fire-rescue.inspection", school_ids=[SCHOOLS[i % len(SCHOOLS)]], occurred_on=now.date(),
            summary=f"backlog {cycle}/{i}", findings={"count": i % 2, "text": ""}, evidence=[],
            logged_by="kill-loop", request_digest="", school_exists=lambda _: True, now=now,
        ) for i in range(n)
    ]
    for start in range(0, n, 100):
        platform.app.save(*records[start:start + 100])


def test_kill_loop(database_url: str, tmp_path: Path) -> None:
    rng = random.Random(20250630)
    if database_url.startswith("sqlite"):
        scratch_url = f"sqlite:///{tmp_path / 'replay.db'}"
        scratch_schema = None
    else:
        scratch_schema = f"lxt_replay_{uuid.uuid4().hex[:10]}"
        scratch_url = f"{PG_BASE}?schema={scratch_schema}"
    platform = make_platform(database_url)
    seed(platform)
    scratch = Platform(Settings(database_url=scratch_url, projection_batch_size=97), group_commit=False)
    capped = CappedLog(platform.app.recorder)
    scratch.runner.reader = capped
    checker = Checker(platform, scratch, capped, database_url)
    env = {**os.environ, "LIANXI_DATABASE_URL": database_url, "LIANXI_PROJECTION_BATCH_SIZE": "25",
           "LIANXI_RATE_LIMIT_PER_MINUTE": "0", "PYTHONUNBUFFERED": "1"}
    stderr_path = tmp_path / "children.log"
    kinds = {"writer": 0, "api writer": 0, "projector": 0}
    # Every child is `python -m ...` forked from one warm parent: the kills land in the work, not in imports.
    zygote = Zygote(["services.cli", "services.api.main", "tests.crash_writer"], env)
    try:
        for cycle in range(CYCLES):
            out = tmp_path / f"child-{cycle}.out"
            if cycle % 3 == 2:
                kinds["projector"] += 1
                append_backlog(platform, cycle, BACKLOG)
                child = Child.fork(zygote, ["services.cli", "project"], out, stderr_path)
                # `lianxi project` announces itself on stderr; give it a moment to start.
                time.sleep(rng.uniform(0.3, 1.0))
                child.kill()
            else:
                over_http = cycle % 3 == 1
                kinds["api writer" if over_http else "writer"] += 1
                child = Child.fork(zygote, ["tests.crash_writer", database_url, f"c{cycle}", "--schools",
                                            ",".join(SCHOOLS), *(["--http"] if over_http else [])], out, stderr_path)
                child.wait_for("READY")
                time.sleep(rng.uniform(0.05, 0.6))
                child.kill()
            checker.log_is_whole()
            checker.acknowledged_writes_are_stored(child.acknowledged())
            if cycle % 3 == 1:
                checker.acknowledged_writes_have_audit_rows(child.acknowledged())
            checker.hash_chain_verifies()
            checker.read_models_match_replay(at_positions=True)
            checker.read_models_match_replay(at_positions=False)
        checker.rebuild_from_zero_matches()
    except AssertionError:
        print(stderr_path.read_text()[-4000:] if stderr_path.exists() else "(no child wrote to stderr)")
        raise
    finally:
        zygote.close()
        scratch.close()
        platform.close()
        if scratch_schema:
            drop_pg_schema(scratch_schema)
    assert checker.acked, "the writer never got a write acknowledged"
    assert checker.acked_over_http or CYCLES < 2, "the API writer never got a write acknowledged"
    print(f"\nkill loop on {platform.database.kind}: {CYCLES} cycles ({kinds}), {len(checker.acked)} acknowledged "
          f"writes ({len(checker.acked_over_http)} through the API; {len(checker.stored_over_http)} stored API writes, "
          f"each with its audit row), "
          f"{checker.checked_to} log positions, {checker.killed_mid_projection} read models caught "
          f"behind the head at a kill")


def test_capped_log_hides_what_came_later(sqlite_url: str) -> None:
    """The replay helper itself: a rebuild through it stops at the cap."""
    platform = make_platform(sqlite_url)
    try:
        seed(platform)
        capped = CappedLog(platform.app.recorder)
        capped.cap = 3
        assert capped.max_notification_id() == 3
        assert [n.id for n in capped.select_notifications(0, 100)] == [1, 2, 3]
        assert platform.app.recorder.max_notification_id() > 3  # type: ignore[operator]
    finally:
        platform.close()


def test_a_dead_writers_unfinished_line_is_not_an_acknowledgement() -> None:
    child = Child(proc=None)  # type: ignore[arg-type]
    child.lines = ["READY\n", "ACK a\n", "ACK b"]
    assert child.acknowledged() == ["a"]

