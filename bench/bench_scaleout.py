"""11 — Scale-out on PostgreSQL: N API processes (``uvicorn --workers N``, N = 1, 2, 4) behind one
port, the projection worker (``lianxi project``) a process apart, under a realistic mix: mostly
POST /api/v1/duty-logs from many liaison tokens of several units, some GETs of the unit's ledger
and of the rectification board.

Baseline: a bare FastAPI app (the same ``DutyLogIn`` validation, constant answers to the GETs)
under the same N and the same client, measured in the same invocation, interleaved; so the
figure reads as "what N processes buy us" against "what N processes buy the framework alone"
on this machine. The load generator is its own process (``python -m bench.bench_scaleout
client``), a keep-alive HTTP/1.1 client on raw asyncio streams like bench_api_write's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench import (
    PG_BASE,
    Bench,
    Ctx,
    Figure,
    Report,
    free_port,
    median,
    percentile,
    pg_schema_url,
    postgres_available,
    python,
    subprocess_env,
)
from bench.bench_api_write import AGENCY, BODY, Server, prepare_store, read_response

PROCESSES = (1, 2, 4)
CONNS = 32
TOKENS_PER_UNIT = 4
UNITS = 6
GET_EVERY = 10  # every 10th request of a connection is a GET, alternately ledger and board
MAX_REQUESTS = 400_000
SCHOOL_COUNT = 50  # prepare_store registers make_schools(50, Random(1))
APP_NAME = "lianxi-bench-scaleout"  # libpq's application_name of our servers' connections


# -- the baseline server -------------------------------------------------------------------


def bare_app() -> Any:  # uvicorn --factory target
    from fastapi import FastAPI

    from bench.bench_api_write import make_bare_app

    app: FastAPI = make_bare_app()

    @app.get("/api/v1/agencies/{code}/ledger")
    def ledger(code: str) -> dict[str, Any]:
        return {"agency": code, "period": "2025", "duties": []}

    @app.get("/api/v1/rectifications")
    def board(limit: int = 100) -> dict[str, Any]:
        return {"items": [], "next_cursor": None}

    return app


# -- the store -----------------------------------------------------------------------------


def prepare(url: str) -> list[dict[str, str]]:
    """Catalogue and schools (bench_api_write's), then liaison tokens of several units, each
    with a duty of its own that applies to every school: the client's plan."""
    from contracts.catalogue import default_catalogue
    from services.demo.year import make_schools
    from services.platform import Platform
    from services.settings import Settings

    prepare_store(url)
    schools = [s.school_id for s in make_schools(SCHOOL_COUNT, random.Random(1))]
    duties = {u.code: d.code for u in default_catalogue().units.units for d in u.duties if d.applies_to == "all"}
    units = ([AGENCY] + [u for u in duties if u != AGENCY])[:UNITS]
    platform = Platform(Settings(database_url=url), group_commit=False)
    try:
        known = platform.known_agencies()
        plan: list[dict[str, str]] = []
        for i in range(TOKENS_PER_UNIT):
            for unit in units:
                _, token = platform.tokens.issue(agency=unit, role="liaison", label=f"scaleout-{i}",
                                                 known_agencies=known)
                plan.append({"unit": unit, "duty_code": duties[unit], "token": token,
                             "school": schools[len(plan) % len(schools)]})
        return plan
    finally:
        platform.close()


def duty_records(url: str) -> int:
    """How many duty records the log holds (each acknowledged write must be there exactly once)."""
    import psycopg

    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(PG_BASE) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{schema}".lianxi_events '
                           "WHERE topic LIKE %s AND originator_version = 1", ("%DutyPerformed%",)).fetchone()
    return int(row[0]) if row else 0


def raw_group_commit(url: str, seconds: float) -> tuple[float, float]:
    """The store's ceiling for these writes: one psycopg connection inserting duty-log-sized
    rows in transactions of CONNS rows (a group commit as full as the client can make it), into
    a table beside the log. Returns (rows/s, median commit ms)."""
    import psycopg

    schema = url.rsplit("schema=", 1)[1]
    state = json.dumps(BODY, ensure_ascii=False).encode() * 2  # about a stored event's size
    commits: list[float] = []
    rows = 0
    with psycopg.connect(PG_BASE) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS \"{schema}\".raw_writes "
                     "(id bigserial PRIMARY KEY, topic text, state bytea)")
        conn.commit()
        end = time.perf_counter() + seconds
        t_start = time.perf_counter()
        while time.perf_counter() < end:
            with conn.cursor() as cur:
                cur.executemany(f'INSERT INTO "{schema}".raw_writes (topic, state) VALUES (%s, %s)',
                                [("DutyPerformed", state)] * CONNS)
            t0 = time.perf_counter()
            conn.commit()
            commits.append(time.perf_counter() - t0)
            rows += CONNS
        took = time.perf_counter() - t_start
    return rows / took, median(commits) * 1000


# -- the load generator --------------------------------------------------------------------


def _requests(host: str, port: int, step: dict[str, str], n: int) -> dict[str, bytes]:
    auth = f"Host: {host}:{port}\r\nAuthorization: Bearer {step['token']}\r\n"
    body = dict(BODY, duty_code=step["duty_code"], school_ids=[step["school"]], summary=f"扩容测量 {n}")
    raw = json.dumps(body, ensure_ascii=False).encode()
    post = (f"POST /api/v1/duty-logs HTTP/1.1\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {len(raw)}\r\n\r\n").encode() + raw
    return {
        "post": post,
        "ledger": f"GET /api/v1/agencies/{step['unit']}/ledger HTTP/1.1\r\n{auth}\r\n".encode(),
        "board": f"GET /api/v1/rectifications?limit=20 HTTP/1.1\r\n{auth}\r\n".encode(),
    }


async def _connection(host: str, port: int, reqs: dict[str, bytes], start_at: float, end_at: float,
                      budget: list[int], out: dict[str, Any]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while budget[0] > 0:
            t0 = time.perf_counter()
            if t0 >= end_at:
                break
            budget[0] -= 1
            i += 1
            kind = "post" if i % GET_EVERY else ("ledger" if (i // GET_EVERY) % 2 else "board")
            writer.write(reqs[kind])
            status = await read_response(reader)
            t1 = time.perf_counter()
            if kind == "post" and status == 201:
                out["acked"] += 1
            if t0 >= start_at and t1 <= end_at:
                out["lat"][kind].append(t1 - t0)
                key = f"{kind} {status}"
                out["statuses"][key] = out["statuses"].get(key, 0) + 1
    finally:
        writer.close()


async def _load(host: str, port: int, plan: list[dict[str, str]], conns: int, warmup: float,
                duration: float) -> dict[str, Any]:
    now = time.perf_counter()
    start_at, end_at = now + warmup, now + warmup + duration
    out: dict[str, Any] = {"acked": 0, "statuses": {}, "lat": {"post": [], "ledger": [], "board": []}}
    budget = [MAX_REQUESTS]
    await asyncio.wait_for(asyncio.gather(*[
        _connection(host, port, _requests(host, port, plan[c % len(plan)], c), start_at, end_at, budget, out)
        for c in range(conns)
    ]), timeout=warmup + duration + 30)
    every = sorted(x for v in out["lat"].values() for x in v)
    figures: dict[str, Any] = {
        "rps": len(every) / duration, "p50_ms": percentile(every, 0.50) * 1000,
        "p99_ms": percentile(every, 0.99) * 1000, "acked": out["acked"], "statuses": out["statuses"],
        "errors": sum(v for k, v in out["statuses"].items() if not k.endswith((" 200", " 201"))),
    }
    for kind, lat in out["lat"].items():
        lat.sort()
        figures[f"{kind}_p99_ms"] = percentile(lat, 0.99) * 1000
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures["client_cpu_s"] = usage.ru_utime + usage.ru_stime
    return figures


def run_client(port: int, plan_path: Path, conns: int, warmup: float, duration: float) -> dict[str, Any]:
    cmd = [python(), "-m", "bench.bench_scaleout", "client", "--port", str(port), "--plan", str(plan_path),
           "--conns", str(conns), "--warmup", str(warmup), "--duration", str(duration)]
    out = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True,
                         timeout=warmup + duration + 60, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- servers -------------------------------------------------------------------------------


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backends_cpu() -> float:
    """CPU so far of the PostgreSQL backends serving this benchmark's processes (they connect
    as PGAPPNAME=APP_NAME): PostgreSQL runs on the same 2 cores, so its share counts."""
    import psycopg

    with psycopg.connect(PG_BASE) as conn:
        pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                           (APP_NAME,))]
    return sum(_cpu_of(pid) for pid in pids)


def _max_lag(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            lag = json.loads(r.read()).get("projection_lag", {})
    except urllib.error.HTTPError as e:  # 503 "lagging" still carries the lag
        lag = json.loads(e.read()).get("projection_lag", {})
    return max(lag.values(), default=0)


class Stack:
    """N API processes behind one port and one projection worker apart (or the bare app)."""

    def __init__(self, ctx: Ctx, n: int, url: str | None) -> None:
        port = free_port()
        target = "bench.bench_api_write:lianxi_app" if url else "bench.bench_scaleout:bare_app"
        store = {"LIANXI_DATABASE_URL": url} if url else {}
        env = subprocess_env(LIANXI_LOG_LEVEL="warning", LIANXI_RATE_LIMIT_PER_MINUTE="0",
                             LIANXI_INPROCESS_PROJECTIONS="false", PGAPPNAME=APP_NAME, **store)
        self.projector: subprocess.Popen[bytes] | None = None
        if url:
            self.projector = subprocess.Popen([python(), "-m", "services.cli", "project"], env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cmd = [python(), "-m", "uvicorn", "--factory", target, "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(n), "--log-level", "warning"]
        tag = f"{'lianxi' if url else 'bare'}-{n}"
        try:
            self.server = Server(cmd, env, port, ctx.workdir / f"scaleout-{tag}.log")
        except Exception:
            self.stop_projector()
            raise
        self.port = port

    def measure(self, plan_path: Path, warmup: float, duration: float) -> dict[str, Any]:
        if self.projector:
            self.server.settle()
        before = self.server.cpu_seconds()
        proj_before = _cpu_of(self.projector.pid) if self.projector else 0.0
        pg_before = _backends_cpu() if self.projector else 0.0
        r = run_client(self.port, plan_path, CONNS, warmup, duration)
        r["server_cpu_s"] = self.server.cpu_seconds() - before
        if self.projector:
            r["pg_cpu_s"] = _backends_cpu() - pg_before
        if self.projector:
            r["lag_at_end"] = _max_lag(self.port)
            t0 = time.perf_counter()
            self.server.settle()
            r["catch_up_s"] = time.perf_counter() - t0
            r["projector_cpu_s"] = _cpu_of(self.projector.pid) - proj_before
        return r

    def stop_projector(self) -> None:
        if self.projector and self.projector.poll() is None:
            self.projector.terminate()
            self.projector.wait(timeout=20)

    def stop(self) -> None:
        self.server.stop()
        self.stop_projector()


# -- the benchmark -------------------------------------------------------------------------


def run(ctx: Ctx) -> Report:
    report = Report()
    if not postgres_available():
        report.notes.append("- PostgreSQL not reachable: skipped.")
        return report
    warmup = 1.0 if ctx.quick else 2.0
    duration = float(os.environ.get("LIANXI_BENCH_SCALEOUT_SECONDS", "5" if ctx.quick else "10"))
    runs = min(ctx.runs, 3)  # windows of 10 s already average; 3 N x ours and bare x runs is most of its time
    results: dict[int, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    acked = 0
    raw: list[tuple[float, float]] = []
    with pg_schema_url("lxscale") as url:
        plan_path = ctx.workdir / "scaleout-plan.json"
        plan_path.write_text(json.dumps(prepare(url)))
        # The three N back to back; within each, ours and the bare app interleaved run by run.
        for n in PROCESSES:
            ours, bare = Stack(ctx, n, url), None
            try:
                bare = Stack(ctx, n, None)
                mine, base = [], []
                for _ in range(runs):
                    mine.append(ours.measure(plan_path, warmup, duration))
                    base.append(bare.measure(plan_path, warmup, duration))
                    ctx.log(f"  scaleout N={n}: {mine[-1]['rps']:,.0f} req/s p99 {mine[-1]['p99_ms']:.1f} ms "
                            f"errors {mine[-1]['errors']}; bare {base[-1]['rps']:,.0f} req/s")
                results[n] = (mine, base)
                acked += sum(r["acked"] for r in mine)
            finally:
                ours.stop()
                if bare:
                    bare.stop()
            raw.append(raw_group_commit(url, 2.0))
        stored = duty_records(url)
    one = median([r["rps"] for r in results[1][0]])
    one_bare = median([r["rps"] for r in results[1][1]])
    for n, (mine, base) in results.items():
        def m(key: str, rows: list[dict[str, Any]] = mine) -> float:
            return median([r[key] for r in rows])

        rps, b_rps = m("rps"), m("rps", base)
        report.add(Figure(
            case=f"{n} API process{'es' if n > 1 else ''}, PostgreSQL", value=rps, unit="req/s", baseline=b_rps,
            detail=(f"x{rps / one:.2f} of N=1 (bare x{b_rps / one_bare:.2f}); p50 {m('p50_ms'):.1f} ms, "
                    f"p99 {m('p99_ms'):.1f} ms (POST {m('post_p99_ms'):.1f}, ledger {m('ledger_p99_ms'):.1f}, "
                    f"board {m('board_p99_ms'):.1f}; bare p99 {m('p99_ms', base):.1f}); errors "
                    f"{sum(r['errors'] for r in mine)}; CPU s per run: API {m('server_cpu_s'):.1f}, projector "
                    f"{m('projector_cpu_s'):.1f}, PostgreSQL backends {m('pg_cpu_s'):.1f}, client "
                    f"{m('client_cpu_s'):.1f} (bare API "
                    f"{m('server_cpu_s', base):.1f}); projection lag at end {m('lag_at_end'):,.0f} events, "
                    f"caught up in {m('catch_up_s'):.1f} s; runs {min(r['rps'] for r in mine):,.0f}.."
                    f"{max(r['rps'] for r in mine):,.0f}"),
        ))
    report.notes.append(
        f"Each figure: the median of {runs} runs, each {warmup:g} s warm-up then a {duration:g} s window, "
        f"{CONNS} keep-alive connections from one "
        f"client process, {UNITS} units x {TOKENS_PER_UNIT} liaison tokens, every {GET_EVERY}th request of a "
        "connection a GET (alternately the unit's ledger and the rectification board, page of 20), the rest "
        "POST /api/v1/duty-logs. Server: `uvicorn --workers N --factory bench.bench_api_write:lianxi_app` "
        "(group commit per process, projections off) and one `lianxi project` worker; a fresh PostgreSQL "
        "schema per invocation, kept across the N so later N write into a larger log. Rate limit off "
        "(LIANXI_RATE_LIMIT_PER_MINUTE=0). CPU seconds are per run (warm-up + window) from /proc."
    )
    report.add(Figure(
        case="raw psycopg INSERT, transactions of 32 rows", value=median([r[0] for r in raw]), unit="rows/s",
        detail=f"one connection, median commit {median([r[1] for r in raw]):.1f} ms; measured after each N",
    ))
    report.notes.append(
        f"- Exactly once: the clients saw {acked:,} writes acknowledged (201); the log holds {stored:,} duty "
        f"records{' (equal)' if acked == stored else ' — **MISMATCH**'}."
    )
    if acked != stored:
        report.figures[0].met = False
    report.notes.extend(ANALYSIS)
    return report


ANALYSIS = [
    "- **What a second process buys (2-core machine, load 8-16 from other work, 2026-12-04):** on writes, "
    "nothing: 552, 552, 601 req/s at N = 1, 2, 4 (x1.00, x1.09) while the bare app under the same N and "
    "client went 2,107 -> 4,480 -> 4,405 (x2.1, the second core). p99 fell (300 -> 232 -> 177 ms), "
    "probably because the GETs (thread pool, sync SQL) spread over more processes' GILs (not profiled); zero "
    "errors; the projection worker kept up at every N (lag at the end <= 34 events, caught up in 0.3 s).",
    "- **Why, N >= 2: the log's insert lock.** eventsourcing's PostgreSQL recorder takes `LOCK TABLE "
    "lianxi_events IN EXCLUSIVE MODE` in every insert transaction (notification ids must commit in order) "
    "and holds it through the commit's WAL flush, so the group committers of N processes commit one after "
    "the other and each one's batch shrinks as N grows. Sampling `pg_stat_activity` every 50 ms during a "
    "10 s run of this mix: N=2 backends were waiting on `Lock:relation` (that LOCK TABLE) in 54 samples and "
    "on `IO:WALSync` in 38; N=1 showed no lock waits and 10 WALSync. Our API processes used no more CPU at "
    "N=2 than at N=1 (14.5 against 12.9 s per run) while the bare app doubled (28.7 against 15.5 s): they "
    "wait. 128 connections instead of 32 give 771 (N=1) and 726 (N=2) req/s: not a client-concurrency limit.",
    "- **Why, N = 1: CPU per request in one process** (about 1.0-1.1 ms of API CPU per request here, against "
    "0.33 ms for the bare app), the same cost the api-write row measures on SQLite. The store is not the "
    "limit: raw psycopg inserts of the same-sized rows in 32-row transactions reach ~8,300 rows/s on one "
    "connection (median commit 1.9 ms), and the PostgreSQL backends used 1.4-3.2 s of CPU per run.",
    "- **What would make N pay:** a shorter critical section under the table lock (fewer round trips between "
    "LOCK and COMMIT, e.g. events and audit rows in one statement), or one "
    "committer for the whole deployment (the API processes hand writes to it) so batches stay full; then "
    "the per-process CPU cost above is what a second process divides. Until then run one API process per "
    "PostgreSQL log for writes and add processes only for read-heavy traffic.",
]


BENCH = Bench(name="scaleout", title="11. Scale-out on PostgreSQL (N API processes, projections apart)",
              order=110, run=run, description="")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_scaleout")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("client", help="bounded loopback load generator with the write/read mix; one JSON line")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--plan", type=Path, required=True, help="JSON list of {unit, duty_code, token, school}")
    c.add_argument("--conns", type=int, default=CONNS)
    c.add_argument("--warmup", type=float, default=1.0)
    c.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("the load generator only targets loopback")
    plan = json.loads(args.plan.read_text())
    print(json.dumps(asyncio.run(_load(args.host, args.port, plan, args.conns, args.warmup,
                                       min(args.duration, 120.0)))))


if __name__ == "__main__":
    main()
