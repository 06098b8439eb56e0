"""Logistics petitions (信访件): one row per petition, and the rates seed 000 item 18 asks to
raise: 办结率 (handling rate: closed / received) and 满意率 (satisfaction rate: satisfied or
basically satisfied / closed with an evaluation), plus the on-time answer rate."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa

from events.stored import PETITION, event_topics
from projections.base import LoggedEvent, Projection, insert_ignore, metadata

petitions = sa.Table(
    "rm_petitions",
    metadata,
    sa.Column("petition_id", sa.String(36), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("reference", sa.String(60), nullable=False),
    sa.Column("receiving_unit", sa.String(64), nullable=False),
    sa.Column("handling_unit", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("topic", sa.String(40), nullable=False),
    sa.Column("school_id", sa.String(40), nullable=True),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("received_on", sa.String(10), nullable=False),
    sa.Column("due_on", sa.String(10), nullable=False),
    sa.Column("answered_on", sa.String(10), nullable=True),
    sa.Column("answered_on_time", sa.Boolean, nullable=True),
    sa.Column("answer", sa.Text, nullable=True),
    sa.Column("closed_on", sa.String(10), nullable=True),
    sa.Column("satisfaction", sa.String(30), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),  # received | answered | closed
    sa.Index("ix_rm_petitions_received_on", "received_on"),
)

SATISFIED = ("satisfied", "basically-satisfied")


class PetitionsView(Projection):
    name = "petitions"
    version = 1
    topics = event_topics(PETITION, "PetitionReceived", "PetitionAnswered", "PetitionClosed")
    tables = (petitions,)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        for e in events:
            d = e.data
            pid = e.record_id
            if e.type == "PetitionReceived":
                insert_ignore(conn, petitions, [{
                    "petition_id": pid, "position": e.position, "reference": d["reference"],
                    "receiving_unit": d["agency"], "handling_unit": d["handling_unit"], "channel": d["channel"],
                    "topic": d["topic"], "school_id": d["school_id"], "summary": d["summary"],
                    "received_on": d["occurred_on"], "due_on": d["due_on"], "status": "received",
                }])
            elif e.type == "PetitionAnswered":
                conn.execute(petitions.update().where(petitions.c.petition_id == pid).values(
                    answered_on=d["occurred_on"], answered_on_time=d["on_time"], answer=d["answer"],
                    status="answered"))
            elif e.type == "PetitionClosed":
                conn.execute(petitions.update().where(petitions.c.petition_id == pid).values(
                    closed_on=d["occurred_on"], satisfaction=d["satisfaction"], status="closed"))


# -- queries -------------------------------------------------------------------------------------


def list_petitions(
    conn: sa.Connection, *, year: int | None = None, status: str | None = None, unit: str | None = None,
    after: int | None = None, limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; ``unit`` keeps petitions the unit received or handles."""
    q = sa.select(petitions).order_by(petitions.c.position.desc()).limit(limit)
    if year is not None:
        q = q.where(petitions.c.received_on.between(f"{year:04d}-01-01", f"{year:04d}-12-31"))
    if status is not None:
        q = q.where(petitions.c.status == status)
    if unit is not None:
        q = q.where(sa.or_(petitions.c.receiving_unit == unit, petitions.c.handling_unit == unit))
    if after is not None:
        q = q.where(petitions.c.position < after)
    return [dict(r) for r in conn.execute(q).mappings()]


def get_petition(conn: sa.Connection, petition_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(petitions).where(petitions.c.petition_id == petition_id)).mappings().first()
    return None if row is None else dict(row)


def _rates(rows: Sequence[dict[str, Any]], day: str) -> dict[str, Any]:
    """Rates of petitions received by ``day``, as they stood at the end of ``day``."""
    received = [r for r in rows if r["received_on"] <= day]
    answered = [r for r in received if r["answered_on"] and r["answered_on"] <= day]
    closed = [r for r in received if r["closed_on"] and r["closed_on"] <= day]
    evaluated = [r for r in closed if r["satisfaction"] != "not-evaluated"]
    satisfied = [r for r in evaluated if r["satisfaction"] in SATISFIED]
    on_time = [r for r in answered if r["answered_on_time"]]
    overdue_open = [r for r in received if not (r["answered_on"] and r["answered_on"] <= day) and r["due_on"] < day]
    n = len(received)
    return {
        "received": n, "answered": len(answered), "closed": len(closed), "evaluated": len(evaluated),
        "satisfied": len(satisfied), "answered_on_time": len(on_time), "overdue_unanswered": len(overdue_open),
        "handling_rate": round(len(closed) / n, 4) if n else None,
        "satisfaction_rate": round(len(satisfied) / len(evaluated), 4) if evaluated else None,
        "on_time_rate": round(len(on_time) / len(answered), 4) if answered else None,
    }


def _year_rows(conn: sa.Connection, year: int, unit: str | None) -> list[dict[str, Any]]:
    q = sa.select(petitions).where(petitions.c.received_on.between(f"{year:04d}-01-01", f"{year:04d}-12-31"))
    if unit is not None:
        q = q.where(sa.or_(petitions.c.receiving_unit == unit, petitions.c.handling_unit == unit))
    return [dict(r) for r in conn.execute(q).mappings()]


def _month_end(year: int, month: int) -> str:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return date.fromordinal(nxt.toordinal() - 1).isoformat()


def petition_rates(
    conn: sa.Connection, year: int, today: date, *, unit: str | None = None,
) -> dict[str, Any]:
    """This year's petitions (received in ``year``) as they stand at ``today`` (or year end),
    month by month, by topic, and last year's for comparison (the target is to raise them)."""
    rows = _year_rows(conn, year, unit)
    last = min(today, date(year, 12, 31)).isoformat()
    by_month: dict[str, Any] = {}
    for m in range(1, 13):
        end = _month_end(year, m)
        if f"{year:04d}-{m:02d}-01" > last:
            break
        by_month[f"{year:04d}-{m:02d}"] = _rates(rows, min(end, last))
    topics: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        topics[r["topic"]].append(r)
    previous = _rates(_year_rows(conn, year - 1, unit), f"{year - 1:04d}-12-31")
    return {
        "year": year, "as_of": last, **_rates(rows, last), "by_month": by_month,
        "by_topic": {t: _rates(rs, last) for t, rs in sorted(topics.items())},
        "previous_year": previous,
    }
