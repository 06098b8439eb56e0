"""7 — The yearly responsibility ledger at province scale: ``live_ledger`` of every unit for
the demo year, in-process on SQLite (the read the ledger page and GET /ledger make).

The live ledger counts distinct schools per duty from the month rollup
(``rm_ledger_school_months``). Baseline, in the same run on the same store: the as-of ledger
at the same day, which gives the same figures by expanding every day row's JSON array of
schools (the live ledger's path before the rollup), so the ratio is what the rollup buys.

Scale: 1,000 schools (``--quick``: 120). The issue's target is p99 < 200 ms at 20,000
schools; the distinct count grows with the schools a unit covers, so the note extrapolates
linearly from this scale and says so.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from bench import Bench, Ctx, Figure, Report, percentile, sqlite_url

YEAR = 2024


def run(ctx: Ctx) -> Report:
    from contracts.catalogue import default_catalogue
    from projections.ledger import asof_ledger, live_ledger
    from projections.periods import Period
    from services.demo.year import run_demo
    from services.platform import Platform
    from services.settings import Settings

    report = Report()
    schools = ctx.scale(1000, 120)
    platform = Platform(Settings(database_url=sqlite_url(ctx.workdir, "ledger_year")), group_commit=False)
    try:
        t0 = time.perf_counter()
        run_demo(platform.app, default_catalogue(), schools=schools, year=YEAR, seed=1,
                 now=datetime(YEAR + 1, 1, 10, tzinfo=UTC))
        platform.runner.catch_up()
        built = time.perf_counter() - t0
        units = [u.code for u in default_catalogue().units.units]
        period, today = Period.year_of(date(YEAR, 6, 1)), date(YEAR + 1, 1, 10)
        live: list[float] = []
        old: list[float] = []
        with platform.read_engine.connect() as conn:
            for _ in range(ctx.runs):
                for unit in units:  # interleaved: the same load on both
                    t = time.perf_counter()
                    a = live_ledger(conn, unit, period, today)
                    live.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    b = asof_ledger(conn, unit, period, today)
                    old.append((time.perf_counter() - t) * 1000)
                    if [d["schools_covered"] for d in a["duties"]] != [d["schools_covered"] for d in b["duties"]]:
                        raise RuntimeError(f"{unit}: the rollup's coverage differs from the day rows'")
    finally:
        platform.close()
    live.sort()
    old.sort()
    p99 = percentile(live, 0.99)
    fig = report.add(Figure(
        case=f"live yearly ledger, every unit, {schools:,} schools", value=p99, unit="ms",
        baseline=percentile(old, 0.99), target="p99 < 200 ms at 20,000 schools",
        detail=f"p50 {percentile(live, 0.5):.1f} ms; {len(live)} reads; baseline = the same figures from the day "
               f"rows' JSON (as-of at the same day); extrapolated x{20000 / schools:.0f} to 20,000 schools: "
               f"~{p99 * 20000 / schools:.0f} ms"))
    fig.met = p99 * 20000 / schools < 200
    report.notes.append(f"- Store: demo year {YEAR} with {schools:,} schools, built and projected in {built:.0f} s. "
                        "The 20,000-school figure is a linear extrapolation from this scale (not measured).")
    ctx.log(f"  ledger-year: p99 {p99:.1f} ms (baseline {fig.baseline:.1f} ms) at {schools} schools")
    return report


BENCH = Bench(name="ledger-year", title="7. Yearly ledger at province scale (month rollup)", order=65, run=run)
