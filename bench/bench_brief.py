"""5 — The joint-meeting brief of the county demo year as HTML, DOCX and PDF
(``services.meetings.brief_data``: the data from the read models, then ``services.documents.brief.render``).

Measured in-process on the last meeting of the demo year; each figure is data assembly plus
rendering, median of the runs. Baseline: assembling the brief's data alone (no rendering),
so the ratio shows what the renderer adds. Skipped, and said so, while the demo year has no
meeting or the renderer is missing.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from bench import Bench, Ctx, Figure, Report, median, sqlite_url

YEAR = 2024
TARGETS_S = {"html": 1.0, "docx": 2.0, "pdf": 5.0}


def run(ctx: Ctx) -> Report:
    from contracts.catalogue import default_catalogue
    from services.demo.year import run_demo
    from services.platform import Platform
    from services.settings import Settings

    report = Report()
    try:
        from projections.meetings import list_meetings
        from services.documents.brief import render
        from services.meetings.brief_data import brief_data
    except ImportError as e:
        report.notes.append(f"- Slot: the brief renderer is not available ({e}).")
        return report
    platform = Platform(Settings(database_url=sqlite_url(ctx.workdir, "brief")), group_commit=False)
    try:
        today = date(YEAR, 12, 31)
        run_demo(platform.app, default_catalogue(), schools=120, year=YEAR, seed=1,
                 now=datetime(YEAR + 1, 1, 10, tzinfo=UTC))
        platform.runner.catch_up()
        with platform.read_engine.connect() as conn:
            meetings = list_meetings(conn, YEAR)
        if not meetings:
            report.notes.append("- Slot: the demo year has no joint meeting, so there is no brief to render.")
            return report
        held = [m for m in meetings if m["status"] == "held"] or meetings
        meeting_id = str(held[-1]["meeting_id"])

        def data() -> dict:  # type: ignore[type-arg]
            with platform.read_engine.connect() as conn:
                out = brief_data(conn, meeting_id, today)
            assert out is not None
            return out

        base = []
        for _ in range(ctx.runs):
            t0 = time.perf_counter()
            data()
            base.append(time.perf_counter() - t0)
        for fmt, limit in TARGETS_S.items():
            times = []
            size = 0
            try:
                for _ in range(ctx.runs):
                    t0 = time.perf_counter()
                    size = len(render(data(), fmt))
                    times.append(time.perf_counter() - t0)
            except Exception as e:  # a missing font or library: report, keep going
                report.notes.append(f"- {fmt}: failed ({type(e).__name__}: {e}).")
                continue
            fig = report.add(Figure(case=f"brief {fmt.upper()} (last meeting of {YEAR})", value=median(times), unit="s",
                                    baseline=median(base), target=f"< {limit:g} s",
                                    detail=f"{size:,} bytes; baseline = assembling the data alone"))
            fig.met = fig.value < limit
            ctx.log(f"  brief {fmt}: {fig.value:.2f} s ({size:,} bytes)")
    finally:
        platform.close()
    return report


BENCH = Bench(name="brief", title="5. Brief for the county demo year (HTML, DOCX, PDF)", order=50, run=run)
