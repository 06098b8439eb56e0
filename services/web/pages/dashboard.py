"""The lead's dashboard (总览): every unit's rectifications, tasks, campaigns and warnings this year."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from projections.campaign_progress import campaigns_overview
from projections.meetings import list_meetings, task_stats
from projections.periods import Period
from projections.rectification_board import unit_stats
from projections.warning_response import response_by_recipient
from services.api.deps import PlatformDep, today_of
from services.documents import charts
from services.documents.charts import Bar, percent
from services.web.base import SessionDep, render, require_overview, unit_names

router = APIRouter(include_in_schema=False)


def dashboard_data(conn: sa.Connection, today: date, names: dict[str, str]) -> dict[str, Any]:
    year = Period.year_of(today)
    start, end = year.start.isoformat(), today.isoformat()
    units: list[dict[str, Any]] = []
    for code, name in names.items():
        rect = unit_stats(conn, code, today=today, period_start=year.start, period_end=year.end)
        tasks = task_stats(conn, code, today, year.start, year.end)
        units.append({"code": code, "name": name, "rect": rect, "tasks": tasks})
    on_time = [Bar(u["name"], (u["rect"]["on_time_rate"],),
                   (f"{percent(u['rect']['on_time_rate'])}（{u['rect']['closed_on_time']}/{u['rect']['closed']}）"
                    if u["rect"]["closed"] else "本年尚无销号"))
               for u in units if u["rect"]["closed"] or u["rect"]["open"]]
    late = []
    for u in units:
        overdue = u["rect"]["overdue"] + u["tasks"]["overdue"]
        escalated = u["rect"]["escalated"] + u["tasks"]["escalated"]
        if overdue or escalated:
            split = f"整改 {u['rect']['overdue']}、任务 {u['tasks']['overdue']}"
            late.append(Bar(u["name"], (overdue, escalated), f"逾期 {overdue}（{split}）· 升级 {escalated}"))
    late.sort(key=lambda b: (-(b.values[0] or 0), -(b.values[1] or 0), b.label))
    campaigns = campaigns_overview(conn, today)
    phases = []
    for c in campaigns:
        # The last phase whose deadline has passed beside the phase under way.
        ps = c["phase_status"]
        done = next((x for x in reversed(ps) if x["state"] == "closed"), None)
        now = next((x for x in ps if x["state"] == "open"), None)
        # A phase not yet started is named as such, never drawn as "0%, all schools behind".
        upcoming = next((x for x in ps if x["state"] == "not-started"), None)
        parts = [f"{x['name'].split('、')[0]} {percent(x['completion'])}" for x in (done, now) if x is not None]
        if done is not None or now is not None:
            behind = (now or done or {}).get("missed", 0) + (now or done or {}).get("pending", 0)
            parts[-1] += f"（未完成 {behind} 所）"
        if now is None and upcoming is not None:
            starts = date.fromisoformat(upcoming["starts"])
            parts.append(f"{upcoming['name'].split('、')[0]} 未开始（{starts.month}月{starts.day}日起）")
        if not parts:
            continue
        phases.append(Bar(c["name"], (done["completion"] if done else None, now["completion"] if now else None),
                          "；".join(parts)))
    response = response_by_recipient(conn, "unit", start, end)
    warn = []
    for r in sorted(response, key=lambda r: (r["rate"] if r["rate"] is not None else -1, r["recipient"])):
        median = r["median_latency_minutes"]
        warn.append(Bar(names.get(r["recipient"], r["recipient"]), (r["rate"],),
                        f"{percent(r['rate'])}（{r['acknowledged']}/{r['received']}）"
                        + (f" · 中位 {median:.0f} 分钟" if median is not None else "")))
    totals = {
        "open": sum(u["rect"]["open"] for u in units), "overdue": sum(u["rect"]["overdue"] for u in units),
        "escalated": sum(u["rect"]["escalated"] for u in units),
        "tasks_open": sum(u["tasks"]["open"] for u in units),
        "tasks_overdue": sum(u["tasks"]["overdue"] for u in units),
        "campaigns": len(campaigns),
    }
    return {
        "unit_rows": units, "totals": totals, "year": year, "campaigns": campaigns,
        "charts": {
            "on_time": charts.hbars(f"{year.label} 年各单位整改按期销号率", on_time, maximum=1.0,
                                    empty="本年尚无整改事项"),
            "late": charts.hbars("各单位逾期与升级督办事项（整改 + 决议任务）", late, series=("逾期", "升级督办"),
                                 empty="目前没有逾期事项"),
            "campaigns": charts.hbars(f"{year.label} 年专项整治各阶段完成率", phases, maximum=1.0,
                                      series=("已截止阶段", "进行中阶段"),
                                      empty="本年尚未启动专项整治"),
            "warnings": charts.hbars(f"{year.label} 年各单位预警签收率", warn, maximum=1.0, empty="本年尚无预警"),
        },
    }


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    require_overview(session)
    names = unit_names(platform)
    with platform.read_engine.connect() as conn:
        data = dashboard_data(conn, today_of(platform), names)
        upcoming = [m for m in list_meetings(conn) if m["status"] == "scheduled"]
    return render(request, "dashboard.html.j2", session, units=names, upcoming=upcoming, **data)
