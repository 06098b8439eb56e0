"""Joint meetings, their agenda and the tasks their resolutions assign.

Tables: meetings, proposed agenda items, resolutions, and a task board shaped like the
rectification board (one row per task from a pure fold, plus each task's history).

``assemble_agenda`` builds a meeting's agenda from the log since the previous meeting, out
of the read models: overdue and escalated rectifications by unit, open 重大 hazards,
campaign phase status, warning response, units' blind spots, earlier resolutions' tasks
(回告) and the proposed items. Every entry carries the ids of the events behind it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from contracts.catalogue import Catalogue, default_catalogue
from events.stored import MEETING, OPEN_STATES, TASK, event_topics
from projections import rectification_board as board
from projections.base import LoggedEvent, Projection, insert_ignore, metadata
from projections.campaign_progress import campaigns_overview
from projections.catalogue_view import list_agencies
from projections.ledger import live_ledger
from projections.periods import Period
from projections.warning_response import warnings_between

meetings = sa.Table(
    "rm_meetings",
    metadata,
    sa.Column("meeting_id", sa.String(36), primary_key=True),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("scheduled_for", sa.String(10), nullable=False),
    sa.Column("place", sa.String(200), nullable=False),
    sa.Column("convened_by", sa.String(64), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # scheduled | held
    sa.Column("held_on", sa.String(10), nullable=True),
    sa.Column("attendance", sa.Text, nullable=False),  # JSON list of units present
    sa.Column("absent", sa.Text, nullable=False),  # JSON list
    sa.Column("minutes", sa.Text, nullable=True),
    sa.Column("scheduled_on", sa.String(10), nullable=False),
    sa.Column("held_event_id", sa.String(36), nullable=True),
    sa.Column("drafted_event_id", sa.String(36), nullable=True),
    sa.Column("draft_sections", sa.Text, nullable=True),  # JSON
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("year", "number", name="uq_rm_meetings_year_number"),
)

agenda_items = sa.Table(
    "rm_agenda_items",
    metadata,
    sa.Column("item_id", sa.String(36), primary_key=True),
    sa.Column("meeting_id", sa.String(36), nullable=False),
    sa.Column("proposed_by", sa.String(64), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("related_event_ids", sa.Text, nullable=False),  # JSON list
    sa.Column("proposed_on", sa.String(10), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index("ix_rm_agenda_items_meeting", "meeting_id", "position"),
)

resolutions = sa.Table(
    "rm_resolutions",
    metadata,
    sa.Column("resolution_id", sa.String(36), primary_key=True),
    sa.Column("meeting_id", sa.String(36), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("agenda_item_ids", sa.Text, nullable=False),  # JSON list
    sa.Column("task_count", sa.Integer, nullable=False),
    sa.Column("adopted_on", sa.String(10), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index("ix_rm_resolutions_meeting", "meeting_id", "seq"),
)

tasks = sa.Table(
    "rm_tasks",
    metadata,
    sa.Column("task_id", sa.String(36), primary_key=True),
    sa.Column("assigned_position", sa.BigInteger, nullable=False),
    sa.Column("meeting_id", sa.String(36), nullable=False),
    sa.Column("resolution_id", sa.String(36), nullable=False),
    sa.Column("unit", sa.String(64), nullable=False),
    sa.Column("cooperating_units", sa.Text, nullable=False),  # JSON list
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("assigned_on", sa.String(10), nullable=False),
    sa.Column("original_deadline", sa.String(10), nullable=False),
    sa.Column("deadline", sa.String(10), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("progress_percent", sa.Integer, nullable=True),
    sa.Column("last_progress_on", sa.String(10), nullable=True),
    sa.Column("completed_on", sa.String(10), nullable=True),
    sa.Column("verified_on", sa.String(10), nullable=True),
    sa.Column("on_time", sa.Boolean, nullable=True),
    sa.Column("extensions", sa.Integer, nullable=False),
    sa.Column("rejections", sa.Integer, nullable=False),
    sa.Column("overdue_deadline", sa.String(10), nullable=True),
    sa.Column("escalation_level", sa.Integer, nullable=False),
    sa.Column("escalation_name", sa.String(40), nullable=True),
    sa.Column("max_escalation_level", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Index("ix_rm_tasks_unit_status", "unit", "status"),
    sa.Index("ix_rm_tasks_meeting", "meeting_id"),
    sa.Index("ix_rm_tasks_position", "assigned_position", unique=True),
)

task_history = sa.Table(
    "rm_task_history",
    metadata,
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("task_id", sa.String(36), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("occurred_on", sa.String(10), nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("ix_rm_task_history_task", "task_id", "position"),
)

MEETING_EVENTS = event_topics(MEETING, "MeetingScheduled", "AgendaItemProposed", "AgendaDrafted", "MeetingHeld",
                              "ResolutionAdopted")
TASK_EVENTS = event_topics(TASK, "TaskAssigned", "TaskProgressReported", "TaskCompleted", "TaskVerified",
                           "TaskRejected", "TaskDeadlineExtended", "TaskOverdue", "TaskEscalated")


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def fold_task(row: dict[str, Any] | None, type_: str, d: dict[str, Any], recorded_at: str,
              position: int) -> dict[str, Any] | None:
    """Pure policy: a task's board row after one more of its events."""
    if type_ == "TaskAssigned":
        row = {
            "task_id": d["task_id"], "assigned_position": position, "meeting_id": d["meeting_id"],
            "resolution_id": d["resolution_id"], "unit": d["unit"],
            "cooperating_units": _dumps(d["cooperating_units"]), "description": d["description"],
            "assigned_on": d["occurred_on"], "original_deadline": d["deadline"], "deadline": d["deadline"],
            "status": "assigned", "progress_percent": None, "last_progress_on": None, "completed_on": None,
            "verified_on": None, "on_time": None, "extensions": 0, "rejections": 0, "overdue_deadline": None,
            "escalation_level": 0, "escalation_name": None, "max_escalation_level": 0,
        }
    elif row is None:
        return None
    else:
        row = dict(row)
    if type_ == "TaskProgressReported":
        row.update(status="in_progress", progress_percent=d["percent"], last_progress_on=d["occurred_on"])
    elif type_ == "TaskCompleted":
        row.update(status="completed", completed_on=d["occurred_on"], progress_percent=100,
                   on_time=d["occurred_on"] <= row["deadline"])
    elif type_ == "TaskVerified":
        row.update(status="verified", verified_on=d["occurred_on"])
    elif type_ == "TaskRejected":
        row.update(status="reopened", deadline=d["new_deadline"], completed_on=None, on_time=None,
                   rejections=row["rejections"] + 1, escalation_level=0, escalation_name=None)
    elif type_ == "TaskDeadlineExtended":
        row.update(deadline=d["new_deadline"], extensions=row["extensions"] + 1, escalation_level=0,
                   escalation_name=None)
    elif type_ == "TaskOverdue":
        if d["deadline"] == row["deadline"]:
            row["overdue_deadline"] = d["deadline"]
    elif type_ == "TaskEscalated":
        if d["deadline"] == row["deadline"] and d["level"] > row["escalation_level"]:
            row.update(escalation_level=d["level"], escalation_name=d["name"])
        row["max_escalation_level"] = max(row["max_escalation_level"], d["level"])
    row["updated_at"] = recorded_at
    return row


def _chunks(values: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


class MeetingsView(Projection):
    name = "meetings"
    version = 1
    topics = (*MEETING_EVENTS, *TASK_EVENTS)
    tables = (meetings, agenda_items, resolutions, tasks, task_history)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        task_ids = list(dict.fromkeys(e.record_id for e in events if e.type.startswith("Task")))
        state: dict[str, dict[str, Any] | None] = dict.fromkeys(task_ids)
        for chunk in _chunks(task_ids):
            for r in conn.execute(sa.select(tasks).where(tasks.c.task_id.in_(chunk))).mappings():
                state[r["task_id"]] = dict(r)
        hist: list[dict[str, Any]] = []
        for e in events:
            d = e.data
            if e.type.startswith("Task"):
                tid = e.record_id
                state[tid] = fold_task(state[tid], e.type, d, e.recorded_at, e.position)
                hist.append({"position": e.position, "task_id": tid, "type": e.type, "event_id": d["event_id"],
                             "agency": d["agency"], "occurred_on": d["occurred_on"],
                             "recorded_at": e.recorded_at, "data": _dumps(d)})
            else:
                self._meeting_event(conn, e)
        rows = [r for r in state.values() if r is not None]
        for chunk in _chunks([r["task_id"] for r in rows]):
            conn.execute(tasks.delete().where(tasks.c.task_id.in_(chunk)))
        if rows:
            conn.execute(tasks.insert(), rows)
        insert_ignore(conn, task_history, hist)

    @staticmethod
    def _meeting_event(conn: sa.Connection, e: LoggedEvent) -> None:
        d = e.data
        mid = e.record_id
        m = meetings.c
        if e.type == "MeetingScheduled":
            insert_ignore(conn, meetings, [{
                "meeting_id": mid, "year": d["year"], "number": d["number"], "title": d["title"],
                "scheduled_for": d["scheduled_for"], "place": d["place"], "convened_by": d["convened_by"],
                "status": "scheduled", "held_on": None, "attendance": "[]", "absent": "[]", "minutes": None,
                "scheduled_on": d["occurred_on"], "position": e.position,
            }])
        elif e.type == "AgendaItemProposed":
            insert_ignore(conn, agenda_items, [{
                "item_id": d["item_id"], "meeting_id": mid, "proposed_by": d["proposed_by"], "title": d["title"],
                "detail": d["detail"], "related_event_ids": _dumps(d["related_event_ids"]),
                "proposed_on": d["occurred_on"], "position": e.position,
            }])
        elif e.type == "AgendaDrafted":
            conn.execute(meetings.update().where(m.meeting_id == mid).values(
                drafted_event_id=d["event_id"], draft_sections=_dumps(d["sections"])))
        elif e.type == "MeetingHeld":
            conn.execute(meetings.update().where(m.meeting_id == mid).values(
                status="held", held_on=d["held_on"], attendance=_dumps(d["attendance"]),
                absent=_dumps(d["absent"]), minutes=d["minutes"], held_event_id=d["event_id"]))
        elif e.type == "ResolutionAdopted":
            insert_ignore(conn, resolutions, [{
                "resolution_id": d["resolution_id"], "meeting_id": mid, "seq": d["seq"], "text": d["text"],
                "agenda_item_ids": _dumps(d["agenda_item_ids"]), "task_count": len(d["tasks"]),
                "adopted_on": d["occurred_on"], "position": e.position,
            }])


# -- queries: meetings ---------------------------------------------------------------------


def _meeting(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["attendance"] = orjson.loads(out["attendance"])
    out["absent"] = orjson.loads(out["absent"])
    out["draft_sections"] = orjson.loads(out["draft_sections"]) if out["draft_sections"] else None
    out["date"] = out["held_on"] or out["scheduled_for"]
    return out


def list_meetings(conn: sa.Connection, year: int | None = None) -> list[dict[str, Any]]:
    q = sa.select(meetings).order_by(meetings.c.scheduled_for, meetings.c.number)
    if year is not None:
        q = q.where(meetings.c.year == year)
    return [_meeting(r) for r in conn.execute(q).mappings()]


def get_meeting(conn: sa.Connection, meeting_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(meetings).where(meetings.c.meeting_id == meeting_id)).mappings().first()
    return None if row is None else _meeting(row)


def latest_meeting(conn: sa.Connection) -> dict[str, Any] | None:
    """"The latest meeting": the one scheduled for the latest date (of two on one day, the
    one convened later, which has the higher number). Never by number alone: numbers restart
    each year and are the platform's, but the date is what a reader means by latest."""
    q = sa.select(meetings).order_by(meetings.c.scheduled_for.desc(), meetings.c.number.desc()).limit(1)
    row = conn.execute(q).mappings().first()
    return None if row is None else _meeting(row)


def previous_meeting(conn: sa.Connection, meeting: dict[str, Any]) -> dict[str, Any] | None:
    """The latest other meeting on an earlier date (held date, else scheduled date)."""
    earlier = [m for m in list_meetings(conn) if m["meeting_id"] != meeting["meeting_id"]
               and (m["date"], m["number"]) < (meeting["date"], meeting["number"])]
    return earlier[-1] if earlier else None


def meeting_period(conn: sa.Connection, meeting: dict[str, Any]) -> tuple[date, date]:
    """From the day after the previous meeting (or 1 January) to the meeting's date."""
    prev = previous_meeting(conn, meeting)
    end = date.fromisoformat(meeting["date"])
    start = date.fromisoformat(prev["date"]) + timedelta(days=1) if prev else date(end.year, 1, 1)
    return min(start, end), end


def list_agenda_items(conn: sa.Connection, meeting_id: str) -> list[dict[str, Any]]:
    q = sa.select(agenda_items).where(agenda_items.c.meeting_id == meeting_id).order_by(agenda_items.c.position)
    out = []
    for r in conn.execute(q).mappings():
        d = dict(r)
        d["related_event_ids"] = orjson.loads(d["related_event_ids"])
        out.append(d)
    return out


def list_resolutions(conn: sa.Connection, meeting_id: str) -> list[dict[str, Any]]:
    q = sa.select(resolutions).where(resolutions.c.meeting_id == meeting_id).order_by(resolutions.c.seq)
    out = []
    for r in conn.execute(q).mappings():
        d = dict(r)
        d["agenda_item_ids"] = orjson.loads(d["agenda_item_ids"])
        d["tasks"] = list_tasks(conn, today=None, resolution=d["resolution_id"], limit=1000)
        out.append(d)
    return out


# -- queries: tasks ------------------------------------------------------------------------


def task_is_overdue(row: dict[str, Any], today: date) -> bool:
    return row["status"] in OPEN_STATES and row["deadline"] < today.isoformat()


def task_view(row: dict[str, Any], today: date | None) -> dict[str, Any]:
    out = dict(row)
    out["cooperating_units"] = orjson.loads(row["cooperating_units"])
    if today is not None:
        overdue = task_is_overdue(row, today)
        out["overdue"] = overdue
        out["days_overdue"] = (today - date.fromisoformat(row["deadline"])).days if overdue else 0
    return out


def list_tasks(
    conn: sa.Connection, *, today: date | None, limit: int, before: int | None = None, unit: str | None = None,
    status: str | None = None, overdue: bool | None = None, meeting: str | None = None,
    resolution: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the assigned_position the previous page ended at.
    ``status`` may be a status or "open"."""
    t = tasks.c
    q = sa.select(tasks).order_by(t.assigned_position.desc()).limit(limit)
    if before is not None:
        q = q.where(t.assigned_position < before)
    if unit:
        q = q.where(sa.or_(t.unit == unit, t.cooperating_units.like(f'%"{unit}"%')))
    if status == "open":
        q = q.where(t.status.in_(OPEN_STATES))
    elif status:
        q = q.where(t.status == status)
    if meeting:
        q = q.where(t.meeting_id == meeting)
    if resolution:
        q = q.where(t.resolution_id == resolution)
        q = q.order_by(None).order_by(t.assigned_position)
    if overdue is not None:
        if today is None:
            raise ValueError("the overdue filter needs today")
        clause = sa.and_(t.status.in_(OPEN_STATES), t.deadline < today.isoformat())
        q = q.where(clause if overdue else sa.not_(clause))
    return [task_view(dict(r), today) for r in conn.execute(q).mappings()]


def get_task(conn: sa.Connection, task_id: str, today: date) -> dict[str, Any] | None:
    row = conn.execute(sa.select(tasks).where(tasks.c.task_id == task_id)).mappings().first()
    if row is None:
        return None
    out = task_view(dict(row), today)
    out["history"] = task_events(conn, task_id)
    return out


def task_events(conn: sa.Connection, task_id: str) -> list[dict[str, Any]]:
    q = sa.select(task_history).where(task_history.c.task_id == task_id).order_by(task_history.c.position)
    return [{**{k: r[k] for k in ("position", "type", "event_id", "agency", "occurred_on", "recorded_at")},
             "data": orjson.loads(r["data"])} for r in conn.execute(q).mappings()]


def task_overdue_candidates(conn: sa.Connection, today: date, level_due: Any) -> list[str]:
    """Open tasks past their deadline still lacking their overdue step or a level now due."""
    t = tasks.c
    q = (sa.select(t.task_id, t.deadline, t.overdue_deadline, t.escalation_level)
         .where(t.status.in_(OPEN_STATES), t.deadline < today.isoformat()).order_by(t.deadline, t.task_id))
    out = []
    for tid, deadline, flagged, level in conn.execute(q):
        days = (today - date.fromisoformat(deadline)).days
        if flagged != deadline or level < level_due(days):
            out.append(str(tid))
    return out


def task_stats(conn: sa.Connection, unit: str | None, today: date, start: date, end: date) -> dict[str, Any]:
    """Tasks a unit is responsible for (all units with ``unit=None``): open, overdue,
    escalated as of ``today``; completed within the period and how many on time."""
    q = sa.select(tasks)
    if unit:
        q = q.where(tasks.c.unit == unit)
    rows = [dict(r) for r in conn.execute(q).mappings()]
    first, last = start.isoformat(), min(end, today).isoformat()
    done = [r for r in rows if r["completed_on"] and first <= r["completed_on"] <= last]
    on_time = sum(1 for r in done if r["on_time"])
    return {
        "assigned": len(rows),
        "open": sum(1 for r in rows if r["status"] in OPEN_STATES),
        "overdue": sum(1 for r in rows if task_is_overdue(r, today)),
        "escalated": sum(1 for r in rows if r["status"] in OPEN_STATES and r["escalation_level"] >= 1),
        "completed": len(done),
        "completed_on_time": on_time,
        "on_time_rate": round(on_time / len(done), 4) if done else None,
    }


# -- the agenda ----------------------------------------------------------------------------

SECTIONS = ("overdue_rectifications", "critical_hazards", "campaigns", "warnings", "blind_spots",
            "follow_up", "proposals")


def _cadence_expected(cadence: str, start: date, end: date) -> bool:
    """Whether a duty of this cadence should show activity within [start, end]: a period
    shorter than the cadence, and on-demand duties, prove nothing by silence."""
    days = (end - start).days + 1
    need = {"weekly": 7, "monthly": 31, "quarterly": 92, "semester": 184, "yearly": 366}
    if cadence in need:
        return days >= need[cadence]
    if cadence == "rainy-season":
        season_start = max(start, date(start.year, 5, 1))
        season_end = min(end, date(end.year, 9, 30))
        return (season_end - season_start).days + 1 >= 31
    return False


def _step_event_ids(conn: sa.Connection, ids: list[str]) -> dict[str, list[str]]:
    """Rectification id -> event ids of its overdue and escalation steps."""
    h = board.history.c
    out: dict[str, list[str]] = defaultdict(list)
    for chunk in _chunks(ids):
        q = (sa.select(h.id, h.data).where(h.id.in_(chunk),
                                           h.type.in_(("RectificationOverdue", "RectificationEscalated")))
             .order_by(h.position))
        for item_id, data in conn.execute(q):
            out[str(item_id)].append(orjson.loads(data)["event_id"])
    return out


def overdue_rectifications(conn: sa.Connection, today: date) -> list[dict[str, Any]]:
    """Overdue (and so escalated) rectifications grouped by responsible lead unit, worst first."""
    rows = board.overdue_as_of(conn, today)  # as the log stood that day, not as the board stands now
    steps = _step_event_ids(conn, [r["id"] for r in rows])
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["lead_unit"] or ""].append({
            "id": r["id"], "school_id": r["school_id"], "category": r["category"], "severity": r["severity"],
            "description": r["description"], "deadline": r["deadline"], "days_overdue": r["days_overdue"],
            "escalation_level": r["escalation_level"], "escalation_name": r["escalation_name"],
            "status": r["status"], "event_ids": [r["id"], *steps.get(r["id"], [])],
        })
    out = []
    for unit, items in groups.items():
        items.sort(key=lambda i: (-i["days_overdue"], i["id"]))
        out.append({"unit": unit, "count": len(items),
                    "escalated": sum(1 for i in items if i["escalation_level"] >= 1),
                    "max_days_overdue": items[0]["days_overdue"], "items": items})
    out.sort(key=lambda g: (-g["count"], g["unit"]))
    return out


def critical_hazards(conn: sa.Connection, today: date) -> list[dict[str, Any]]:
    rows = board.list_items(conn, today=today, limit=100_000, status="open", severity="critical")
    return [{"id": r["id"], "school_id": r["school_id"], "category": r["category"],
             "description": r["description"], "found_on": r["found_on"], "status": r["status"],
             "lead_unit": r["lead_unit"], "deadline": r["deadline"], "days_overdue": r["days_overdue"],
             "event_ids": [r["id"]]}
            for r in sorted(rows, key=lambda r: (r["found_on"], r["id"])) if r["found_on"] <= today.isoformat()]


def blind_spots(
    conn: sa.Connection, start: date, end: date, today: date, catalogue: Catalogue | None = None,
) -> list[dict[str, Any]]:
    """Units with duties that should have shown activity in the period and showed none."""
    catalogue = catalogue or default_catalogue()
    cadence = {d.code: d.cadence for u in catalogue.units.units for d in u.duties}
    period = Period(f"{start.isoformat()}..{end.isoformat()}", start, end)
    out = []
    for agency in list_agencies(conn):
        ledger = live_ledger(conn, agency["code"], period, min(today, end))
        texts = {d["duty_code"]: d["text"] for d in ledger["duties"]}
        missing = [{"duty_code": c, "text": texts.get(c, ""), "cadence": cadence.get(c, "on-demand")}
                   for c in ledger["blind_spots"] if _cadence_expected(cadence.get(c, "on-demand"), start, end)]
        if missing:
            out.append({"unit": agency["code"], "duties": missing, "count": len(missing)})
    out.sort(key=lambda u: (-u["count"], u["unit"]))
    return out


def follow_up(conn: sa.Connection, meeting: dict[str, Any], today: date, since: date) -> dict[str, Any]:
    """Tasks from the resolutions of earlier meetings (回告): those still open or awaiting
    verification, and those completed since ``since`` (older finished ones were reported before)."""
    earlier = [m["meeting_id"] for m in list_meetings(conn)
               if m["meeting_id"] != meeting["meeting_id"]
               and (m["date"], m["number"]) < (meeting["date"], meeting["number"])]
    rows: list[dict[str, Any]] = []
    for chunk in _chunks(earlier):
        rows.extend(task_view(dict(r), today) for r in conn.execute(
            sa.select(tasks).where(tasks.c.meeting_id.in_(chunk)).order_by(tasks.c.assigned_position)).mappings())
    rows = [r for r in rows if r["status"] in (*OPEN_STATES, "completed")
            or (r["completed_on"] or "") >= since.isoformat()]
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r["status"]] += 1
    hist = {r["task_id"]: [h["event_id"] for h in task_events(conn, r["task_id"])] for r in rows}
    items = [{
        "task_id": r["task_id"], "unit": r["unit"], "description": r["description"], "deadline": r["deadline"],
        "status": r["status"], "overdue": r["overdue"], "days_overdue": r["days_overdue"],
        "escalation_name": r["escalation_name"], "completed_on": r["completed_on"], "on_time": r["on_time"],
        "meeting_id": r["meeting_id"], "event_ids": hist[r["task_id"]],
    } for r in rows]
    done = [r for r in rows if r["completed_on"]]
    return {
        "total": len(rows), "by_status": dict(counts),
        "overdue": sum(1 for r in rows if r["overdue"]),
        "completed": len(done), "completed_on_time": sum(1 for r in done if r["on_time"]),
        "items": items,
    }


def assemble_agenda(
    conn: sa.Connection, meeting_id: str, today: date, catalogue: Catalogue | None = None,
) -> dict[str, Any] | None:
    """The agenda of one meeting, from the read models. Figures that describe the present
    (overdue, open hazards, open tasks) are as of ``today`` or the meeting day, whichever
    is earlier; period figures cover the days since the previous meeting."""
    meeting = get_meeting(conn, meeting_id)
    if meeting is None:
        return None
    start, end = meeting_period(conn, meeting)
    as_of = min(today, end)
    warnings = [w for w in warnings_between(conn, start.isoformat(), end.isoformat())
                if w["unacknowledged"] or w["slow"]]
    campaign_rows = []
    for c in campaigns_overview(conn, as_of, end.year):
        behind = sorted({s for p in c["phase_status"] for s in p["missed_schools"]}
                        | {s["school_id"] for p in c["phase_status"] for s in p["late_schools"]})
        campaign_rows.append({
            "campaign_id": c["campaign_id"], "name": c["name"], "template": c["template"],
            "current_phase": c["current_phase"], "phases": c["phase_status"], "behind_schools": behind,
            "event_ids": [c["campaign_id"]],
        })
    overdue = overdue_rectifications(conn, as_of)
    agenda = {
        "meeting": meeting,
        "period_start": start.isoformat(), "period_end": end.isoformat(), "as_of": as_of.isoformat(),
        "units": {a["code"]: a["name"] for a in list_agencies(conn)},
        "overdue_rectifications": overdue,
        "critical_hazards": critical_hazards(conn, as_of),
        "campaigns": campaign_rows,
        "warnings": warnings,
        "blind_spots": blind_spots(conn, start, end, as_of, catalogue),
        "follow_up": follow_up(conn, meeting, as_of, start),
        "proposals": list_agenda_items(conn, meeting_id),
    }
    agenda["counts"] = agenda_counts(agenda)
    return agenda


def agenda_counts(agenda: dict[str, Any]) -> list[dict[str, Any]]:
    """How many entries each section holds (what the draft-agenda event records)."""
    sizes = {
        "overdue_rectifications": sum(g["count"] for g in agenda["overdue_rectifications"]),
        "critical_hazards": len(agenda["critical_hazards"]),
        "campaigns": sum(len(c["behind_schools"]) for c in agenda["campaigns"]),
        "warnings": len(agenda["warnings"]),
        "blind_spots": sum(u["count"] for u in agenda["blind_spots"]),
        "follow_up": agenda["follow_up"]["total"],
        "proposals": len(agenda["proposals"]),
    }
    return [{"section": s, "count": sizes[s]} for s in SECTIONS]
