"""6 — As-of ledger query over the county demo year:
GET /api/v1/agencies/{code}/ledger?as_of=YYYY-MM-DD for random units and dates, under
uvicorn, one keep-alive connection, sequential requests.

Baseline: the same request without ``as_of`` (the live ledger from running totals), so the
ratio says what reading history costs over reading the present.
"""

from __future__ import annotations

import http.client
import random
import time
from datetime import UTC, date, datetime, timedelta

from bench import Bench, Ctx, Figure, Report, free_port, median, percentile, python, sqlite_url, subprocess_env

YEAR = 2024
DEMO_SCHOOLS = 120  # the county demo (`make run`'s default)


def build(url: str) -> tuple[str, list[str]]:
    """The county demo year, projected; returns an auditor token and the unit codes."""
    from contracts.catalogue import default_catalogue
    from services.demo.year import run_demo
    from services.platform import Platform
    from services.settings import Settings

    platform = Platform(Settings(database_url=url), group_commit=False)
    try:
        run_demo(platform.app, default_catalogue(), schools=DEMO_SCHOOLS, year=YEAR, seed=1,
                 now=datetime(YEAR + 1, 1, 10, tzinfo=UTC))
        platform.runner.catch_up()
        _, token = platform.tokens.issue(agency="education", role="auditor", label="bench",
                                         known_agencies=platform.known_agencies())
        return token, [u.code for u in default_catalogue().units.units]
    finally:
        platform.close()


def _latencies(port: int, token: str, paths: list[str]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    try:
        for path in paths:
            t0 = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: {resp.status}")
            out.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
    return sorted(out)


def run(ctx: Ctx) -> Report:
    from bench.bench_api_write import Server

    report = Report()
    url = sqlite_url(ctx.workdir, "asof")
    token, units = build(url)
    rng = random.Random(11)
    n = ctx.scale(400, 100)
    first = date(YEAR, 1, 1)

    def asof_paths() -> list[str]:
        return [f"/api/v1/agencies/{rng.choice(units)}/ledger?as_of={first + timedelta(days=rng.randrange(366))}"
                for _ in range(n)]

    def live_paths() -> list[str]:
        return [f"/api/v1/agencies/{rng.choice(units)}/ledger?period={YEAR}" for _ in range(n)]

    port = free_port()
    # The clock stays real: every as_of date of the demo year is in the past.
    env = subprocess_env(LIANXI_DATABASE_URL=url, LIANXI_LOG_LEVEL="warning", LIANXI_RATE_LIMIT_PER_MINUTE="0")
    server = Server([python(), "-m", "services.cli", "serve", "--host", "127.0.0.1", "--port", str(port)], env, port,
                    ctx.workdir / "server-asof.log")
    p99s, p50s, base99 = [], [], []
    try:
        _latencies(port, token, asof_paths()[:20])  # warm-up
        for _ in range(ctx.runs):
            lat = _latencies(port, token, asof_paths())
            p99s.append(percentile(lat, 0.99))
            p50s.append(percentile(lat, 0.50))
            base99.append(percentile(_latencies(port, token, live_paths()), 0.99))
    finally:
        server.stop()
    fig = report.add(Figure(case=f"as-of p99, {n} random (unit, day) per run", value=median(p99s), unit="ms",
                            baseline=median(base99), target="p99 < 100 ms",
                            detail=f"p50 {median(p50s):.1f} ms; baseline = live ledger p99 "
                                   "(ratio > 1: as-of is slower)"))
    fig.met = fig.value < 100
    ctx.log(f"  as-of p99 {fig.value:.1f} ms (p50 {median(p50s):.1f}); live p99 {fig.baseline:.1f} ms")
    report.notes.append(f"- County demo year {YEAR}: {DEMO_SCHOOLS} schools, every unit, dates across the year; "
                        "requests through uvicorn on one keep-alive connection, sequential.")
    report.notes.extend(_plans(url))
    return report


def _plans(url: str) -> list[str]:
    """SQLite's plans for the as-of aggregates, so RESULTS shows which index they use."""
    import sqlite3

    where = ("agency = 'education' AND occurred_on >= '2024-01-01' AND occurred_on <= '2024-12-31' "
             "AND recorded_on <= '2024-06-30'")
    queries = {
        "records": "SELECT duty_code, substr(occurred_on, 1, 7), sum(performed_count), sum(findings_count), "
                   f"max(occurred_on) FROM rm_ledger_days WHERE {where} GROUP BY duty_code, 2",
        "schools": "SELECT duty_code, count(DISTINCT j.value) FROM rm_ledger_days JOIN json_each(school_ids) j "
                   f"WHERE {where} GROUP BY duty_code",
    }
    path = url.split(":///", 1)[1]
    db = sqlite3.connect(path)
    try:
        plans = {name: [str(r[-1]) for r in db.execute(f"EXPLAIN QUERY PLAN {sql}")] for name, sql in queries.items()}
    finally:
        db.close()
    return [f"- Plan of the as-of {name} aggregate (SQLite): " + "; ".join(rows) for name, rows in plans.items()]


BENCH = Bench(name="asof", title="6. As-of ledger query (county demo year)", order=60, run=run)
