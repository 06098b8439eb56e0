"""Reproducible benchmarks: ``make bench`` / ``python -m bench.run [--quick] [NAME ...]``.

Every benchmark module is ``bench/bench_<name>.py`` and exposes ``BENCH = Bench(...)``;
``bench.run`` discovers them, so a new read model or service adds its benchmark by adding
a module (no edit to the runner). Each figure is the median of ``ctx.runs`` runs and is
printed with its ratio to a raw baseline measured in the same invocation.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_BASE = os.environ.get("LIANXI_BENCH_PG", os.environ.get("LIANXI_TEST_PG",
                                                             "postgresql://postgres@127.0.0.1:5432/test"))


@dataclass
class Ctx:
    quick: bool
    runs: int
    workdir: Path
    log: Callable[[str], None] = print

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full


@dataclass
class Figure:
    """One measured figure: ours against the raw baseline of the same run."""

    case: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    detail: str = ""  # p50/p99, counts, spread

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        assert self.baseline is not None
        return self.value / self.baseline


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # markdown lines: method, bottleneck, next step

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        return fig


@dataclass(frozen=True)
class Bench:
    name: str
    title: str
    order: int
    run: Callable[[Ctx], Report]
    description: str = ""


# -- measuring -----------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """min..max of the runs, so noise is visible next to the median."""
    if not values:
        return ""
    return f"runs {min(values):,.0f}..{max(values):,.0f}"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if value != value:  # NaN
        return "n/a"
    if unit in ("ms", "s", "GiB", "MiB") or abs(value) < 100:
        return f"{value:,.2f}{(' ' + unit) if unit else ''}"
    return f"{value:,.0f}{(' ' + unit) if unit else ''}"


# -- stores --------------------------------------------------------------------------------


def sqlite_url(workdir: Path, name: str) -> str:
    path = workdir / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return f"sqlite:///{path}"


def province_store(ctx: Ctx) -> Path | None:
    """The SQLite year the province benchmark (order 40) built in this invocation, if it ran:
    bench.run gives each benchmark its own directory under one per invocation."""
    return next((p for p in (ctx.workdir.parent / "province" / "province.db", ctx.workdir / "province.db")
                 if p.exists()), None)


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_BASE, connect_timeout=3):
            return True
    except Exception:
        return False


@contextmanager
def pg_schema_url(prefix: str = "lxb") -> Iterator[str]:
    """A throwaway PostgreSQL schema, dropped afterwards."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        yield f"{PG_BASE}?schema={schema}"
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def python() -> str:
    return sys.executable


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def time_v(cmd: Sequence[str], env: dict[str, str], timeout: float) -> tuple[float, float, str]:
    """Runs ``cmd`` under /usr/bin/time -v: (wall seconds, peak RSS GiB, stdout)."""
    time_bin = shutil.which("time") or "/usr/bin/time"
    if not Path(time_bin).exists():
        raise RuntimeError("/usr/bin/time is needed for peak RSS (apt-get install time)")
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        proc = subprocess.run([time_bin, "-v", "-o", tf.name, *cmd], env=env, cwd=ROOT, timeout=timeout,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        report = Path(tf.name).read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    rss_kb = 0
    for line in report.splitlines():
        if "Maximum resident set size" in line:
            rss_kb = int(line.rsplit(":", 1)[1])
    return wall, rss_kb / 1024 / 1024, proc.stdout
