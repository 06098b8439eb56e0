"""10 — Spreadsheet import (POST /api/v1/duty-logs/import) of a 5,000-row duty-log file.

A unit's template is downloaded from the API and filled with 5,000 rows (its duties, 40
schools, dates over the year); each run uploads it to a fresh SQLite platform through the
API (TestClient: multipart parsing, openpyxl read, every row checked, one commit of 5,000
DutyPerformed events). Baseline: a raw openpyxl read (read-only, values only) of the same
file, i.e. the floor any import of it pays.

Target (issue 19): under 10 s on this machine. ``--quick`` uses 1,000 rows.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench import Bench, Ctx, Figure, Report, median, sqlite_url

UNIT = "market-supervision"
NOW = datetime(2025, 12, 31, 4, 0, tzinfo=UTC)
TARGET_S = 10.0


def _platform(ctx: Ctx, name: str) -> Any:
    from contracts.catalogue import default_catalogue
    from services.platform import Platform
    from services.settings import Settings

    p = Platform(Settings(database_url=sqlite_url(ctx.workdir, name)), group_commit=False)
    p.clock = lambda: NOW
    p.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    return p


def _client(p: Any) -> tuple[Any, dict[str, str], dict[str, str]]:
    from fastapi.testclient import TestClient

    from services.api.main import create_app

    known = p.known_agencies()
    _, lead = p.tokens.issue(agency="education", role="lead", label="bench-lead", known_agencies=known)
    _, unit = p.tokens.issue(agency=UNIT, role="liaison", label="bench-unit", known_agencies=known)
    client = TestClient(create_app(p))
    for i in range(40):
        r = client.post("/api/v1/schools", headers={"Authorization": f"Bearer {lead}"},
                        json={"id": f"S{i:03d}", "name": f"第{i}中心小学", "town": "镇", "kind": "primary"})
        assert r.status_code == 201, r.text
    p.runner.catch_up()
    return client, {"Authorization": f"Bearer {lead}"}, {"Authorization": f"Bearer {unit}"}


def _file(client: Any, unit: dict[str, str], rows: int) -> bytes:
    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(client.get("/api/v1/duty-logs/template", headers=unit).content))
    options = wb["选项"]
    duties = [c.value for c in next(options.iter_cols(min_col=1, max_col=1, min_row=2)) if c.value]
    schools = [c.value for c in next(options.iter_cols(min_col=2, max_col=2, min_row=2)) if c.value]
    ws = wb.worksheets[0]
    for i in range(rows):
        ws.append([duties[i % len(duties)], date(2025, 1, 1) + timedelta(days=i % 360), schools[i % len(schools)],
                   f"第{i}次检查", i % 3, "留样记录不全" if i % 3 else None])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _raw_read(data: bytes) -> int:
    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    n = sum(1 for _ in wb.worksheets[0].iter_rows(min_row=3, values_only=True))
    wb.close()
    return n


def run(ctx: Ctx) -> Report:
    report = Report()
    rows = ctx.scale(5000, 1000)
    p = _platform(ctx, "import-file")
    try:
        client, _, unit = _client(p)
        data = _file(client, unit, rows)
    finally:
        p.close()
    base = []
    for _ in range(ctx.runs):
        t0 = time.perf_counter()
        _raw_read(data)
        base.append(time.perf_counter() - t0)
    times = []
    for k in range(ctx.runs):
        p = _platform(ctx, f"import-{k}")
        try:
            client, _, unit = _client(p)
            t0 = time.perf_counter()
            r = client.post("/api/v1/duty-logs/import", headers=unit, content=data)
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200 and r.json()["stored"] == rows, r.text[:500]
        finally:
            p.close()
    fig = report.add(Figure(case=f"import {rows:,} duty-log rows (XLSX, {len(data):,} bytes)", value=median(times),
                            unit="s", baseline=median(base), target=f"< {TARGET_S:g} s",
                            detail="baseline = raw openpyxl read-only read of the same file"))
    fig.met = fig.value < TARGET_S
    ctx.log(f"  import: {fig.value:.2f} s; raw read {median(base):.2f} s")
    return report


BENCH = Bench(name="import", title="10. Spreadsheet import (POST /api/v1/duty-logs/import)", order=100, run=run,
              description=__doc__ or "")
