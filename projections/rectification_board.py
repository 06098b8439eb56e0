"""The rectification board (整改台账): one row per hazard/rectification with its current state,
the units responsible for it, and the full history of each item.

The row policy is one pure fold (``fold``) over an item's events. The projection applies it to
each batch; the as-of statistics in a unit's ledger apply the same fold to the history table
cut at a moment, so the live board and the as-of view cannot disagree about the rules.

"Overdue" and "days overdue" depend on today, so they are computed when read (from the
deadline), never stored; the escalation level is what the scheduler has recorded.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from events.base import COUNTY_TZ
from events.stored import RECTIFICATION, RUNNING, event_topics
from projections.base import LoggedEvent, Projection, insert_ignore, metadata, utc_text

items = sa.Table(
    "rm_rectifications",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("reported_position", sa.BigInteger, nullable=False),
    sa.Column("school_id", sa.String(40), nullable=False),
    sa.Column("category", sa.String(40), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("found_on", sa.String(10), nullable=False),
    sa.Column("reported_by_kind", sa.String(20), nullable=False),
    sa.Column("reporter", sa.String(64), nullable=False),
    sa.Column("reported_units", sa.Text, nullable=False),  # JSON list
    sa.Column("reported_at", sa.String(32), nullable=False),
    sa.Column("lead_unit", sa.String(64), nullable=True),
    sa.Column("cooperating_units", sa.Text, nullable=False),  # JSON list
    sa.Column("assigned_on", sa.String(10), nullable=True),
    sa.Column("original_deadline", sa.String(10), nullable=True),
    sa.Column("deadline", sa.String(10), nullable=True),
    sa.Column("measures", sa.Text, nullable=False),  # JSON list
    sa.Column("funds_amount_cny", sa.String(20), nullable=True),
    sa.Column("funds_source", sa.String(200), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("progress_percent", sa.Integer, nullable=True),
    sa.Column("last_progress_on", sa.String(10), nullable=True),
    sa.Column("completed_on", sa.String(10), nullable=True),
    sa.Column("closed_on", sa.String(10), nullable=True),
    sa.Column("on_time", sa.Boolean, nullable=True),
    sa.Column("days_to_close", sa.Integer, nullable=True),
    sa.Column("extensions", sa.Integer, nullable=False),
    sa.Column("rejections", sa.Integer, nullable=False),
    sa.Column("overdue_deadline", sa.String(10), nullable=True),  # deadline the Overdue step was for
    sa.Column("escalation_level", sa.Integer, nullable=False),  # for the deadline in force
    sa.Column("escalation_name", sa.String(40), nullable=True),
    sa.Column("max_escalation_level", sa.Integer, nullable=False),  # ever, across deadlines
    # A responsible unit's extension request (申请延期) the lead bureau has not answered yet.
    sa.Column("pending_extension_unit", sa.String(64), nullable=True),
    sa.Column("pending_extension_deadline", sa.String(10), nullable=True),
    sa.Column("pending_extension_reason", sa.Text, nullable=True),
    sa.Column("pending_extension_on", sa.String(10), nullable=True),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("last_position", sa.BigInteger, nullable=False),
    sa.Index("ix_rm_rectifications_reported_position", "reported_position", unique=True),
    sa.Index("ix_rm_rectifications_status_deadline", "status", "deadline"),
    sa.Index("ix_rm_rectifications_lead_unit", "lead_unit", "status"),
    sa.Index("ix_rm_rectifications_school", "school_id"),
    sa.Index("ix_rm_rectifications_updated_at", "updated_at"),  # what changed after a cutoff
)

# Which units are responsible for which item (lead or cooperating), for the unit filter.
responsible = sa.Table(
    "rm_rectification_units",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("unit", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(12), nullable=False),  # lead | cooperating
    sa.Index("ix_rm_rectification_units_unit", "unit", "role"),
)

history = sa.Table(
    "rm_rectification_history",
    metadata,
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("id", sa.String(36), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("occurred_on", sa.String(10), nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # the event's JSON payload
    sa.Index("ix_rm_rectification_history_id", "id", "position"),
)

EVENT_TYPES = event_topics(
    RECTIFICATION, "HazardReported", "RectificationAssigned", "RectificationProgressReported",
    "RectificationCompleted", "RectificationVerified", "RectificationRejected", "DeadlineExtended",
    "RectificationOverdue", "RectificationEscalated", "ExtensionRequested", "ExtensionRefused",
)
_NO_PENDING = {"pending_extension_unit": None, "pending_extension_deadline": None,
               "pending_extension_reason": None, "pending_extension_on": None}
_JSON_COLUMNS = ("reported_units", "cooperating_units", "measures")


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _days(start: str, end: str) -> int:
    return (date.fromisoformat(end) - date.fromisoformat(start)).days


def fold(row: dict[str, Any] | None, item_id: str, type_: str, data: dict[str, Any], recorded_at: str,
         position: int) -> dict[str, Any] | None:
    """Pure policy: an item's board row after one more of its events. ``None`` until the item's
    HazardReported has been seen."""
    d = data
    if type_ == "HazardReported":
        row = {
            "id": item_id, "reported_position": position, "school_id": d["school_id"],
            "category": d["category"], "severity": d["severity"], "description": d["description"],
            "found_on": d["found_on"], "reported_by_kind": d["reported_by"]["kind"], "reporter": d["agency"],
            "reported_units": _dumps(d["reported_by"]["units"]), "reported_at": recorded_at,
            "lead_unit": None, "cooperating_units": "[]", "assigned_on": None, "original_deadline": None,
            "deadline": None, "measures": "[]", "funds_amount_cny": None, "funds_source": None,
            "status": "reported", "progress_percent": None, "last_progress_on": None, "completed_on": None,
            "closed_on": None, "on_time": None, "days_to_close": None, "extensions": 0, "rejections": 0,
            "overdue_deadline": None, "escalation_level": 0, "escalation_name": None,
            "max_escalation_level": 0, **_NO_PENDING,
        }
    elif row is None:
        return None
    else:
        row = dict(row)
    if type_ == "RectificationAssigned":
        row.update(
            lead_unit=d["lead_unit"], cooperating_units=_dumps(d["cooperating_units"]),
            assigned_on=d["occurred_on"], original_deadline=d["deadline"], deadline=d["deadline"],
            measures=_dumps(d["measures"]), funds_amount_cny=d["funds"]["amount_cny"],
            funds_source=d["funds"]["source"], status="assigned",
        )
    elif type_ == "RectificationProgressReported":
        row.update(status="in_progress", last_progress_on=d["occurred_on"])
        if d.get("percent") is not None:
            row["progress_percent"] = d["percent"]
    elif type_ == "RectificationCompleted":
        row.update(status="completed", completed_on=d["occurred_on"], progress_percent=100, **_NO_PENDING)
    elif type_ == "RectificationVerified":
        row.update(status="closed", closed_on=d["occurred_on"], on_time=bool(d["on_time"]),
                   days_to_close=_days(row["assigned_on"] or row["found_on"], d["occurred_on"]))
    elif type_ == "RectificationRejected":
        row.update(status="reopened", deadline=d["new_deadline"], completed_on=None, closed_on=None,
                   on_time=None, days_to_close=None, rejections=row["rejections"] + 1,
                   escalation_level=0, escalation_name=None)
    elif type_ == "DeadlineExtended":
        row.update(deadline=d["new_deadline"], extensions=d["extension"], escalation_level=0,
                   escalation_name=None, **_NO_PENDING)
    elif type_ == "ExtensionRequested":
        row.update(pending_extension_unit=d["agency"], pending_extension_deadline=d["requested_deadline"],
                   pending_extension_reason=d["reason"], pending_extension_on=d["occurred_on"])
    elif type_ == "ExtensionRefused":
        row.update(_NO_PENDING)
    elif type_ == "RectificationOverdue":
        if d["deadline"] == row["deadline"]:
            row["overdue_deadline"] = d["deadline"]
    elif type_ == "RectificationEscalated":
        if d["deadline"] == row["deadline"] and d["level"] > row["escalation_level"]:
            row.update(escalation_level=d["level"], escalation_name=d["name"])
        row["max_escalation_level"] = max(row["max_escalation_level"], d["level"])
    row["updated_at"] = recorded_at
    row["last_position"] = position
    return row


class RectificationBoard(Projection):
    name = "rectification_board"
    version = 3  # 2: the pending extension request; 3: index on updated_at
    topics = EVENT_TYPES
    tables = (items, responsible, history)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        ids = list(dict.fromkeys(e.record_id for e in events))
        state: dict[str, dict[str, Any] | None] = dict.fromkeys(ids)
        for chunk in _chunks(ids, 500):
            for r in conn.execute(sa.select(items).where(items.c.id.in_(chunk))).mappings():
                state[r["id"]] = dict(r)
        hist: list[dict[str, Any]] = []
        units: list[dict[str, Any]] = []
        for e in events:
            item_id = e.record_id
            state[item_id] = fold(state[item_id], item_id, e.type, e.data, e.recorded_at, e.position)
            hist.append({"position": e.position, "id": item_id, "type": e.type, "agency": e.data["agency"],
                         "occurred_on": e.data["occurred_on"], "recorded_at": e.recorded_at,
                         "data": _dumps(e.data)})
            if e.type == "RectificationAssigned":
                units.append({"id": item_id, "unit": e.data["lead_unit"], "role": "lead"})
                units.extend({"id": item_id, "unit": u, "role": "cooperating"}
                             for u in e.data["cooperating_units"])
        rows = [r for r in state.values() if r is not None]
        for chunk in _chunks([r["id"] for r in rows], 500):
            conn.execute(items.delete().where(items.c.id.in_(chunk)))
        if rows:
            conn.execute(items.insert(), rows)
        insert_ignore(conn, history, hist)
        insert_ignore(conn, responsible, units)


def _chunks(values: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


# -- queries -------------------------------------------------------------------------------


def is_overdue(row: dict[str, Any], today: date) -> bool:
    return row["status"] in RUNNING and row["deadline"] is not None and row["deadline"] < today.isoformat()


def item_view(row: dict[str, Any], today: date) -> dict[str, Any]:
    """A board row as readers see it: JSON columns decoded, overdue computed for ``today``."""
    out = dict(row)
    for col in _JSON_COLUMNS:
        out[col] = orjson.loads(row[col])
    overdue = is_overdue(row, today)
    out["overdue"] = overdue
    out["days_overdue"] = _days(row["deadline"], today.isoformat()) if overdue else 0
    return out


def list_items(
    conn: sa.Connection, *, today: date, limit: int, before: int | None = None, unit: str | None = None,
    school: str | None = None, status: str | None = None, overdue: bool | None = None,
    severity: str | None = None, category: str | None = None,
) -> list[dict[str, Any]]:
    """Newest report first; ``before`` is the reported_position the previous page ended at.
    ``status`` may be a status or "open" (anything not closed)."""
    q = sa.select(items).order_by(items.c.reported_position.desc()).limit(limit)
    if before is not None:
        q = q.where(items.c.reported_position < before)
    if unit:
        q = q.where(items.c.id.in_(sa.select(responsible.c.id).where(responsible.c.unit == unit)))
    if school:
        q = q.where(items.c.school_id == school)
    if status == "open":
        q = q.where(items.c.status != "closed")
    elif status:
        q = q.where(items.c.status == status)
    if severity:
        q = q.where(items.c.severity == severity)
    if category:
        q = q.where(items.c.category == category)
    overdue_clause = sa.and_(items.c.status.in_(RUNNING), items.c.deadline < today.isoformat())
    if overdue is True:
        q = q.where(overdue_clause)
    elif overdue is False:
        q = q.where(sa.not_(overdue_clause))
    return [item_view(dict(r), today) for r in conn.execute(q).mappings()]


def get_item(conn: sa.Connection, item_id: str, today: date) -> dict[str, Any] | None:
    row = conn.execute(sa.select(items).where(items.c.id == item_id)).mappings().first()
    if row is None:
        return None
    out = item_view(dict(row), today)
    out["units"] = [dict(r) for r in conn.execute(
        sa.select(responsible.c.unit, responsible.c.role).where(responsible.c.id == item_id)
        .order_by(responsible.c.role.desc(), responsible.c.unit)).mappings()]
    out["history"] = [
        {**{k: r[k] for k in ("position", "type", "agency", "occurred_on", "recorded_at")},
         "data": orjson.loads(r["data"])}
        for r in conn.execute(sa.select(history).where(history.c.id == item_id)
                              .order_by(history.c.position)).mappings()
    ]
    return out


def overdue_candidates(
    conn: sa.Connection, today: date, level_due: Any, *, limit: int | None = None,
) -> list[str]:
    """Items whose deadline has passed and which, by the board, still lack their overdue step
    or an escalation level now due. ``level_due(days_overdue) -> int`` comes from the rules.
    The board may lag the log; the aggregate makes the final decision either way."""
    q = (sa.select(items.c.id, items.c.deadline, items.c.overdue_deadline, items.c.escalation_level)
         .where(items.c.status.in_(RUNNING), items.c.deadline < today.isoformat())
         .order_by(items.c.deadline, items.c.id))
    out = []
    for item_id, deadline, flagged, level in conn.execute(q):
        days = _days(deadline, today.isoformat())
        if flagged != deadline or level < level_due(days):
            out.append(str(item_id))
            if limit is not None and len(out) >= limit:
                break
    return out


def _rows_as_of(conn: sa.Connection, ids: list[str], known_by: str) -> list[dict[str, Any]]:
    state: dict[str, dict[str, Any] | None] = {}
    for chunk in _chunks(ids, 500):
        q = (sa.select(history).where(history.c.id.in_(chunk), history.c.recorded_at <= known_by)
             .order_by(history.c.position))
        for r in conn.execute(q).mappings():
            state[r["id"]] = fold(state.get(r["id"]), r["id"], r["type"], orjson.loads(r["data"]),
                                  r["recorded_at"], r["position"])
    return [r for r in state.values() if r is not None]


def rows_known_by(conn: sa.Connection, ids: list[str], cutoff: str) -> list[dict[str, Any]]:
    """The board rows of ``ids`` as the log stood at ``cutoff`` (utc_text): a row untouched since
    then is its own as-of row; only items updated later are folded again from their history."""
    rows: list[dict[str, Any]] = []
    stale: list[str] = []
    for chunk in _chunks(ids, 500):
        for r in conn.execute(sa.select(items).where(items.c.id.in_(chunk))).mappings():
            if r["updated_at"] <= cutoff:
                rows.append(dict(r))
            elif r["reported_at"] <= cutoff:
                stale.append(r["id"])
    return rows + _rows_as_of(conn, stale, cutoff)


def overdue_as_of(conn: sa.Connection, today: date) -> list[dict[str, Any]]:
    """The items overdue at the end of ``today`` as the log then stood (an item closed since
    still counts for an earlier day), newest report first, as ``list_items`` shows them."""
    cutoff = end_of_county_day(today)
    q = sa.select(items.c.id).where(items.c.reported_at <= cutoff,
                                    sa.or_(items.c.updated_at > cutoff,
                                           sa.and_(items.c.status.in_(RUNNING), items.c.deadline < today.isoformat())))
    ids = [str(i) for i in conn.execute(q).scalars()]
    rows = [r for r in rows_known_by(conn, ids, cutoff) if is_overdue(r, today)]
    rows.sort(key=lambda r: -r["reported_position"])
    return [item_view(r, today) for r in rows]


def end_of_county_day(day: date) -> str:
    """The last instant of a county-local day, as recorded times are stored (UTC text)."""
    moment = datetime.combine(day + timedelta(days=1), time(0), tzinfo=COUNTY_TZ) - timedelta(microseconds=1)
    return utc_text(moment)


def unit_stats(
    conn: sa.Connection, unit: str, *, today: date, period_start: date, period_end: date,
    known_by: str | None = None,
) -> dict[str, Any]:
    """A unit's part of the board, for its ledger, the brief and the dashboard, as the log stood
    at the end of ``today`` (or at ``known_by``, utc_text): the item histories are folded up to
    that moment, so a brief of an earlier meeting shows that meeting's figures, not today's.
    Open, overdue and escalated count the items the unit leads as of that day; closure figures
    cover items closed (销号) within the period up to that day; ``cooperating_open`` shows where
    it helps.

    An item untouched since the cutoff is its own as-of row, so those are counted in SQL; only
    items updated later are folded again (``unit_stats_folded`` is the plain definition, and
    tests compare the two). Only RectificationAssigned sets the lead and cooperating units, and
    it also records them in ``responsible``, so a row the unit leads or helps with is always
    one of the unit's ``responsible`` items."""
    cutoff = known_by or end_of_county_day(today)
    first, last = period_start.isoformat(), min(period_end, today).isoformat()
    fresh = items.c.updated_at <= cutoff
    running = items.c.status.in_(RUNNING)
    open_, overdue, escalated = conn.execute(sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(sa.case((sa.and_(running, items.c.deadline < today.isoformat()), 1),
                                             else_=0)), 0),
        sa.func.coalesce(sa.func.sum(sa.case((sa.and_(running, items.c.escalation_level >= 1), 1), else_=0)), 0),
    ).where(items.c.lead_unit == unit, items.c.status != "closed", fresh)).one()
    closed = [(bool(on_time), days) for on_time, days in conn.execute(
        sa.select(items.c.on_time, items.c.days_to_close).where(
            items.c.lead_unit == unit, items.c.status == "closed", items.c.closed_on >= first,
            items.c.closed_on <= last, fresh))]
    # An item is assigned once, never to its lead as a cooperating unit too (the aggregate's
    # rules), so the 'cooperating' rows of ``responsible`` are the items whose cooperating_units
    # name the unit.
    helped = conn.execute(sa.select(sa.func.count()).select_from(
        responsible.join(items, items.c.id == responsible.c.id)).where(
        responsible.c.unit == unit, responsible.c.role == "cooperating", items.c.status != "closed",
        fresh)).scalar_one()
    mine = sa.exists().where(responsible.c.id == items.c.id, responsible.c.unit == unit)
    stale = [str(i) for i in conn.execute(sa.select(items.c.id).where(
        items.c.updated_at > cutoff, items.c.reported_at <= cutoff, mine)).scalars()]
    for r in _rows_as_of(conn, stale, cutoff):
        if r["lead_unit"] == unit:
            if r["status"] == "closed":
                if first <= r["closed_on"] <= last:
                    closed.append((bool(r["on_time"]), r["days_to_close"]))
            else:
                open_ += 1
                overdue += is_overdue(r, today)
                escalated += r["status"] in RUNNING and r["escalation_level"] >= 1
        if r["status"] != "closed" and unit in orjson.loads(r["cooperating_units"]):
            helped += 1
    return _stats(today, int(open_), int(overdue), int(escalated), closed, helped)


def unit_stats_folded(
    conn: sa.Connection, unit: str, *, today: date, period_start: date, period_end: date,
    known_by: str | None = None,
) -> dict[str, Any]:
    """``unit_stats`` by its definition: every item of the unit as it stood at the cutoff."""
    ids = [str(i) for i in conn.execute(sa.select(responsible.c.id).where(responsible.c.unit == unit)).scalars()]
    rows = rows_known_by(conn, ids, known_by or end_of_county_day(today))
    led = [r for r in rows if r["lead_unit"] == unit]
    helped = [r for r in rows if r["status"] != "closed" and unit in orjson.loads(r["cooperating_units"])]
    first, last = period_start.isoformat(), min(period_end, today).isoformat()
    closed = [(bool(r["on_time"]), r["days_to_close"]) for r in led
              if r["status"] == "closed" and first <= r["closed_on"] <= last]
    return _stats(today, sum(1 for r in led if r["status"] != "closed"),
                  sum(1 for r in led if is_overdue(r, today)),
                  sum(1 for r in led if r["status"] in RUNNING and r["escalation_level"] >= 1),
                  closed, len(helped))


def _stats(today: date, open_: int, overdue: int, escalated: int, closed: list[tuple[bool, int]],
           helped: int) -> dict[str, Any]:
    on_time = sum(1 for ok, _ in closed if ok)
    return {
        "open": open_,
        "overdue": overdue,
        "escalated": escalated,
        "closed": len(closed),
        "closed_on_time": on_time,
        "on_time_rate": round(on_time / len(closed), 4) if closed else None,
        "median_days_to_close": float(statistics.median(d for _, d in closed)) if closed else None,
        "cooperating_open": helped,
        "as_of": today.isoformat(),
    }
