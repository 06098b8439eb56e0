"""Bounded loopback soak: ``make soak`` / ``python -m bench.soak [--clients 50] [--duration 120]``.

Starts ``lianxi serve`` on a temporary SQLite store (127.0.0.1, a free port), then runs about
50 concurrent clients for about 2 minutes with mixed reads and writes, and stops by itself.
Every request has an expected status (a refused cross-unit read expects 403); anything else,
or a transport error, is an error. Every 5 s it prints the server's RSS and the request
count; at the end the error count, latency percentiles per kind of request, and whether RSS
stayed flat after warm-up; then that every acknowledged write has its audit row. Exit
status 1 when there were errors, RSS kept growing, or a write lacks its audit row. (The
kill -9 loop that `make soak` runs next checks audit rows across crashes.)

The rate limit is off for the run (LIANXI_RATE_LIMIT_PER_MINUTE=0): each client reuses one
of a dozen credentials far faster than a person would (tests/test_limits.py covers it).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
UNITS = ["fire-rescue", "public-security", "market-supervision", "housing-construction", "health", "transport",
         "urban-management", "ecology-environment", "emergency-management", "meteorology"]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    count: int = 0
    written: set[str] = field(default_factory=set)  # ids of acknowledged duty-log writes
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.count += 1
            self.latencies[kind].append(seconds)
            if error is not None:
                self.errors.append(f"{kind}: {error}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def prepare(url: str, schools: int) -> tuple[dict[str, Any], list[str]]:
    """Catalogue, schools and tokens, written before the server starts."""
    from contracts.catalogue import default_catalogue
    from services.kernel.principal import Principal
    from services.platform import Platform
    from services.settings import Settings

    catalogue = default_catalogue()
    platform = Platform(Settings(database_url=url), group_commit=False)
    try:
        now = datetime.now(UTC)
        platform.app.register_catalogue(catalogue, now=now)
        lead = Principal(token_id="soak", agency=catalogue.lead.code, role="lead", label="soak")
        ids = [f"S{i:04d}" for i in range(1, schools + 1)]
        for sid in ids:
            platform.app.register_school(lead, school_id=sid, name=f"压测学校{sid}", town="满都拉图镇", kind="primary",
                                         boarding=False, canteen=True, school_bus=False, now=now)
        platform.runner.catch_up()
        known = platform.known_agencies()
        units = [u for u in UNITS if u in known]
        duties = {u.code: [d.code for d in u.duties] for u in catalogue.units.units if u.code in units}
        tokens = {
            "liaison": {u: platform.tokens.issue(agency=u, role="liaison", label=f"soak-{u}", known_agencies=known)[1]
                        for u in units},
            "lead": platform.tokens.issue(agency=catalogue.lead.code, role="lead", label="soak-lead",
                                          known_agencies=known)[1],
            "auditor": platform.tokens.issue(agency=catalogue.lead.code, role="auditor", label="soak-auditor",
                                             known_agencies=known)[1],
            "duties": duties,
        }
        return tokens, ids
    finally:
        platform.close()


def client_loop(base: str, n: int, tokens: dict[str, Any], schools: list[str], deadline: float,
                stats: Stats) -> None:
    rng = random.Random(n)
    units = sorted(tokens["liaison"])
    unit = units[n % len(units)]
    me = {"Authorization": f"Bearer {tokens['liaison'][unit]}"}
    lead = {"Authorization": f"Bearer {tokens['lead']}"}
    auditor = {"Authorization": f"Bearer {tokens['auditor']}"}
    stranger = units[(n + 1) % len(units)]
    sent: list[tuple[str, dict[str, Any]]] = []
    with httpx.Client(base_url=base, timeout=30.0) as http:
        while time.monotonic() < deadline:
            roll = rng.random()
            today = datetime.now(UTC).date().isoformat()
            if roll < 0.35:
                kind, expect = "write duty-log", {201}
                body = {"duty_code": rng.choice(tokens["duties"][unit]), "occurred_on": today,
                        "school_ids": rng.sample(schools, k=rng.randint(0, 2)), "summary": "压测履职记录",
                        "findings": {"count": rng.randint(0, 1), "text": "问题已整改"}}
                key = str(uuid.uuid4())
                sent.append((key, body))
                args: dict[str, Any] = {"method": "POST", "url": "/api/v1/duty-logs", "json": body,
                                        "headers": {**me, "Idempotency-Key": key}}
            elif roll < 0.40 and sent:
                kind, expect = "replay duty-log", {201}
                key, body = rng.choice(sent)
                args = {"method": "POST", "url": "/api/v1/duty-logs", "json": body,
                        "headers": {**me, "Idempotency-Key": key}}
            elif roll < 0.60:
                kind, expect = "read own ledger", {200}
                args = {"method": "GET", "url": f"/api/v1/agencies/{unit}/ledger", "headers": me}
            elif roll < 0.65:
                kind, expect = "read other ledger (refused)", {403}
                args = {"method": "GET", "url": f"/api/v1/agencies/{stranger}/ledger", "headers": me}
            elif roll < 0.77:
                kind, expect = "read schools", {200}
                args = {"method": "GET", "url": "/api/v1/schools", "params": {"limit": 50}, "headers": me}
            elif roll < 0.85:
                kind, expect = "read rectification board", {200}
                args = {"method": "GET", "url": "/api/v1/rectifications", "headers": me}
            elif roll < 0.95:
                kind, expect = "read event log (lead)", {200}
                args = {"method": "GET", "url": "/api/v1/events", "params": {"limit": 100}, "headers": lead}
            else:
                kind, expect = "read audit trail (auditor)", {200}
                args = {"method": "GET", "url": "/api/v1/audit", "params": {"limit": 100}, "headers": auditor}
            started = time.perf_counter()
            error = None
            try:
                r = http.request(**args)
                if r.status_code not in expect:
                    error = f"{r.status_code} {r.text[:200]}"
                elif kind == "write duty-log":
                    with stats.lock:
                        stats.written.add(str(r.json()["id"]))
            except httpx.HTTPError as e:
                error = f"{type(e).__name__}: {e}"
            stats.record(kind, time.perf_counter() - started, error)


def writes_without_audit_row(url: str, written: set[str]) -> set[str]:
    import sqlalchemy as sa

    from services.security.audit import audit_log

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            audited = set(conn.execute(sa.select(audit_log.c.resource_id).where(
                audit_log.c.action == "POST /api/v1/duty-logs", audit_log.c.outcome == "ok")).scalars())
    finally:
        engine.dispose()
    return written - audited


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--schools", type=int, default=30)
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="lianxi-soak-"))
    url = f"sqlite:///{workdir / 'lianxi.db'}"
    port = free_port()
    env = {**os.environ, "LIANXI_DATABASE_URL": url, "LIANXI_RATE_LIMIT_PER_MINUTE": "0",
           "LIANXI_LOG_LEVEL": "WARNING"}
    print(f"soak: {args.clients} clients, {args.duration:g} s, SQLite at {workdir}, port {port}")
    tokens, schools = prepare(url, args.schools)
    log = (workdir / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "--host", "127.0.0.1", "--port",
                               str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    stats = Stats()
    samples: list[tuple[float, float, int]] = []
    try:
        ready_by = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > ready_by:
                print((workdir / "server.log").read_text()[-3000:])
                raise SystemExit("soak: the server did not become ready")
            time.sleep(0.2)
        start = time.monotonic()
        deadline = start + args.duration
        threads = [threading.Thread(target=client_loop, args=(base, i, tokens, schools, deadline, stats), daemon=True)
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        print(f"{'t (s)':>6} {'RSS (MB)':>9} {'requests':>9} {'errors':>7}")
        while any(t.is_alive() for t in threads):
            time.sleep(min(args.sample, max(0.1, deadline - time.monotonic() + 0.5)))
            samples.append((time.monotonic() - start, rss_mb(server.pid), stats.count))
            print(f"{samples[-1][0]:6.0f} {samples[-1][1]:9.1f} {samples[-1][2]:9d} {len(stats.errors):7d}",
                  flush=True)
        for t in threads:
            t.join(timeout=60)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    elapsed = samples[-1][0] if samples else args.duration
    every = [x for v in stats.latencies.values() for x in v]
    print(f"\n{stats.count} requests in {elapsed:.0f} s ({stats.count / max(elapsed, 1e-9):.0f}/s), "
          f"{len(stats.errors)} errors")
    print(f"{'kind':<30} {'n':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, values in sorted(stats.latencies.items()):
        print(f"{kind:<30} {len(values):7d} {pct(values, .5):8.1f} {pct(values, .95):8.1f} {pct(values, .99):8.1f} "
              f"{max(values) * 1000:8.1f}")
    if every:
        print(f"{'all':<30} {len(every):7d} {pct(every, .5):8.1f} {pct(every, .95):8.1f} {pct(every, .99):8.1f} "
              f"{max(every) * 1000:8.1f}")
    for e in stats.errors[:10]:
        print("error:", e)
    # Flat: after a warm-up (the first quarter), the last samples sit within 15 % (or 40 MB)
    # of the warm-up level.
    flat = True
    if len(samples) >= 4:
        warm = [rss for t, rss, _ in samples if t >= elapsed / 4][:3] or [samples[0][1]]
        tail = [rss for _, rss, _ in samples[-3:]]
        base_rss, end_rss = statistics.mean(warm), statistics.mean(tail)
        growth = end_rss - base_rss
        flat = growth <= max(0.15 * base_rss, 40.0)
        print(f"RSS after warm-up {base_rss:.1f} MB, at the end {end_rss:.1f} MB ({growth:+.1f} MB): "
              f"{'flat' if flat else 'GROWING'}")
    unaudited = writes_without_audit_row(url, stats.written)
    print(f"audit rows: {len(stats.written) - len(unaudited)} of {len(stats.written)} acknowledged writes have one")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if not stats.errors and flat and not unaudited else 1


if __name__ == "__main__":
    sys.exit(main())
