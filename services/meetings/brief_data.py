"""The joint-meeting brief's data (联席会议简报), read from the read models.

One plain dict per meeting: the units' activity and on-time rates, overdue and escalated
items, critical hazards, campaigns, warning responses, proposals, decisions and the follow-up
of the previous meeting's tasks, each listed item with a reference number and the event ids
behind it. Codes (statuses, severities, phase states) stay codes: services/documents/brief.py
names them from documents/labels.py when it renders HTML, PDF or DOCX.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa

from projections import ledger
from projections.catalogue_view import list_agencies, list_schools
from projections.meetings import assemble_agenda, list_resolutions, task_stats
from projections.rectification_board import unit_stats
from projections.warning_response import response_by_recipient, warnings_between
from services.documents import labels

ISSUER = "旗校园安全局际联席会议办公室"


class _Refs:
    """Reference numbers for listed items and the event ids behind each."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, label: str, event_ids: Sequence[str], href: str | None = None, record: str | None = None) -> int:
        """``record``: the rectification or task whose evidence the annex shows."""
        self.items.append({"n": len(self.items) + 1, "label": label, "event_ids": list(event_ids), "href": href,
                           "record": record})
        return len(self.items)


def build_brief(read_engine: sa.Engine, catch_up: Callable[[], object], meeting_id: str,
                today: date, positions: Callable[[Sequence[str]], dict[str, int]] | None = None,
                evidence: Callable[[Sequence[str]], dict[str, dict[str, Any]]] | None = None,
                ) -> dict[str, Any] | None:
    """The brief of one meeting as of ``today``, after ``catch_up`` brings the read models up to
    the log's head (the platform's ``runner.catch_up``); None for an unknown meeting.

    ``positions`` (the platform's ``event_positions``) gives each cited event its log
    position, so the annex points into the event log people can browse (/events shows
    positions); each ref's ``events`` lists id and position (None when not found).
    ``evidence`` (the platform's ``record_thumbnails``) gives each listed rectification and task
    its photos and files for the annex: a ref's ``evidence`` is ``{"items": [...], "more": n}``."""
    catch_up()
    with read_engine.connect() as conn:
        data = brief_data(conn, meeting_id, today)
    if data is not None:
        cited = list(dict.fromkeys(e for r in data["refs"] for e in r["event_ids"]))
        found = positions(cited) if positions is not None else {}
        for r in data["refs"]:
            r["events"] = [{"id": e, "position": found.get(e)} for e in dict.fromkeys(r["event_ids"])]
        files = evidence([r["record"] for r in data["refs"] if r["record"]]) if evidence is not None else {}
        for r in data["refs"]:
            r["evidence"] = files.get(r["record"] or "", {"items": [], "more": 0})
    return data


def brief_data(conn: sa.Connection, meeting_id: str, today: date) -> dict[str, Any] | None:
    agenda = assemble_agenda(conn, meeting_id, today)
    if agenda is None:
        return None
    m = agenda["meeting"]
    units: dict[str, str] = agenda["units"]
    start, end = date.fromisoformat(agenda["period_start"]), date.fromisoformat(agenda["period_end"])
    as_of = date.fromisoformat(agenda["as_of"])
    refs = _Refs()
    name = units.get
    # People read schools by name (the code stays in the data for the API and the appendix).
    school_names = {r["school_id"]: r["name"] for r in list_schools(conn, after=None, limit=100_000)}

    def school(code: str) -> str:
        return str(school_names.get(code, code))

    activity = ledger.activity(conn, start, min(end, as_of))
    unit_acks = {r["recipient"]: r for r in response_by_recipient(conn, "unit", start.isoformat(), end.isoformat())}
    blind = {b["unit"]: b["count"] for b in agenda["blind_spots"]}
    # Overdue and escalated per unit as in section 三 (the board as of the brief's day), so the
    # table and the list agree even for a brief rendered after the meeting.
    late = {g["unit"]: (g["count"], g["escalated"]) for g in agenda["overdue_rectifications"]}
    unit_rows = []
    for a in list_agencies(conn):
        code = a["code"]
        rect = unit_stats(conn, code, today=as_of, period_start=start, period_end=end)
        tasks = task_stats(conn, code, as_of, start, end)
        act = activity.get(code, {"records": 0, "findings": 0, "schools": 0})
        closed = rect["closed"] + tasks["completed"]
        on_time = rect["closed_on_time"] + tasks["completed_on_time"]
        ack = unit_acks.get(code)
        unit_rows.append({
            "code": code, "name": a["name"], **act,
            "rect_open": rect["open"], "rect_overdue": late.get(code, (0, 0))[0],
            "rect_escalated": late.get(code, (0, 0))[1],
            "rect_closed": rect["closed"], "tasks_open": tasks["open"], "tasks_overdue": tasks["overdue"],
            "closed_total": closed, "on_time_rate": round(on_time / closed, 4) if closed else None,
            "warnings_received": ack["received"] if ack else 0,
            "warnings_acknowledged": ack["acknowledged"] if ack else 0,
            "blind_spots": blind.get(code, 0),
        })

    overdue_groups = []
    for g in agenda["overdue_rectifications"]:
        items = []
        for it in g["items"]:
            ref = refs.add(f"整改事项 {it['id'][:8]}", it["event_ids"], f"/api/v1/rectifications/{it['id']}", it["id"])
            items.append({**it, "ref": ref, "school_name": school(it["school_id"])})
        overdue_groups.append({**g, "name": name(g["unit"], g["unit"] or "未交办"), "items": items})
    overdue_tasks = []
    for t in agenda["follow_up"]["items"]:
        if t["overdue"]:
            ref = refs.add(f"决议任务 {t['task_id'][:8]}", t["event_ids"], f"/api/v1/tasks/{t['task_id']}",
                           t["task_id"])
            overdue_tasks.append({**t, "ref": ref, "name": name(t["unit"], t["unit"])})
    overdue_tasks.sort(key=lambda t: (-t["days_overdue"], t["task_id"]))
    critical = []
    for h in agenda["critical_hazards"]:
        ref = refs.add(f"重大隐患 {h['id'][:8]}", h["event_ids"], f"/api/v1/rectifications/{h['id']}", h["id"])
        critical.append({**h, "ref": ref, "unit_name": name(h["lead_unit"] or "", "待交办"),
                         "school_name": school(h["school_id"])})

    campaigns = []
    for c in agenda["campaigns"]:
        ref = refs.add(f"专项整治 {c['name']}", c["event_ids"], f"/api/v1/campaigns/{c['campaign_id']}")
        phases = [{**p, "problems": sum(p["problems_by_aspect"].values())} for p in c["phases"]]
        current = next((p["name"] for p in phases if p["code"] == c["current_phase"]), "—")
        campaigns.append({**c, "ref": ref, "phases": phases, "current_name": current,
                          "behind_names": [school(s) for s in c["behind_schools"]]})

    all_warnings = warnings_between(conn, start.isoformat(), end.isoformat())
    flagged = []
    for w in agenda["warnings"]:
        ref = refs.add(f"预警 {w['title']}", w["event_ids"] + [s["event_id"] for s in w["slow"]],
                       f"/api/v1/warnings/{w['warning_id']}")
        flagged.append({**w, "ref": ref,
                        "unacked_units": [name(u["recipient"], u["recipient"]) for u in w["unacknowledged"]
                                          if u["kind"] == "unit"],
                        "unacked_schools": [school(u["recipient"]) for u in w["unacknowledged"]
                                            if u["kind"] == "school"],
                        "slow_count": len(w["slow"])})
    recipients = sum(w["recipients"] for w in all_warnings)
    acked = sum(w["acknowledged"] for w in all_warnings)
    latencies = [w["median_latency_minutes"] for w in all_warnings if w["median_latency_minutes"] is not None]
    warning_summary = {
        "count": len(all_warnings), "recipients": recipients, "acknowledged": acked,
        "rate": round(acked / recipients, 4) if recipients else None,
        "median_latency_minutes": sorted(latencies)[len(latencies) // 2] if latencies else None,
        "escalated": sum(1 for w in all_warnings if w["escalated"]),
        "slow": sum(len(w["slow"]) for w in all_warnings),
    }

    proposals = []
    for p in agenda["proposals"]:
        ref = refs.add(f"提请事项 {p['title']}", [p["item_id"], *p["related_event_ids"]])
        proposals.append({**p, "ref": ref, "unit_name": name(p["proposed_by"], p["proposed_by"])})
    decisions = []
    for r in list_resolutions(conn, meeting_id):
        ref = refs.add(f"议定事项第{labels.chinese_number(r['seq'])}项",
                       [r["resolution_id"], *[t["task_id"] for t in r["tasks"]]])
        decisions.append({**r, "ref": ref, "tasks": [{**t, "name": name(t["unit"], t["unit"])} for t in r["tasks"]]})

    fu = agenda["follow_up"]
    follow = []
    for t in fu["items"]:
        ref = refs.add(f"决议任务 {t['task_id'][:8]}", t["event_ids"], f"/api/v1/tasks/{t['task_id']}", t["task_id"])
        follow.append({**t, "ref": ref, "name": name(t["unit"], t["unit"])})

    blind_rows = [{"name": name(b["unit"], b["unit"]), "count": b["count"],
                   "duties": [d["text"] or d["duty_code"] for d in b["duties"]]} for b in agenda["blind_spots"]]
    overdue_count = sum(g["count"] for g in agenda["overdue_rectifications"])
    return {
        "issuer": ISSUER,
        "meeting": m,
        "convener": name(m["convened_by"], m["convened_by"]),
        "number": m["number"],
        "date": m["held_on"] or m["scheduled_for"],
        "period_start": agenda["period_start"], "period_end": agenda["period_end"], "as_of": agenda["as_of"],
        "attendance": [name(u, u) for u in m["attendance"]], "absent": [name(u, u) for u in m["absent"]],
        "units": unit_rows,
        "totals": {
            "records": sum(u["records"] for u in unit_rows),
            "findings": sum(u["findings"] for u in unit_rows),
            "overdue": overdue_count,
            "escalated": sum(g["escalated"] for g in agenda["overdue_rectifications"]),
            "overdue_tasks": len(overdue_tasks),
            "critical": len(critical),
        },
        "overdue_groups": overdue_groups,
        "overdue_tasks": overdue_tasks,
        "critical": critical,
        "campaigns": campaigns,
        "warning_summary": warning_summary,
        "warnings": flagged,
        "blind_spots": blind_rows,
        "proposals": proposals,
        "decisions": decisions,
        "follow_up": {**fu, "items": follow},
        "refs": refs.items,
        "charts": {
            "activity": {"title": "各成员单位本期履职记录数", "unit": "条",
                         "rows": [(u["name"], float(u["records"]), str(u["records"])) for u in unit_rows],
                         "max": float(max([u["records"] for u in unit_rows] + [1])), "color": "#b22222"},
            "on_time": {"title": "各成员单位整改及决议任务按期完成率", "unit": "%",
                        "rows": [(u["name"], (u["on_time_rate"] or 0.0) * 100,
                                  "—" if u["on_time_rate"] is None else f"{u['on_time_rate'] * 100:.0f}%")
                                 for u in unit_rows],
                        "max": 100.0, "color": "#1f4e79"},
        },
    }
