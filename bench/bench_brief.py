"""5 — The joint-meeting brief of the county demo year as HTML, DOCX and PDF
(``services.meetings.brief_data``: the data from the read models, then ``services.documents.brief.render``).

Measured in-process on the last meeting of the demo year; each figure is data assembly plus
rendering, median of the runs. Baseline: assembling the brief's data alone (no rendering),
so the ratio shows what the renderer adds. Skipped, and said so, while the demo year has no
meeting or the renderer is missing.
"""

from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

from bench import Bench, Ctx, Figure, Report, free_port, median, percentile, python, sqlite_url, subprocess_env

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
    url = sqlite_url(ctx.workdir, "brief")
    platform = Platform(Settings(database_url=url), group_commit=False)
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
        _, token = platform.tokens.issue(agency="education", role="lead", label="bench",
                                         known_agencies=platform.known_agencies())

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
    _over_http(ctx, report, url, token, meeting_id)
    return report


READERS = 8


def _get_brief(port: int, token: str, path: str) -> float:
    """Seconds until the brief's bytes arrived, following 202 正在生成 answers as a browser does."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        while True:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return time.perf_counter() - t0
            if resp.status != 202:
                raise RuntimeError(f"GET {path}: {resp.status}")
            time.sleep(float(resp.getheader("Retry-After") or 1))
    finally:
        conn.close()


def _serve(ctx: Ctx, url: str, name: str) -> tuple[object, int]:
    from bench.bench_api_write import Server

    port = free_port()
    env = subprocess_env(LIANXI_DATABASE_URL=url, LIANXI_LOG_LEVEL="warning", LIANXI_RATE_LIMIT_PER_MINUTE="0")
    return Server([python(), "-m", "services.cli", "serve", "--host", "127.0.0.1", "--port", str(port)], env, port,
                  ctx.workdir / f"server-{name}.log"), port


def _prerender(url: str) -> dict:  # type: ignore[type-arg]
    """What `lianxi scheduler` does every five minutes: the brief-prerender job, as of now."""
    from services.platform import Platform
    from services.scheduler import LianxiScheduler
    from services.settings import Settings

    platform = Platform(Settings(database_url=url), group_commit=False)
    try:
        with platform.write_engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM brief_renders")  # what the first server rendered
        return LianxiScheduler(platform).run_job("brief-prerender")
    finally:
        platform.close()


def _over_http(ctx: Ctx, report: Report, url: str, token: str, meeting_id: str) -> None:
    """The PDF brief through `lianxi serve`, READERS concurrent readers per round: the first round
    finds nothing rendered (every reader waits for the one render), the later ones are served
    from the cache. Then, on a fresh server and an emptied render store, the pre-render job runs
    (as `lianxi scheduler` does when a meeting's data changed) before the first round. Baseline:
    the same request for the HTML brief, warm."""
    pdf = f"/api/v1/meetings/{meeting_id}/brief?format=pdf"
    html = f"/api/v1/meetings/{meeting_id}/brief?format=html"
    server, port = _serve(ctx, url, "brief")
    try:
        with ThreadPoolExecutor(READERS) as pool:
            cold = sorted(pool.map(lambda _: _get_brief(port, token, pdf), range(READERS)))
            warm: list[float] = []
            for _ in range(ctx.runs):
                warm += pool.map(lambda _: _get_brief(port, token, pdf), range(READERS))
            _get_brief(port, token, html)
            base = sorted(pool.map(lambda _: _get_brief(port, token, html), range(READERS * ctx.runs)))
    finally:
        server.stop()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    job = _prerender(url)
    job_s = time.perf_counter() - t0
    server, port = _serve(ctx, url, "brief-prerendered")
    try:
        with ThreadPoolExecutor(READERS) as pool:
            ahead = sorted(pool.map(lambda _: _get_brief(port, token, pdf), range(READERS)))
    finally:
        server.stop()  # type: ignore[attr-defined]
    warm.sort()
    fig = report.add(Figure(case=f"PDF brief over HTTP, {READERS} concurrent readers, first round (nothing rendered)",
                            value=percentile(cold, 0.99), unit="s", baseline=percentile(base, 0.99),
                            target="", detail=f"p50 {percentile(cold, 0.5):.2f} s; baseline = HTML brief p99, warm; "
                                              "every reader waits for the one render"))
    fig3 = report.add(Figure(
        case=f"PDF brief over HTTP, {READERS} concurrent readers, first round after the pre-render job",
        value=percentile(ahead, 0.99), unit="s", baseline=percentile(base, 0.99), target="p99 < 3 s",
        detail=f"p50 {percentile(ahead, 0.5):.2f} s; a fresh server, its memory empty; the job took {job_s:.1f} s "
               f"({job.get('rendered')} rendered for {job.get('meetings')} meetings)"))
    fig3.met = fig3.value < 3
    fig2 = report.add(Figure(case=f"PDF brief over HTTP, {READERS} concurrent readers, {ctx.runs} later rounds",
                             value=percentile(warm, 0.99), unit="s", baseline=percentile(base, 0.99),
                             target="p99 < 3 s", detail=f"p50 {percentile(warm, 0.5) * 1000:.0f} ms"))
    fig2.met = fig2.value < 3
    ctx.log(f"  brief PDF over HTTP: cold p99 {fig.value:.2f} s, after the pre-render job p99 {fig3.value:.2f} s, "
            f"warm p99 {fig2.value * 1000:.0f} ms")


BENCH = Bench(name="brief", title="5. Brief for the county demo year (HTML, DOCX, PDF)", order=50, run=run)
