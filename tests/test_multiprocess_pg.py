"""Scale-out on one PostgreSQL database: two API processes (`lianxi serve --no-projections`)
take concurrent writes while two projection workers (`lianxi project`) follow the log; the
read models they build equal a rebuild from the log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from contracts.catalogue import default_catalogue
from events.schools import School
from services.platform import Platform
from tests.conftest import make_platform
from tests.kafka_fixtures import free_port, lianxi_process, stop_process, wait_until

pytest_plugins = ["tests.kafka_fixtures"]
pytestmark = pytest.mark.postgres
SCHOOLS = [f"M{i:03d}" for i in range(1, 9)]
WRITERS = 4
WRITES_PER_WRITER = 40


@pytest.fixture
def county(pg_url: str) -> Iterator[Platform]:
    platform = make_platform(pg_url)
    platform.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    platform.app.save(*[School.register(
        by_agency="education", by_lead=True, school_id=sid, name=f"学校{sid}", town="满都拉图镇", kind="primary",
        boarding=i % 2 == 0, canteen=True, school_bus=i % 3 == 0, now=datetime(2024, 2, 1, tzinfo=UTC),
    ) for i, sid in enumerate(SCHOOLS)])
    yield platform
    platform.close()


def dump(platform: Platform) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model table, rows sorted."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with platform.read_engine.connect() as conn:
        for p in platform.runner.projections.values():
            for table in p.tables:
                out[table.name] = sorted(tuple(r) for r in conn.execute(sa.select(table)))
    return out


def unit_duties() -> dict[str, list[str]]:
    """Five units, each with its duties that apply to every school."""
    out = {u.code: [d.code for d in u.duties if d.applies_to == "all"] for u in default_catalogue().units.units}
    return dict(list((code, ds) for code, ds in out.items() if ds)[:5])


def test_two_api_processes_and_two_projection_workers_match_a_rebuild(
    county: Platform, pg_url: str, tmp_path: Path,
) -> None:
    duties = unit_duties()
    units = list(duties)
    assert len(units) == 5
    known = county.known_agencies()
    tokens = {u: county.tokens.issue(agency=u, role="liaison", label=f"mp-{u}", known_agencies=known)[1]
              for u in units}
    env = {"LIANXI_DATABASE_URL": pg_url, "LIANXI_RATE_LIMIT_PER_MINUTE": "0",
           "LIANXI_INPROCESS_PROJECTIONS": "false", "LIANXI_LOG_LEVEL": "warning"}
    ports = [free_port(), free_port()]
    procs = [lianxi_process("serve", "--no-projections", "--host", "127.0.0.1", "--port", str(port), env=env,
                            log_path=tmp_path / f"api{port}.log") for port in ports]
    procs += [lianxi_process("project", env=env, log_path=tmp_path / f"project{i}.log") for i in range(2)]

    def healthy(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    statuses: list[int] = []
    lock = threading.Lock()

    def write(worker: int) -> None:
        with httpx.Client(timeout=30) as client:
            for i in range(WRITES_PER_WRITER):
                unit = units[(worker + i) % len(units)]
                port = ports[i % 2]
                body = {"duty_code": duties[unit][i % len(duties[unit])],
                        "school_ids": SCHOOLS[i % 3: i % 3 + 1 + worker], "occurred_on": f"2025-0{1 + i % 6}-1{worker}",
                        "summary": f"并发写入 {worker}-{i}", "findings": {"count": i % 3, "text": ""}}
                headers = {"Authorization": f"Bearer {tokens[unit]}"}
                if i % 5 == 0:  # the same Idempotency-Key on both processes: one record
                    headers["Idempotency-Key"] = f"mp-{worker}-{i}"
                    r2 = client.post(f"http://127.0.0.1:{ports[1 - i % 2]}/api/v1/duty-logs", json=body,
                                     headers=headers)
                    with lock:
                        statuses.append(r2.status_code)
                r = client.post(f"http://127.0.0.1:{port}/api/v1/duty-logs", json=body, headers=headers)
                with lock:
                    statuses.append(r.status_code)

    try:
        for port in ports:
            wait_until(lambda port=port: healthy(port), 60, f"the API on port {port}", interval=0.2)
        threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert set(statuses) <= {200, 201} and len(statuses) == WRITERS * (WRITES_PER_WRITER + 8)

        head = county.app.recorder.max_notification_id() or 0
        names = list(county.runner.projections)
        wait_until(lambda: all(county.runner.position(n) == head for n in names), 60, "the projection workers")
    finally:
        for p in procs:
            stop_process(p)
    assert all(p.returncode == 0 for p in procs[2:]), "a projection worker failed"

    days = county.runner.projections["ledger"].tables[0]
    with county.read_engine.connect() as conn:
        records = conn.execute(sa.select(sa.func.sum(days.c.performed_count))).scalar_one()
    assert records == WRITERS * WRITES_PER_WRITER  # the repeated idempotency keys added nothing

    live = dump(county)
    for name in names:
        county.runner.reset(name)
    county.runner.catch_up()
    assert dump(county) == live
