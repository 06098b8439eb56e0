"""Campaign progress (专项整治进度): campaign x phase x school x aspect.

A school completes the self-check phase with its self-check, and the inspection and
evaluation phases when a joint inspection of that phase covers it. Rows are append-only
(one per event and school, one per event, school and aspect), so the figures are
aggregates and a rebuild gives the same answer whatever the batch boundaries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from events.stored import CAMPAIGN, JOINT_INSPECTION, PHASE_REMINDER, SELF_CHECK, event_topic
from projections.base import LoggedEvent, Projection, insert_ignore, metadata

campaigns = sa.Table(
    "rm_campaigns",
    metadata,
    sa.Column("campaign_id", sa.String(36), primary_key=True),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("template", sa.String(60), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("hazard_category", sa.String(60), nullable=False),
    sa.Column("phases", sa.Text, nullable=False),  # JSON [{code, name, starts, deadline}]
    sa.Column("aspects", sa.Text, nullable=False),  # JSON [{code, text}]
    sa.Column("school_count", sa.Integer, nullable=False),
    sa.Column("launched_on", sa.String(10), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index("ix_rm_campaigns_year", "year"),
)

scope = sa.Table(
    "rm_campaign_scope",
    metadata,
    sa.Column("campaign_id", sa.String(36), primary_key=True),
    sa.Column("school_id", sa.String(40), primary_key=True),
)

# One row per (event, school): the school did its part of a phase on that day.
school_steps = sa.Table(
    "rm_campaign_school_steps",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("school_id", sa.String(40), primary_key=True),
    sa.Column("campaign_id", sa.String(36), nullable=False),
    sa.Column("phase", sa.String(60), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # self-check | inspection
    sa.Column("occurred_on", sa.String(10), nullable=False),
    sa.Column("problems", sa.Integer, nullable=False),
    sa.Index("ix_rm_campaign_school_steps_phase", "campaign_id", "phase"),
)

# One row per (event, school, aspect): pass, or how many problems were found.
aspect_results = sa.Table(
    "rm_campaign_aspect_results",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("school_id", sa.String(40), primary_key=True),
    sa.Column("aspect", sa.String(60), primary_key=True),
    sa.Column("campaign_id", sa.String(36), nullable=False),
    sa.Column("phase", sa.String(60), nullable=False),
    sa.Column("problems", sa.Integer, nullable=False),
    sa.Index("ix_rm_campaign_aspect_results_phase", "campaign_id", "phase"),
)

inspections = sa.Table(
    "rm_campaign_inspections",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("campaign_id", sa.String(36), nullable=False),
    sa.Column("phase", sa.String(60), nullable=False),
    sa.Column("occurred_on", sa.String(10), nullable=False),
    sa.Column("units", sa.Text, nullable=False),  # JSON list
    sa.Column("school_count", sa.Integer, nullable=False),
    sa.Column("findings", sa.Integer, nullable=False),
    sa.Index("ix_rm_campaign_inspections_campaign", "campaign_id"),
)

reminders = sa.Table(
    "rm_campaign_reminders",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("campaign_id", sa.String(36), nullable=False),
    sa.Column("phase", sa.String(60), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("occurred_on", sa.String(10), nullable=False),
    sa.Column("school_count", sa.Integer, nullable=False),
)


def progress_rows(events: Sequence[LoggedEvent]) -> dict[str, list[dict[str, Any]]]:
    """Pure policy: the rows a batch adds."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        d = e.data
        if e.type == "CampaignLaunched":
            out["campaigns"].append({
                "campaign_id": d["event_id"], "year": d["year"], "template": d["template"], "name": d["name"],
                "hazard_category": d["hazard_category"], "phases": orjson.dumps(d["phases"]).decode(),
                "aspects": orjson.dumps(d["aspects"]).decode(), "school_count": len(d["school_ids"]),
                "launched_on": d["occurred_on"], "position": e.position,
            })
            out["scope"].extend({"campaign_id": d["event_id"], "school_id": s} for s in d["school_ids"])
        elif e.type == "SelfCheckSubmitted":
            total = sum(len(r["problems"]) for r in d["results"])
            out["school_steps"].append({
                "event_id": d["event_id"], "school_id": d["school_id"], "campaign_id": d["campaign_id"],
                "phase": d["phase"], "kind": "self-check", "occurred_on": d["occurred_on"], "problems": total,
            })
            out["aspect_results"].extend({
                "event_id": d["event_id"], "school_id": d["school_id"], "aspect": r["aspect"],
                "campaign_id": d["campaign_id"], "phase": d["phase"], "problems": len(r["problems"]),
            } for r in d["results"])
        elif e.type == "JointInspectionConducted":
            per: dict[tuple[str, str], int] = defaultdict(int)
            for f in d["findings"]:
                per[(f["school_id"], f["aspect"])] += 1
            out["inspections"].append({
                "event_id": d["event_id"], "campaign_id": d["campaign_id"], "phase": d["phase"],
                "occurred_on": d["occurred_on"], "units": orjson.dumps(d["units"]).decode(),
                "school_count": len(d["school_ids"]), "findings": len(d["findings"]),
            })
            for s in d["school_ids"]:
                out["school_steps"].append({
                    "event_id": d["event_id"], "school_id": s, "campaign_id": d["campaign_id"],
                    "phase": d["phase"], "kind": "inspection", "occurred_on": d["occurred_on"],
                    "problems": sum(n for (school, _), n in per.items() if school == s),
                })
            out["aspect_results"].extend({
                "event_id": d["event_id"], "school_id": s, "aspect": a, "campaign_id": d["campaign_id"],
                "phase": d["phase"], "problems": n,
            } for (s, a), n in per.items())
        elif e.type == "CampaignPhaseReminderIssued":
            out["reminders"].append({
                "event_id": d["event_id"], "campaign_id": d["campaign_id"], "phase": d["phase"],
                "kind": d["kind"], "occurred_on": d["occurred_on"], "school_count": len(d["school_ids"]),
            })
    return out


class CampaignProgressView(Projection):
    name = "campaign_progress"
    version = 1
    topics = (event_topic(CAMPAIGN, "CampaignLaunched"), event_topic(SELF_CHECK, "SelfCheckSubmitted"),
              event_topic(JOINT_INSPECTION, "JointInspectionConducted"),
              event_topic(PHASE_REMINDER, "CampaignPhaseReminderIssued"))
    tables = (campaigns, scope, school_steps, aspect_results, inspections, reminders)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        rows = progress_rows(events)
        for key, table in _TABLES.items():
            insert_ignore(conn, table, rows.get(key, []))


_TABLES = {"campaigns": campaigns, "scope": scope, "school_steps": school_steps,
           "aspect_results": aspect_results, "inspections": inspections, "reminders": reminders}


# -- queries -------------------------------------------------------------------------------


def _campaign(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["phases"] = orjson.loads(d["phases"])
    d["aspects"] = orjson.loads(d["aspects"])
    return d


def list_campaigns(conn: sa.Connection, year: int | None = None) -> list[dict[str, Any]]:
    q = sa.select(campaigns).order_by(campaigns.c.year, campaigns.c.position)
    if year is not None:
        q = q.where(campaigns.c.year == year)
    return [_campaign(r) for r in conn.execute(q).mappings()]


def get_campaign(conn: sa.Connection, campaign_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(campaigns).where(campaigns.c.campaign_id == campaign_id)).mappings().first()
    return None if row is None else _campaign(row)


def scope_of(conn: sa.Connection, campaign_id: str) -> list[str]:
    q = sa.select(scope.c.school_id).where(scope.c.campaign_id == campaign_id).order_by(scope.c.school_id)
    return list(conn.execute(q).scalars())


def _first_done(conn: sa.Connection, campaign_id: str, phase: str, before: str | None) -> dict[str, tuple[str, str]]:
    """school -> (first day the phase was done, that event id), counting events up to ``before``."""
    s = school_steps.c
    q = (sa.select(s.school_id, s.occurred_on, s.event_id)
         .where(s.campaign_id == campaign_id, s.phase == phase)
         .order_by(s.school_id, s.occurred_on, s.event_id))
    if before is not None:
        q = q.where(s.occurred_on <= before)
    out: dict[str, tuple[str, str]] = {}
    for school, day, event_id in conn.execute(q):
        out.setdefault(school, (day, event_id))
    return out


def campaign_status(conn: sa.Connection, campaign_id: str, today: date) -> dict[str, Any] | None:
    """Per phase: deadline, schools done on time, done late, missed (deadline passed, not
    done), pending; the schools behind schedule; per aspect the problems found."""
    c = get_campaign(conn, campaign_id)
    if c is None:
        return None
    schools = scope_of(conn, campaign_id)
    day = today.isoformat()
    a = aspect_results.c
    problems: dict[tuple[str, str], int] = defaultdict(int)
    q = (sa.select(a.phase, a.aspect, sa.func.sum(a.problems)).where(a.campaign_id == campaign_id)
         .group_by(a.phase, a.aspect))
    for phase, aspect, n in conn.execute(q):
        problems[(phase, aspect)] = int(n or 0)
    phases = []
    for p in c["phases"]:
        done = _first_done(conn, campaign_id, p["code"], day)
        on_time = [s for s in schools if s in done and done[s][0] <= p["deadline"]]
        late = [s for s in schools if s in done and done[s][0] > p["deadline"]]
        not_done = [s for s in schools if s not in done]
        passed = day > p["deadline"]
        started = day >= p["starts"]
        phases.append({
            **p, "schools": len(schools), "on_time": len(on_time), "late": len(late),
            "missed": len(not_done) if passed else 0, "pending": 0 if passed else len(not_done),
            "state": "closed" if passed else ("open" if started else "not-started"),
            "missed_schools": not_done if passed else [],
            "late_schools": [{"school_id": s, "done_on": done[s][0], "event_id": done[s][1]} for s in late],
            "completion": round((len(on_time) + len(late)) / len(schools), 4) if schools else None,
            "problems_by_aspect": {asp["code"]: problems.get((p["code"], asp["code"]), 0) for asp in c["aspects"]},
        })
    current = next((p["code"] for p in phases if p["state"] == "open"), None)
    return {**c, "current_phase": current, "phase_status": phases}


def progress_matrix(conn: sa.Connection, campaign_id: str) -> list[dict[str, Any]]:
    """campaign x phase x school x aspect: problems found and the event that found them."""
    a = aspect_results.c
    s = school_steps.c
    q = (sa.select(a.phase, a.school_id, a.aspect, a.problems, a.event_id, s.occurred_on)
         .join(school_steps, (s.event_id == a.event_id) & (s.school_id == a.school_id))
         .where(a.campaign_id == campaign_id)
         .order_by(a.phase, a.school_id, a.aspect, s.occurred_on))
    return [
        {"phase": ph, "school_id": sc, "aspect": asp, "status": "problems" if n else "pass", "problems": n,
         "event_id": ev, "occurred_on": day}
        for ph, sc, asp, n, ev, day in conn.execute(q)
    ]


def campaigns_overview(conn: sa.Connection, today: date, year: int | None = None) -> list[dict[str, Any]]:
    out = []
    for c in list_campaigns(conn, year if year is not None else today.year):
        status = campaign_status(conn, c["campaign_id"], today)
        if status is not None:
            out.append(status)
    return out


def reminders_due(conn: sa.Connection, today: date, days_before: int) -> list[dict[str, Any]]:
    """Phase reminders the scheduler should issue today: 'due-soon' for a phase whose
    deadline is within ``days_before`` days with schools not done, and 'missed' for a
    phase whose deadline passed with schools not done. One per (campaign, phase, kind);
    the already issued ones are left out (the domain id makes a repeat impossible anyway)."""
    issued = {(r.campaign_id, r.phase, r.kind) for r in conn.execute(sa.select(reminders))}
    out = []
    for c in list_campaigns(conn, today.year):
        schools = scope_of(conn, c["campaign_id"])
        for p in c["phases"]:
            deadline = date.fromisoformat(p["deadline"])
            if today > deadline:
                kind = "missed"
            elif deadline - timedelta(days=days_before) <= today and today >= date.fromisoformat(p["starts"]):
                kind = "due-soon"
            else:
                continue
            if (c["campaign_id"], p["code"], kind) in issued:
                continue
            done = _first_done(conn, c["campaign_id"], p["code"], today.isoformat())
            behind = [s for s in schools if s not in done]
            if behind:
                out.append({"campaign_id": c["campaign_id"], "template": c["template"], "phase": p["code"],
                            "kind": kind, "deadline": p["deadline"], "school_ids": behind})
    return out


def list_reminders(conn: sa.Connection, campaign_id: str | None = None) -> list[dict[str, Any]]:
    q = sa.select(reminders).order_by(reminders.c.occurred_on, reminders.c.event_id)
    if campaign_id:
        q = q.where(reminders.c.campaign_id == campaign_id)
    return [dict(r) for r in conn.execute(q).mappings()]
