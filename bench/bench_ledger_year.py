"""7 — The yearly responsibility ledger at province scale, as a user reads it:
GET /api/v1/agencies/{unit}/ledger?period=YYYY for every member unit, through ``lianxi serve``
(uvicorn), one keep-alive connection, sequential requests, on SQLite and on PostgreSQL.

The store is the demo's own year (``lianxi demo --schools N --year 2024``: duty records,
hazards and their rectifications, meetings, every read model caught up), so the request is
the real one, duty figures and rectification block alike. In a full run the province benchmark
(order 40) has just built one at ``province/province.db`` in the same invocation's directory;
this benchmark reads that store when present.
Alone, it runs the same command into ``ledger_year.db`` (N from LIANXI_BENCH_LEDGER_SCHOOLS:
20,000, ``--quick`` 1,000) and keeps the store for the next run.

PostgreSQL only at a size that fits the machine (LIANXI_BENCH_LEDGER_SCHOOLS_PG: 1,000,
``--quick`` 120): a demo of that size on SQLite (``ledger_year_pg.db``, also kept), its log
copied into a PostgreSQL schema, every read model caught up there; both stores of that log are
measured and must give the same figures.

Baseline, in the same run, on the same server: the same GET with ``as_of`` today, which gives
the same per-duty figures from the day rows (expanding each row's JSON array of schools, the
live ledger's path before the rollups); the bench checks they agree.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from datetime import datetime
from typing import Any

from bench import (
    Bench,
    Ctx,
    Figure,
    Report,
    free_port,
    median,
    percentile,
    pg_schema_url,
    postgres_available,
    province_store,
    python,
    subprocess_env,
)

YEAR = 2024
REPEATS = 3  # reads of every unit per run, per path
DEMO_TIMEOUT_S = 60 * 60


def demo_store(ctx: Ctx, name: str, schools: int) -> tuple[str, float | None]:
    """``workdir/name.db`` holding ``lianxi demo --schools N --year YEAR``, built unless a
    finished one is there (its marker file); the build's wall seconds, or None if reused."""
    path, done = ctx.workdir / f"{name}.db", ctx.workdir / f"{name}.db.{schools}.done"
    url = f"sqlite:///{path}"
    if done.exists() and path.exists():
        return url, None
    for old in ctx.workdir.glob(f"{name}.db*"):
        old.unlink()
    env = subprocess_env(LIANXI_DATABASE_URL=url, LIANXI_LOG_LEVEL="warning")
    t0 = time.perf_counter()
    subprocess.run([python(), "-m", "services.cli", "demo", "--schools", str(schools), "--year", str(YEAR)],
                   env=env, check=True, timeout=DEMO_TIMEOUT_S, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done.touch()
    return url, time.perf_counter() - t0


def prepare(url: str) -> dict[str, Any]:
    """Every read model caught up (a no-op on a finished demo store, unless a read model's
    version changed since), the store's size, and a token that may read every unit."""
    from services.platform import Platform
    from services.settings import Settings

    platform = Platform(Settings(database_url=url), group_commit=False)
    try:
        t0 = time.perf_counter()
        platform.runner.batch_size = platform.runner.max_batch_size = 50_000
        platform.runner.catch_up()
        projected = time.perf_counter() - t0
        _, token = platform.tokens.issue(agency="education", role="auditor", label="bench",
                                         known_agencies=platform.known_agencies())
        with platform.read_engine.connect() as conn:
            schools = int(conn.exec_driver_sql("SELECT count(*) FROM rm_schools").scalar_one())
        units = sorted(platform.known_agencies())
        return {"token": str(token), "projected_s": projected, "schools": schools, "units": units,
                "events": int(platform.app.recorder.max_notification_id() or 0)}
    finally:
        platform.close()


# -- reading -------------------------------------------------------------------------------


def _get(conn: http.client.HTTPConnection, token: str, path: str) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    body = resp.read()
    ms = (time.perf_counter() - t0) * 1000
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {body[:300]!r}")
    return ms, json.loads(body)


def _figures(ledger: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {d["duty_code"]: (d["performed_count"], d["findings_count"], d["schools_covered"])
            for d in ledger["duties"]}


def measure(ctx: Ctx, url: str, token: str, units: list[str], tag: str) -> dict[str, Any]:
    """Every unit's live yearly ledger and its as-of baseline, interleaved, ``REPEATS`` times
    per run; p50/p99 per run, medians over runs."""
    from bench.bench_api_write import Server

    port = free_port()
    env = subprocess_env(LIANXI_DATABASE_URL=url, LIANXI_LOG_LEVEL="warning", LIANXI_RATE_LIMIT_PER_MINUTE="0",
                         LIANXI_INPROCESS_PROJECTIONS="false", LIANXI_READINESS_MAX_LAG=str(2**40))
    # (ready although the read models the ledger does not read stay behind)
    server = Server([python(), "-m", "services.cli", "serve", "--host", "127.0.0.1", "--port", str(port)], env, port,
                    ctx.workdir / f"server-ledger-year-{tag}.log")
    from events.base import COUNTY_TZ

    live_path = f"/api/v1/agencies/{{}}/ledger?period={YEAR}"
    base_path = f"/api/v1/agencies/{{}}/ledger?period={YEAR}&as_of={datetime.now(COUNTY_TZ).date().isoformat()}"
    runs: list[tuple[float, float, float, float]] = []
    per_unit: dict[str, list[float]] = {u: [] for u in units}
    figures: dict[str, Any] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for unit in units:  # warm-up, and the two paths must agree
            _, live = _get(conn, token, live_path.format(unit))
            _, base = _get(conn, token, base_path.format(unit))
            figures[unit] = _figures(live)
            if figures[unit] != _figures(base):
                raise RuntimeError(f"{tag} {unit}: the live ledger's figures differ from the day rows'")
        for _ in range(ctx.runs):
            live_ms: list[float] = []
            base_ms: list[float] = []
            for _ in range(REPEATS):
                for unit in units:
                    live_ms.append(_get(conn, token, live_path.format(unit))[0])
                    per_unit[unit].append(live_ms[-1])
                    base_ms.append(_get(conn, token, base_path.format(unit))[0])
            live_ms.sort()
            base_ms.sort()
            runs.append((percentile(live_ms, 0.5), percentile(live_ms, 0.99), percentile(base_ms, 0.5),
                         percentile(base_ms, 0.99)))
    finally:
        conn.close()
        server.stop()
    return {"p50": median([r[0] for r in runs]), "p99": median([r[1] for r in runs]),
            "base_p50": median([r[2] for r in runs]), "base_p99": median([r[3] for r in runs]),
            "p99_runs": [r[1] for r in runs], "reads": len(units) * REPEATS, "figures": figures,
            "units": {u: (percentile(sorted(v), 0.5), percentile(sorted(v), 0.99)) for u, v in per_unit.items()}}


def run(ctx: Ctx) -> Report:
    report = Report()
    province = province_store(ctx)
    if province is not None:
        url, built = f"sqlite:///{province}", None
        source = "the province benchmark's store (`province.db`)"
    else:
        schools = int(os.environ.get("LIANXI_BENCH_LEDGER_SCHOOLS") or ctx.scale(20_000, 1_000))
        url, built = demo_store(ctx, "ledger_year", schools)
        source = "its own `lianxi demo` store" + (f", built in {built:.0f} s" if built else " (kept from a run before)")
    stores = [("SQLite", url, source)]
    if postgres_available():
        small = int(os.environ.get("LIANXI_BENCH_LEDGER_SCHOOLS_PG") or ctx.scale(1_000, 120))
        small_url, _ = demo_store(ctx, "ledger_year_pg", small)
        stores.append(("SQLite", small_url, "the demo store copied to PostgreSQL"))
    results = []
    for name, store_url, why in stores:
        info = prepare(store_url)
        ctx.log(f"  ledger-year: {name} {info['schools']:,} schools, {info['events']:,} events ({why})")
        results.append((name, info, measure(ctx, store_url, info["token"], info["units"], f"sqlite{len(results)}")))
    if len(stores) == 2:
        from bench.bench_replay import copy_log

        with pg_schema_url("lxb_ledger") as pg_url:
            t0 = time.perf_counter()
            copy_log(stores[1][1], pg_url)
            copied = time.perf_counter() - t0
            info = prepare(pg_url)
            ctx.log(f"  ledger-year: PostgreSQL {info['schools']:,} schools, log copied in {copied:.0f} s, "
                    f"read models caught up in {info['projected_s']:.0f} s")
            results.append(("PostgreSQL", info, measure(ctx, pg_url, info["token"], info["units"], "pg")))
        if results[1][2]["figures"] != results[2][2]["figures"]:
            raise RuntimeError("SQLite and PostgreSQL ledgers differ over the same log")
    for name, info, m in results:
        n = info["schools"]
        slowest = max(m["units"], key=lambda u: m["units"][u][1])
        fig = report.add(Figure(
            case=f"{name}: GET live yearly ledger, every unit, {n:,} schools", value=m["p99"], unit="ms",
            baseline=m["base_p99"], target="p99 < 200 ms at 20,000 schools",
            detail=f"p50 {m['p50']:.1f} ms (baseline p50 {m['base_p50']:.1f} ms); p99 per run "
                   + ", ".join(f"{v:.0f}" for v in m["p99_runs"])
                   + f"; slowest unit {slowest} p99 {m['units'][slowest][1]:.1f} ms; {m['reads']} reads per run "
                     "per path; baseline = the same figures from the day rows (?as_of=today)"))
        fig.met = m["p99"] < 200 if n >= 20_000 else None
        ctx.log(f"  ledger-year {name} {n:,}: p99 {m['p99']:.1f} ms, p50 {m['p50']:.1f} ms "
                f"(baseline p99 {m['base_p99']:.1f}, p50 {m['base_p50']:.1f}); slowest {slowest}")
        report.notes.append(f"- {name}, {n:,} schools, p50/p99 ms per unit: " + ", ".join(
            f"{u} {p50:.0f}/{p99:.0f}" for u, (p50, p99) in sorted(m["units"].items())))
    report.notes.append(
        f"- Store: {source}, the demo year {YEAR} with every read model caught up. "
        + ("PostgreSQL: a smaller demo's log copied in order (bench_replay.copy_log), its read models caught "
           "up there, measured beside the same store on SQLite. " if len(stores) == 2 else
           "PostgreSQL not reachable: SQLite only. ")
        + "Reads through `lianxi serve` (uvicorn, projections not in-process), one keep-alive connection, "
          "sequential, every unit in turn.")
    return report


BENCH = Bench(name="ledger-year", title="7. Yearly ledger at province scale (GET /ledger over HTTP)", order=65,
              run=run)
