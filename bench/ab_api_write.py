"""An interleaved A/B of the api-write row (16 connections, one ``lianxi serve``) between
checkouts of the code: ``python -m bench.ab_api_write --store pg --runs 5 ROOT [ROOT ...] [bare]``.

Each ROOT is a tree of this repository (say ``git archive HEAD | tar -x -C /tmp/a``); each gets
its own fresh store and server, and the runs go A, B, ..., A, B, ... so that the machine's
noise hits all alike (``bare`` is the baseline app). Per run it prints req/s, p50/p99, the
server's CPU per request and the busiest threads' share of it (``main`` is the event loop; on
PostgreSQL the next is usually the group committer), then the medians.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from bench import PG_BASE, free_port, median, python
from bench.bench_api_write import Server, _with_cpu


def _env(root: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": root, **extra}


def _thread_cpu(pid: int) -> dict[int, float]:
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _start(root: str, store: str, work: Path, i: int, schemas: list[str]) -> tuple[Server, str | None]:
    port = free_port()
    if root == "bare":
        cmd = [python(), "-m", "uvicorn", "--factory", "bench.bench_api_write:bare_app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning"]
        return Server(cmd, _env(str(Path(__file__).resolve().parent.parent)), port, work / "bare.log"), None
    if store == "pg":
        schemas.append(f"lxab_{uuid.uuid4().hex[:8]}")
        url = f"{PG_BASE}?schema={schemas[-1]}"
    else:
        db = work / f"ab{i}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{db}"
    prepare = f"from bench.bench_api_write import prepare_store; print(prepare_store({url!r}))"
    token = subprocess.run([python(), "-c", prepare], env=_env(root), cwd=root, capture_output=True, text=True,
                           check=True).stdout.strip().splitlines()[-1]
    cmd = [python(), "-m", "services.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = _env(root, LIANXI_DATABASE_URL=url, LIANXI_LOG_LEVEL="warning", LIANXI_RATE_LIMIT_PER_MINUTE="0")
    return Server(cmd, env, port, work / f"server{i}.log"), token


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.ab_api_write")
    ap.add_argument("--store", choices=["pg", "sqlite"], default="pg")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/lianxi-ab"))
    ap.add_argument("roots", nargs="+", help="source trees to compare, or 'bare'")
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    servers: list[tuple[str, Server, str | None]] = []
    schemas: list[str] = []
    try:
        for i, root in enumerate(args.roots):
            servers.append((root, *_start(root, args.store, args.workdir, i, schemas)))
        results: dict[str, list[dict[str, Any]]] = {root: [] for root in args.roots}
        for k in range(args.runs):
            for root, server, token in servers:
                server.settle()
                before = _thread_cpu(server.proc.pid)
                r = _with_cpu(server, token, args.conns, 1.0, 3.0)
                after, n = _thread_cpu(server.proc.pid), max(1, r["answered"])
                busiest = sorted(((after[t] - before.get(t, 0)) * 1000 / n, t) for t in after)[::-1][:3]
                threads = ", ".join(f"{'main' if t == server.proc.pid else t} {ms:.3f}" for ms, t in busiest if ms)
                results[root].append(r)
                print(f"{root} run {k}: {r['rps']:,.0f} req/s, p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f} ms, "
                      f"CPU {r['cpu_ms']:.3f} ms/req (threads: {threads}) {r['statuses']}", flush=True)
        for root, rs in results.items():
            print(f"median {root}: {median([r['rps'] for r in rs]):,.0f} req/s, "
                  f"p99 {median([r['p99_ms'] for r in rs]):.1f} ms, CPU {median([r['cpu_ms'] for r in rs]):.3f} ms/req")
    finally:
        for _, server, _ in servers:
            server.stop()
        if schemas:
            import psycopg

            with psycopg.connect(PG_BASE, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main(sys.argv[1:])
