"""A deterministic synthetic county year: schools across towns and every unit's duty
performances at frequencies that fit its duties.

Streams month by month, so memory stays bounded at province scale (--schools 20000):
only one month's records (plus backdated ones waiting for their recording day) are held;
the other parts of the year stream as well (hazards.py, logistics.py, meetings.py).
"""

from __future__ import annotations

import gc
import heapq
import random
from bisect import bisect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from operator import itemgetter
from typing import Any, NamedTuple

from eventsourcing.persistence import Mapper

from contracts.catalogue import Catalogue, DutyItem
from events.agencies import Agency
from events.base import COUNTY_TZ, derive_id, local_date
from events.duty_log import MAX_SCHOOLS_PER_RECORD, DutyRecord
from events.schools import School
from services.app import LianxiApp
from services.demo.created import Created, derived_ids
from services.demo.hazards import hazard_events
from services.demo.logistics import logistics_events
from services.demo.meetings import meeting_events
from services.demo.profiles import Profiles, plant
from services.store.bulk import BulkAppender

TOWNS = ["满都拉图镇", "巴彦淖尔镇", "查干敖包镇", "赛罕高毕苏木", "达日罕乌拉苏木", "巴彦乌拉苏木",
         "洪格尔苏木", "白日乌拉苏木", "红格尔苏木", "额仁淖尔苏木"]
KINDS = [("kindergarten", 0.30), ("primary", 0.40), ("junior", 0.17), ("senior", 0.08), ("vocational", 0.05)]
KIND_NAMES = {"kindergarten": "幼儿园", "primary": "小学", "junior": "初级中学", "senior": "高级中学",
              "vocational": "职业学校"}
ACTOR = "demo:generator"
# Batches the generator maps ahead of the appender's writer (~20 MB each): on SQLite the read
# models' follower (services/demo/follow.py) holds the write lock for seconds at a time, and
# with one batch ahead the generator stopped until it let go.
DEMO_AHEAD = 8
FOUND = "发现问题已当场反馈"
SUMMARIES = {
    "weekly": "例行巡查", "monthly": "月度检查", "quarterly": "季度检查", "semester": "学期检查",
    "yearly": "年度工作", "rainy-season": "汛期专项检查", "on-demand": "按需处置",
}
# How many problems a record found: rng.choices((0, 1, 2, 3), FINDINGS_WEIGHTS), drawn as
# choices draws it (cumulative weights, bisect).
FINDINGS_WEIGHTS = (0.75, 0.15, 0.07, 0.03)
FINDINGS_CUM = list(accumulate(FINDINGS_WEIGHTS))
FINDINGS_TOTAL = FINDINGS_CUM[-1] + 0.0


@dataclass(frozen=True)
class SchoolSpec:
    school_id: str
    name: str
    town: str
    kind: str
    boarding: bool
    canteen: bool
    school_bus: bool


class PlannedRecord(NamedTuple):
    """A tuple, ordered by (recorded_at, seq) in C: the backdated heap compares these."""

    recorded_at: datetime  # UTC
    seq: int
    agency: str
    duty: str
    occurred_on: date
    school_ids: tuple[str, ...]
    cadence: str
    findings: int


_recorded_at = itemgetter(0)  # PlannedRecord.recorded_at, the month's sort key


def make_schools(n: int, rng: random.Random) -> list[SchoolSpec]:
    out = []
    kinds, weights = zip(*KINDS, strict=True)
    for i in range(1, n + 1):
        kind = rng.choices(kinds, weights)[0]
        town = TOWNS[rng.randrange(len(TOWNS))] if n > 10 else TOWNS[i % len(TOWNS)]
        boarding = kind in ("junior", "senior", "vocational") and rng.random() < 0.6
        canteen = kind != "kindergarten" or rng.random() < 0.5
        out.append(SchoolSpec(
            school_id=f"S{i:05d}", name=f"{town}第{i}{KIND_NAMES[kind]}", town=town, kind=kind,
            boarding=boarding, canteen=canteen or boarding, school_bus=rng.random() < 0.35,
        ))
    return out


def _rounds(cadence: str, year: int, rng: random.Random) -> list[tuple[date, date]]:
    """Date windows in which one round of a duty happens."""
    d = date
    if cadence == "weekly":
        start = d(year, 1, 2)
        weeks = []
        while start.year == year:
            # No school-week patrols in the summer and winter holidays.
            if start.month not in (1, 2, 7, 8) or (start.month == 2 and start.day > 20):
                weeks.append((start, min(start + timedelta(days=4), d(year, 12, 31))))
            start += timedelta(days=7)
        return weeks
    if cadence == "monthly":
        return [(d(year, m, 1), _month_end(year, m)) for m in range(1, 13) if m not in (1, 8)]
    if cadence == "quarterly":
        return [(d(year, m, 1), _month_end(year, m + 2)) for m in (1, 4, 7, 10)]
    if cadence == "semester":
        return [(d(year, 3, 1), d(year, 6, 30)), (d(year, 9, 1), d(year, 12, 20))]
    if cadence == "yearly":
        return [(d(year, 3, 1), d(year, 11, 30))]
    if cadence == "rainy-season":
        return [(d(year, m, 1), _month_end(year, m)) for m in (5, 6, 7, 7, 8, 8, 9)]
    # on-demand: a few unplanned occasions
    return [(d(year, m, 1), _month_end(year, m)) for m in sorted(rng.sample(range(1, 13), rng.randint(1, 4)))]


MINUTES_A_DAY = 24 * 60
_MINUTES = [timedelta(minutes=m) for m in range(MINUTES_A_DAY)]
# A county day's midnight in UTC, for days on which the county's UTC offset does not change
# (Asia/Shanghai: every day since 1991); None for the others.
_midnights: dict[date, datetime | None] = {}


def _utc(day: date, hour: int, minute: int) -> datetime:
    """``datetime.combine(day, time(hour, minute), tzinfo=COUNTY_TZ).astimezone(UTC)``: on a
    day without an offset change, its UTC midnight plus the minutes (a fifth of the cost)."""
    if day not in _midnights:
        first = datetime.combine(day, time(0), tzinfo=COUNTY_TZ)
        same = first.utcoffset() == datetime.combine(day, time(23, 59), tzinfo=COUNTY_TZ).utcoffset()
        _midnights[day] = first.astimezone(UTC) if same else None
    midnight = _midnights[day]
    if midnight is None:
        return datetime.combine(day, time(hour, minute), tzinfo=COUNTY_TZ).astimezone(UTC)
    return midnight + _MINUTES[hour * 60 + minute]


def _month_end(year: int, month: int) -> date:
    return (date(year + (month == 12), month % 12 + 1, 1)) - timedelta(days=1)


def _applicable(duty: DutyItem, schools: list[SchoolSpec]) -> list[SchoolSpec]:
    if duty.applies_to == "none":
        return []
    if duty.applies_to == "all":
        return schools
    return [s for s in schools if getattr(s, duty.applies_to)]


def plan_year(
    catalogue: Catalogue, schools: list[SchoolSpec], year: int, seed: int, today: date,
    profiles: Profiles | None = None,
) -> Iterator[list[PlannedRecord]]:
    """Yields each month's records (sorted by recording time), months in order. Planted units
    (services/demo/profiles.py) perform all their duties almost everywhere and on time, or skip
    some, cover few schools and backdate many entries."""
    rng = random.Random(seed)
    profiles = profiles or Profiles()
    plans: list[tuple[str, DutyItem, list[tuple[date, date]], float, float]] = []
    for unit in catalogue.units.units:
        profile = profiles.of(unit.code)
        for duty in unit.duties:
            # Some units are silent on some duties all year, so blind spots exist.
            silent = rng.random() < 0.12 and not unit.lead
            if profile == "negligent":
                silent = profiles.rng("skip", seed, duty.code).random() < 0.4
            if silent and profile != "diligent":
                continue
            diligence, backdating = rng.uniform(0.7, 0.98), 0.04
            if profile == "diligent":
                diligence, backdating = 0.99, 0.0
            elif profile == "negligent":
                diligence, backdating = 0.3, 0.3
            plans.append((unit.code, duty, _rounds(duty.cadence, year, rng), diligence, backdating))
    waiting: list[PlannedRecord] = []  # backdated records, by recording time
    seq = 0
    # Each planned school costs a handful of draws: these are rng.randrange / rng.choices drawn
    # exactly as CPython's Random draws them (the same county for the same seed), in one
    # call instead of three or four, or none (tests/test_demo_stream.py checks they agree).
    rand, getrandbits = rng.random, rng.getrandbits

    def below(n: int) -> int:  # rng.randrange(n)
        k = n.bit_length()
        r = getrandbits(k)
        while r >= n:
            r = getrandbits(k)
        return r

    singles: dict[str, list[tuple[str, ...]]] = {}  # by applies_to: once, not per duty and month
    applicable: dict[str, list[SchoolSpec]] = {}
    slots: dict[date, list[datetime | None]] = {}  # recorded day -> its minutes in UTC, within a month
    for month in range(1, 13):
        slots.clear()
        month_records: list[PlannedRecord] = []
        for code, duty, rounds, diligence, backdating in plans:
            if not any(start.month == month for start, _ in rounds):
                continue
            targets = applicable.get(duty.applies_to)
            if targets is None:
                targets = applicable[duty.applies_to] = _applicable(duty, schools)
                singles[duty.applies_to] = [(s.school_id,) for s in targets]
            for start, end in rounds:
                if start.month != month:
                    continue
                days = max((end - start).days, 0) + 1
                groups: list[tuple[str, ...]]
                if duty.applies_to == "none":
                    groups = [()]
                elif duty.cadence in ("yearly", "on-demand") and len(targets) > 20:
                    # County-wide actions: one record covering a sample of schools.
                    # A record covers at most MAX_SCHOOLS_PER_RECORD (a province-size demo hit it).
                    k = min(MAX_SCHOOLS_PER_RECORD, max(1, int(len(targets) * diligence * 0.3)))
                    groups = [tuple(s.school_id for s in rng.sample(targets, k))]
                else:
                    groups = [g for g in singles[duty.applies_to] if rand() < diligence]
                round_days = [start + timedelta(days=i) for i in range(days)]
                days_bits = days.bit_length()
                for group in groups:
                    # below(days), below(11) and below(60) written out: three calls a record
                    r = getrandbits(days_bits)
                    while r >= days:
                        r = getrandbits(days_bits)
                    day = round_days[r]
                    if day > today:
                        continue
                    hour = getrandbits(4)
                    while hour >= 11:
                        hour = getrandbits(4)
                    minute = getrandbits(6)
                    while minute >= 60:
                        minute = getrandbits(6)
                    # 补录: logged weeks later
                    recorded_day = day + timedelta(days=10 + below(51)) if rand() < backdating else day
                    seq += 1
                    findings = bisect(FINDINGS_CUM, rand() * FINDINGS_TOTAL, 0, len(FINDINGS_CUM) - 1)
                    minutes = slots.get(recorded_day)
                    if minutes is None:
                        minutes = slots[recorded_day] = [None] * MINUTES_A_DAY
                    at = minutes[(8 + hour) * 60 + minute]
                    if at is None:
                        at = minutes[(8 + hour) * 60 + minute] = _utc(recorded_day, 8 + hour, minute)
                    month_records.append(PlannedRecord(at, seq, code, duty.code, day, group, duty.cadence, findings))
        month_end = datetime.combine(_month_end(year, month) + timedelta(days=1), time(0),
                                     tzinfo=COUNTY_TZ).astimezone(UTC)  # compared with UTC times: in UTC
        # The month's records in (recorded_at, seq) order: the backdated ones now due first
        # (lower seqs, popped in that order), then this month's (in seq order), sorted by
        # recorded_at alone; the sort is stable, so equal times stay in seq order.
        ready: list[PlannedRecord] = []
        while waiting and waiting[0].recorded_at < month_end:
            ready.append(heapq.heappop(waiting))
        for rec in month_records:
            if rec.recorded_at < month_end:
                ready.append(rec)
            else:
                heapq.heappush(waiting, rec)
        ready.sort(key=_recorded_at)
        yield ready
    tail = sorted(waiting)
    if tail:
        yield tail


def duty_events(
    agencies: dict[str, Agency], catalogue: Catalogue, specs: list[SchoolSpec], *, year: int, seed: int,
    now: datetime, profiles: Profiles, mapper: Mapper[Any] | None = None,
) -> Iterator[Any]:
    """The year's duty records, in recording order, as the events ``DutyRecord.perform``
    records, built directly (services/demo/created.py; given the application's mapper, as the
    rows the bulk appender stores for them): its checks hold by construction (the
    catalogue's duties, in force all year; schools from the list; at most
    MAX_SCHOOLS_PER_RECORD; nothing dated after its recording)."""
    known = {s.school_id for s in specs}
    today = min(local_date(now), date(year, 12, 31))
    duty_texts = {d.code: d.text for u in catalogue.units.units for d in u.duties}
    summaries: dict[tuple[str, str], str] = {}
    performed = Created(DutyRecord, DutyRecord.DutyPerformed, mapper)
    record_id = derived_ids("demo", str(seed), str(year))
    topic = performed.topic
    iso: dict[date, str] = {}  # occurred_on's text, by day
    for month_records in plan_year(catalogue, specs, year, seed, today, profiles):
        for rec in month_records:
            if rec.recorded_at > now:
                continue
            rid = record_id(str(rec.seq))
            summary = summaries.get((rec.cadence, rec.duty))
            if summary is None:
                summary = summaries[rec.cadence, rec.duty] = f"{SUMMARIES[rec.cadence]}：{duty_texts[rec.duty]}"
            occurred_on = iso.get(rec.occurred_on)
            if occurred_on is None:
                occurred_on = iso[rec.occurred_on] = rec.occurred_on.isoformat()
            event = performed.from_state(rid, {  # DutyPerformed's fields, in its order
                "timestamp": rec.recorded_at, "originator_topic": topic, "event_id": str(rid), "agency": rec.agency,
                "occurred_on": occurred_on, "duty_code": rec.duty, "school_ids": list(rec.school_ids),
                "summary": summary, "findings": {"count": rec.findings, "text": FOUND if rec.findings else ""},
                "evidence": [f"sha256:{rid.hex}"], "logged_by": ACTOR, "request_digest": "",
            })
            if performed.unchecked((rec.agency, rec.duty)):
                performed.compare((rec.agency, rec.duty), event, DutyRecord.perform(
                    record_id=derive_id("demo", str(seed), str(year), str(rec.seq)), agency=agencies[rec.agency],
                    duty_code=rec.duty, school_ids=rec.school_ids, occurred_on=rec.occurred_on, summary=summary,
                    findings={"count": rec.findings, "text": FOUND if rec.findings else ""},
                    evidence=[f"sha256:{rid.hex}"], logged_by=ACTOR, request_digest="",
                    school_exists=known.__contains__, now=rec.recorded_at,
                ))
            yield event


# The cyclic garbage collector's thresholds while the year is generated: see few_collections.
GC_THRESHOLDS = (50_000, 20, 10)


@contextmanager
def few_collections() -> Iterator[None]:
    """Generating the year allocates millions of small containers (events' states, planned
    records, tuples) and frees most at once; with CPython's default thresholds (700, 10, 10)
    the cyclic collector ran every 700 of them and its older generations walked the whole
    live heap (months of planned records, a year's hazards), an eighth of the generator's
    time at 1,000 schools and growing with the county. Collected every 50,000 instead, and
    with what existed before the year (the application, the catalogue, imported modules)
    frozen out of the collections: the same garbage is found, at a fifth of the cost."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def run_demo(
    app: LianxiApp, catalogue: Catalogue, *, schools: int, year: int, seed: int, now: datetime,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Writes the demo year; returns counts. The catalogue is registered as of the start of
    the year, so as-of views within the year see the duties.

    The whole year is one stream through the bulk appender (services/store/bulk.py): big
    transactions, one batch in memory, each part generated in time order as it is written
    (schools, duty records, hazards, logistics, then campaigns, warnings and meetings)."""
    rng = random.Random(seed)
    year_start = datetime.combine(date(year, 1, 1), time(8, 0), tzinfo=COUNTY_TZ)
    app.register_catalogue(catalogue, now=year_start.astimezone(UTC))
    lead = catalogue.lead.code
    specs = make_schools(schools, rng)
    agencies: dict[str, Agency] = {u.code: app.agency(u.code) for u in catalogue.units.units}
    profiles = plant(catalogue, seed)
    school_ids = [s.school_id for s in specs]
    parts: dict[str, dict[str, int]] = {}

    def year_events() -> Iterator[Any]:
        for i, s in enumerate(specs):
            yield School.register(
                by_agency=lead, by_lead=True, school_id=s.school_id, name=s.name, town=s.town, kind=s.kind,
                boarding=s.boarding, canteen=s.canteen, school_bus=s.school_bus,
                now=(year_start + timedelta(seconds=i)).astimezone(UTC),
            )
        yield from duty_events(agencies, catalogue, specs, year=year, seed=seed, now=now, profiles=profiles,
                               mapper=app.mapper)
        parts["hazards"] = yield from hazard_events(catalogue, school_ids=school_ids, year=year, seed=seed, now=now,
                                                    profiles=profiles)
        parts["logistics"] = yield from logistics_events(catalogue, schools=specs, year=year, seed=seed, now=now,
                                                         mapper=app.mapper)
        parts["meetings"] = yield from meeting_events(
            agencies["meteorology"], catalogue, school_ids=school_ids,
            school_towns={s.school_id: s.town for s in specs}, year=year, seed=seed, now=now, profiles=profiles)

    with few_collections():
        written = BulkAppender(app, ahead=DEMO_AHEAD).append(year_events(), progress=progress).appended
    return {"schools": len(specs), "events": written, "hazards": parts["hazards"]["hazards"],
            "logistics": parts["logistics"], "meetings": parts["meetings"], "diligent": list(profiles.diligent),
            "negligent": list(profiles.negligent)}
