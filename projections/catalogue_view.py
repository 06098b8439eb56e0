"""Member units, their duty lists over time, and the schools registry."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

import orjson
import sqlalchemy as sa

from events.base import COUNTY_TZ
from events.stored import AGENCY, SCHOOL, event_topics
from projections.base import LoggedEvent, Projection, insert_ignore, metadata, upsert_add, utc_text
from projections.runner import tracking

agencies = sa.Table(
    "rm_agencies",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("name_en", sa.String(200), nullable=False),
    sa.Column("lead", sa.Boolean, nullable=False),
)

# Every duty list a unit ever had: (effective_from, recorded_at) lets the ledger show the
# duties in force on a day as they were known at any moment.
duty_lists = sa.Table(
    "rm_agency_duty_lists",
    metadata,
    sa.Column("agency", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("effective_from", sa.String(10), nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("duties", sa.Text, nullable=False),  # JSON list of {code, text, applies_to}
)

schools = sa.Table(
    "rm_schools",
    metadata,
    sa.Column("school_id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("town", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("boarding", sa.Boolean, nullable=False),
    sa.Column("canteen", sa.Boolean, nullable=False),
    sa.Column("school_bus", sa.Boolean, nullable=False),
    sa.Column("registered_at", sa.String(32), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index("ix_rm_schools_town", "town"),
)


class CatalogueView(Projection):
    name = "catalogue"
    version = 2  # 2: a unit's first duty list is known from its effective day (known_from)
    topics = (*event_topics(AGENCY, "AgencyRegistered", "AgencyDutiesRevised", "AgencyRenamed"),
              *event_topics(SCHOOL, "SchoolRegistered", "SchoolUpdated"))
    tables = (agencies, duty_lists, schools)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        for e in events:
            d = e.data
            if e.type == "AgencyRegistered":
                upsert_add(conn, agencies, [{k: d[k] for k in ("code", "name", "name_en", "lead")}],
                           keys=["code"], replace=["name", "name_en", "lead"])
                self._duty_list(conn, e)
            elif e.type == "AgencyDutiesRevised":
                self._duty_list(conn, e)
            elif e.type == "AgencyRenamed":
                conn.execute(agencies.update().where(agencies.c.code == d["agency"])
                             .values(name=d["name"], name_en=d["name_en"]))
            elif e.type == "SchoolRegistered":
                insert_ignore(conn, schools, [{
                    **{k: d[k] for k in ("school_id", "name", "town", "kind", "boarding", "canteen", "school_bus")},
                    "registered_at": e.recorded_at, "position": e.position,
                }])
            elif e.type == "SchoolUpdated":
                conn.execute(schools.update().where(schools.c.school_id == d["school_id"]).values(
                    **{k: d[k] for k in ("name", "town", "kind", "boarding", "canteen", "school_bus")}))

    @staticmethod
    def _duty_list(conn: sa.Connection, e: LoggedEvent) -> None:
        insert_ignore(conn, duty_lists, [{
            "agency": e.data["agency"], "position": e.position, "effective_from": e.data["occurred_on"],
            "recorded_at": known_from(e), "duties": orjson.dumps(e.data["duties"]).decode(),
        }])


def known_from(e: LoggedEvent) -> str:
    """When an as-of view may first see a duty list (utc_text). A unit's first list (its
    registration, effective from CATALOGUE_EPOCH unless `init --effective-on` says otherwise)
    states the duties the unit had all along: the platform only learned them the day `lianxi
    init` ran, and an as-of day before that day must still see them, or a year logged before
    (a demo year, an imported one) would have no duties. A revision is seen only from when it
    was recorded, so an as-of view never shows a change before it was made."""
    if e.type != "AgencyRegistered":
        return e.recorded_at
    start = datetime.combine(date.fromisoformat(e.data["occurred_on"]), time(0), tzinfo=COUNTY_TZ)
    return min(e.recorded_at, utc_text(start))


# -- queries -------------------------------------------------------------------------------


def list_agencies(conn: sa.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(agencies).order_by(agencies.c.lead.desc(), agencies.c.code)).mappings()
    return [dict(r) for r in rows]


def get_agency(conn: sa.Connection, code: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(agencies).where(agencies.c.code == code)).mappings().first()
    return None if row is None else dict(row)


def duties_in_force(
    conn: sa.Connection, agency: str, day: date, known_by: str | None = None,
) -> list[dict[str, Any]]:
    """The duty list in force on ``day``, counting only lists recorded by ``known_by``
    (utc_text), so an as-of view never sees a revision recorded later."""
    q = (sa.select(duty_lists.c.duties).where(duty_lists.c.agency == agency)
         .where(duty_lists.c.effective_from <= day.isoformat()))
    if known_by is not None:
        q = q.where(duty_lists.c.recorded_at <= known_by)
    q = q.order_by(duty_lists.c.effective_from.desc(), duty_lists.c.position.desc()).limit(1)
    raw = conn.execute(q).scalar()
    return [] if raw is None else list(orjson.loads(raw))


def current_duties(conn: sa.Connection, agency: str) -> list[dict[str, Any]]:
    q = (sa.select(duty_lists.c.duties).where(duty_lists.c.agency == agency)
         .order_by(duty_lists.c.position.desc()).limit(1))
    raw = conn.execute(q).scalar()
    return [] if raw is None else list(orjson.loads(raw))


# Counts per (engine, catalogue position, known_by): the rows they count change only when the
# catalogue read model moves, and a scan of every school per ledger request was ~20 ms at 20,000.
_COUNTS: weakref.WeakKeyDictionary[sa.Engine, dict[tuple[int, str | None], dict[str, int]]] = \
    weakref.WeakKeyDictionary()


def applicable_school_counts(conn: sa.Connection, known_by: str | None = None) -> dict[str, int]:
    """How many schools each ``applies_to`` value covers."""
    position = sa.select(tracking.c.position).where(tracking.c.name == CatalogueView.name)
    before = conn.execute(position).scalar()
    cache = _COUNTS.setdefault(conn.engine, {})
    key = (-1 if before is None else int(before), known_by)
    if key in cache:
        return dict(cache[key])
    counts = _count_schools(conn, known_by)
    if conn.execute(position).scalar() == before:  # nothing committed in between (read committed)
        if len(cache) >= 64:
            cache.clear()
        cache[key] = counts
    return dict(counts)


def _count_schools(conn: sa.Connection, known_by: str | None) -> dict[str, int]:
    q = sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(sa.case((schools.c.canteen, 1), else_=0)), 0),
        sa.func.coalesce(sa.func.sum(sa.case((schools.c.boarding, 1), else_=0)), 0),
        sa.func.coalesce(sa.func.sum(sa.case((schools.c.school_bus, 1), else_=0)), 0),
    )
    if known_by is not None:
        q = q.where(schools.c.registered_at <= known_by)
    total, canteen, boarding, bus = conn.execute(q).one()
    return {"all": int(total), "canteen": int(canteen), "boarding": int(boarding), "school_bus": int(bus)}


def list_schools(
    conn: sa.Connection, *, after: str | None, limit: int, town: str | None = None,
) -> list[dict[str, Any]]:
    q = sa.select(schools).order_by(schools.c.school_id).limit(limit)
    if after:
        q = q.where(schools.c.school_id > after)
    if town:
        q = q.where(schools.c.town == town)
    return [dict(r) for r in conn.execute(q).mappings()]
