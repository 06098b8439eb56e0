"""4 — Province year: ``lianxi demo --schools 20000`` then ``lianxi review``, each under
``/usr/bin/time -v`` (wall time and peak RSS), through the real CLI entry point.

``lianxi demo`` writes the year through the bulk path and then catches every read model
up, so its time is generation + append + projection. One run at full size (it takes
minutes; a median of five would not fit the suite's time budget); ``--quick`` uses 1,000
schools; LIANXI_BENCH_PROVINCE_SCHOOLS overrides either. There is no raw baseline for an
end-to-end command; bench 2 and 3 measure its two halves against theirs.

``lianxi review`` is measured when the CLI has it (``REVIEW_ARGS``; adjust them when the
command lands).
"""

from __future__ import annotations

import os
import re
import subprocess

from bench import Bench, Ctx, Figure, Report, python, sqlite_url, subprocess_env, time_v

YEAR = 2024
REVIEW_ARGS = ["review", "--year", str(YEAR)]
TIMEOUT_S = 40 * 60


# A full-size run by hand (2026-11-22, this 2-core machine, load average ~10 from parallel
# work, the demo niced): the figures RESULTS.md cannot get from a suite run while the demo
# fails at province size. Kept as text so the next full run can be compared with it.
REFERENCE = [
    "- Hand run at full size (load average ~10 from other work, demo niced, so wall times are upper bounds): "
    "`lianxi demo --schools 20000 --year 2024` wrote 6,973,973 events (5,558,587 duty records, 880,166 "
    "compliance records, 111,860 self-checks, ...) and then failed in services/demo_meetings.py with "
    "'an inspection covers at most 500 schools' (a campaign inspection samples more than "
    "MAX_SCHOOLS_PER_INSPECTION schools once a county has ~2,000 schools), so read models were never caught "
    "up. 44 min wall at 19% of a core; CPU 403 s user + 112 s system (about 13.5k events per CPU-second "
    "end to end); peak RSS 1.35 GB, reached in services/demo_logistics.py, which plans the whole year's "
    "actions in memory (the duty-record part streams month by month and stayed at ~0.64 GB: one month of "
    "planned records).",
    "- `lianxi review --year 2024` on that 7.0M-event store: 14 min 55 s wall niced under the same load, "
    "228 s user CPU, peak RSS 1.11 GiB: within the memory target, over the 120 s target by CPU alone "
    "(it first links the hash chain over every event, then replays the year).",
    "- After that run: the demo splits joint inspections at MAX_SCHOOLS_PER_INSPECTION (services/demo_meetings.py); "
    "`lianxi demo --schools 3200 --year 2025` (above the ~3,000-school point where it failed) then completed: "
    "1,128,629 events, 3 min 01 s wall, peak RSS 0.29 GiB (`/usr/bin/time -v`, load ~5).",
    "- The review's hash-chain linking was made ~3x faster afterwards (services/hashchain.py raw path, also used by "
    "`lianxi demo`): `lianxi review --year 2025` over a 6,781,246-event store took 43.2 s wall, 42.5 s CPU, "
    "peak RSS 681 MiB on a quiet machine (74-105 s wall under load 5-12): both targets met.",
]


def cli_has(command: str) -> bool:
    out = subprocess.run([python(), "-m", "services.cli", "--help"], env=subprocess_env(), capture_output=True,
                         text=True, timeout=60)
    return re.search(rf"^\s*[│|]?\s*{re.escape(command)}\s", out.stdout, re.MULTILINE) is not None


def run(ctx: Ctx) -> Report:
    report = Report()
    report.notes.extend(REFERENCE)
    schools = int(os.environ.get("LIANXI_BENCH_PROVINCE_SCHOOLS") or ctx.scale(20_000, 1_000))
    url = sqlite_url(ctx.workdir, "province")
    env = subprocess_env(LIANXI_DATABASE_URL=url, LIANXI_LOG_LEVEL="warning")
    demo = [python(), "-m", "services.cli", "demo", "--schools", str(schools), "--year", str(YEAR)]
    try:
        wall, rss, out = time_v(demo, env, timeout=TIMEOUT_S)
    except RuntimeError as e:
        # Keep the report (and its notes): the failure is a finding, and a review of what
        # was written still says something.
        failed = report.add(Figure(case=f"lianxi demo --schools {schools:,}", value=float("nan"), unit="s",
                                   target="completes", detail=f"failed: {str(e)[-300:]}"))
        failed.met = False
        ctx.log(f"  province demo failed: {str(e)[-200:]}")
        _review(ctx, report, env)
        return report
    m = re.search(r"(\d+) events in the log", out)
    events = int(m.group(1)) if m else 0
    rate = events / wall if wall else 0.0
    fig = report.add(Figure(case=f"lianxi demo --schools {schools:,}", value=wall, unit="s",
                            target="streams with bounded memory",
                            detail=f"{events:,} events ({rate:,.0f} ev/s incl. catching up every read model); "
                                   f"peak RSS {rss:.2f} GiB; one run"))
    fig.met = None
    rss_fig = report.add(Figure(case="lianxi demo peak RSS", value=rss, unit="GiB", target="bounded (< 1.5 GiB)",
                                detail=f"{schools:,} schools"))
    rss_fig.met = rss < 1.5
    ctx.log(f"  province demo: {schools} schools, {events:,} events, {wall:.0f} s, peak RSS {rss:.2f} GiB")
    db_bytes = sum(p.stat().st_size for p in ctx.workdir.glob("province.db*"))
    report.notes.append(f"- The demo year holds {events:,} events for {schools:,} schools "
                        f"(store {db_bytes / 2**30:.2f} GiB on disk).")
    _review(ctx, report, env)
    return report


def _review(ctx: Ctx, report: Report, env: dict[str, str]) -> None:
    if not cli_has("review"):
        report.notes.append("- `lianxi review` does not exist yet: its slot is `REVIEW_ARGS` in "
                            "bench/bench_province.py (target < 120 s, peak RSS < 1.5 GiB).")
        return
    try:
        wall, rss, _ = time_v([python(), "-m", "services.cli", *REVIEW_ARGS], env, timeout=TIMEOUT_S)
    except RuntimeError as e:
        report.notes.append(f"- `lianxi {' '.join(REVIEW_ARGS)}` failed: {str(e)[-300:]}")
        return
    fig = report.add(Figure(case=f"lianxi {' '.join(REVIEW_ARGS)}", value=wall, unit="s",
                            target="< 120 s, peak RSS < 1.5 GiB", detail=f"peak RSS {rss:.2f} GiB; one run"))
    fig.met = wall < 120 and rss < 1.5
    ctx.log(f"  province review: {wall:.0f} s, peak RSS {rss:.2f} GiB")


BENCH = Bench(name="province", title="4. Province year (lianxi demo --schools 20000, lianxi review)", order=40,
              run=run)
