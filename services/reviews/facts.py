"""The annual accountability review (年度考核): the facts, replayed from the log.

``compute_facts`` reads the event log itself, never a read model: one pass over the stored
events in log order (services/security/hashchain.py's ``verified_log``, which checks every event's
link as it goes, so a review never runs on a log that fails verification), decoding only the
event types a measure looks at, keeping events that occurred in the year and were recorded
no later than ``as_of``. Memory stays bounded: per unit and duty a byte per school, bounded
evidence lists, and the itemised deductions.

The pass gathers rule-independent ``Facts`` (scoring.py turns them into points). A new event
type plugs in as a handler here that gathers its facts, plus a scorer in scoring.py. The pass
ends with a signed checkpoint of the head it verified, whose time is the head event's own
recorded time (Ed25519 signatures are deterministic), so the same log gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson

from contracts.rules import RuleSet
from events.base import COUNTY_TZ
from projections.base import type_of_topic
from services.security import hashchain
from services.security.checkpoint import Checkpoint, load_key, sign

APPLIES_FLAGS = ("canteen", "boarding", "school_bus")


class ReviewError(Exception):
    """The review cannot be computed (the log fails verification, bad input); one line."""


# -- time ------------------------------------------------------------------------------------


def utc_key(ts: str) -> str:
    """Recorded times as stored (orjson of an aware datetime) are compared as text; anything
    not already UTC is normalised to the same shape first."""
    if ts.endswith("+00:00"):
        return ts
    return datetime.fromisoformat(ts).astimezone(UTC).isoformat()


def parse_as_of(text: str) -> datetime:
    """An instant with a UTC offset, or a date (the end of that day in the county)."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max, tzinfo=COUNTY_TZ)  # no day after 9999-12-31 needed
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReviewError(f"as_of {text!r} is not a date or an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise ReviewError(f"as_of {text!r} needs a UTC offset, e.g. 2024-01-31T18:00:00+08:00")
    try:  # the instant must exist in UTC too (0001-01-01 at +08:00 does not)
        moment.astimezone(UTC)
    except OverflowError:
        raise ReviewError(f"as_of {text!r} is out of range (years 0001-9999)") from None
    return moment


def load_rules_arg(value: str) -> RuleSet:
    """A rules file path, or the name of a rules set in contracts/rules/."""
    from pathlib import Path

    from contracts.rules import load_rules, named_rules

    path = Path(value)
    return load_rules(path) if path.suffix in (".yaml", ".yml") or path.exists() else named_rules(value)


def as_of_key(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ReviewError("as_of must carry a UTC offset")
    return moment.astimezone(UTC).isoformat()


class _Days:
    """Day numbers of ISO dates and of recorded times in the county's time zone, cached
    (a year has few distinct days, the log has millions of events)."""

    def __init__(self) -> None:
        self._dates: dict[str, int] = {}
        self._local: dict[str, int] = {}
        self._offset_h = int((COUNTY_TZ.utcoffset(datetime(2000, 1, 1)) or timedelta()).total_seconds() // 3600)

    def of(self, iso: str) -> int:
        n = self._dates.get(iso)
        if n is None:
            n = self._dates[iso] = date.fromisoformat(iso[:10]).toordinal()
        return n

    def recorded(self, ts_utc: str) -> int:
        key = ts_utc[:13]
        n = self._local.get(key)
        if n is None:  # China has no daylight saving: a fixed offset
            moment = datetime.fromisoformat(ts_utc[:13] + ":00:00+00:00").astimezone(COUNTY_TZ)
            n = self._local[key] = moment.date().toordinal()
        return n


# -- facts -----------------------------------------------------------------------------------


@dataclass
class UnitFacts:
    code: str
    name: str
    lead: bool
    history: list[tuple[str, list[dict[str, Any]], str]] = field(default_factory=list)  # effective, duties, event

    def duties_on(self, day: str) -> tuple[list[dict[str, Any]], str | None]:
        in_force: list[dict[str, Any]] = []
        source = None
        for effective, duties, event_id in sorted(self.history, key=lambda h: h[0]):
            if effective <= day:
                in_force, source = duties, event_id
        return in_force, source


@dataclass
class DutyStat:
    covered: bytearray
    count: int = 0
    ids: list[str] = field(default_factory=list)


@dataclass
class Facts:
    year: int
    as_of: str
    cutoff: str  # the day duty lists and registries are taken at (year end, or as_of's day)
    evidence_limit: int
    min_grace: int
    backdated_types: frozenset[str]
    units: dict[str, UnitFacts] = field(default_factory=dict)
    schools: dict[str, int] = field(default_factory=dict)  # school id -> index
    school_oids: dict[Any, int] = field(default_factory=dict)
    flags: dict[str, bytearray] = field(default_factory=lambda: {f: bytearray() for f in APPLIES_FLAGS})
    duty: dict[tuple[str, str], DutyStat] = field(default_factory=dict)
    rect_lead: dict[Any, str] = field(default_factory=dict)
    rect_verified: list[tuple[str, str, bool]] = field(default_factory=list)  # unit, event id, on time
    tasks: dict[Any, list[str]] = field(default_factory=dict)  # oid -> [unit, deadline]
    task_completed: list[tuple[str, str, bool]] = field(default_factory=list)
    overdue: list[tuple[str, str, str, str, int]] = field(default_factory=list)  # kind, unit, id, deadline, days
    escalations: list[tuple[str, str, str, int, str, str]] = field(default_factory=list)  # + level, name, deadline
    warnings: dict[str, tuple[str, list[str], str, str]] = field(default_factory=dict)  # id -> issued, units, ev, title
    acks: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (warning, unit) -> at, event id
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    self_checks: dict[str, list[Any]] = field(default_factory=dict)  # campaign -> [on time, late, ids]
    inspections: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)  # (campaign, phase, unit)
    meetings: list[tuple[str, str, list[str], list[str]]] = field(default_factory=list)  # event, held_on, in, out
    targets: dict[Any, dict[str, Any]] = field(default_factory=dict)
    recognitions: dict[Any, list[Any]] = field(default_factory=dict)  # oid -> [school, kind, awarded, event, withdrawn]
    compliance: dict[str, tuple[bytearray, list[str]]] = field(default_factory=dict)
    gaps: list[tuple[str, str, str, str, str]] = field(default_factory=list)  # unit, event id, school, kind, period
    petitions: dict[Any, list[Any]] = field(default_factory=dict)  # oid -> [year, event id, closed]
    appeals: dict[Any, dict[str, Any]] = field(default_factory=dict)
    backdated: list[tuple[str, str, str, str, str, int]] = field(default_factory=list)  # unit, id, type, on, at, days
    events_read: int = 0
    events_used: int = 0

    def school_count(self, applies_to: str) -> int:
        if applies_to == "all":
            return len(self.schools)
        return sum(self.flags[applies_to])

    def covered(self, stat: DutyStat, applies_to: str) -> int:
        if applies_to == "all":
            return sum(stat.covered)
        mask = self.flags[applies_to]
        return sum(1 for c, m in zip(stat.covered, mask, strict=False) if c and m)


class Collector:
    """Event handlers that fill ``Facts``. Each gets (data, originator id, recorded key)."""

    def __init__(self, facts: Facts) -> None:
        self.f = facts
        self.year = str(facts.year)
        self.prev_year = str(facts.year - 1)
        self.year_end = f"{facts.year:04d}-12-31"
        self.days = _Days()
        self.handlers: dict[str, Callable[[dict[str, Any], Any, str], None]] = {
            name[3:]: getattr(self, name) for name in dir(self) if name.startswith("on_")
        }

    def in_year(self, d: dict[str, Any]) -> bool:
        return str(d["occurred_on"]).startswith(self.year)

    def _evidence(self, ids: list[str], event_id: str) -> None:
        if len(ids) < self.f.evidence_limit:
            ids.append(event_id)

    # registries: as of the cutoff day, whatever year they began in
    def on_AgencyRegistered(self, d: dict[str, Any], oid: Any, at: str) -> None:
        self.f.units[d["code"]] = UnitFacts(d["code"], d["name"], bool(d["lead"]),
                                            [(d["occurred_on"], list(d["duties"]), d["event_id"])])

    def on_AgencyDutiesRevised(self, d: dict[str, Any], oid: Any, at: str) -> None:
        unit = self.f.units.get(d["agency"])
        if unit is not None:
            unit.history.append((d["occurred_on"], list(d["duties"]), d["event_id"]))

    def on_AgencyRenamed(self, d: dict[str, Any], oid: Any, at: str) -> None:
        unit = self.f.units.get(d["agency"])
        if unit is not None and d["occurred_on"] <= self.f.cutoff:
            unit.name = d["name"]

    def on_SchoolRegistered(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if d["occurred_on"] > self.f.cutoff or d["school_id"] in self.f.schools:
            return
        idx = len(self.f.schools)
        self.f.schools[d["school_id"]] = idx
        self.f.school_oids[oid] = idx
        for flag in APPLIES_FLAGS:
            self.f.flags[flag].append(1 if d[flag] else 0)
        for stat in self.f.duty.values():
            stat.covered.append(0)
        for arr, _ in self.f.compliance.values():
            arr.append(0)

    def on_SchoolUpdated(self, d: dict[str, Any], oid: Any, at: str) -> None:
        idx = self.f.school_oids.get(oid)
        if idx is not None and d["occurred_on"] <= self.f.cutoff:
            for flag in APPLIES_FLAGS:
                self.f.flags[flag][idx] = 1 if d[flag] else 0

    # the duty log
    def on_DutyPerformed(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if not self.in_year(d):
            return
        key = (d["agency"], d["duty_code"])
        stat = self.f.duty.get(key)
        if stat is None:
            stat = self.f.duty[key] = DutyStat(bytearray(len(self.f.schools)))
        stat.count += 1
        if len(stat.ids) < self.f.evidence_limit:
            stat.ids.append(d["event_id"])
        schools = self.f.schools
        covered = stat.covered
        for sid in d["school_ids"]:
            idx = schools.get(sid)
            if idx is not None:
                covered[idx] = 1

    # rectifications (events/rectifications.py): the lead unit is known from the assignment
    def on_RectificationAssigned(self, d: dict[str, Any], oid: Any, at: str) -> None:
        self.f.rect_lead[oid] = d["lead_unit"]

    def on_RectificationVerified(self, d: dict[str, Any], oid: Any, at: str) -> None:
        unit = self.f.rect_lead.get(oid)
        if unit is not None and self.in_year(d):
            self.f.rect_verified.append((unit, d["event_id"], bool(d["on_time"])))

    def on_RectificationOverdue(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            self.f.overdue.append(("rectification", d["agency"], d["event_id"], d["deadline"], int(d["days_overdue"])))

    def on_RectificationEscalated(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            self.f.escalations.append(("rectification", d["agency"], d["event_id"], int(d["level"]), d["name"],
                                       d["deadline"]))

    # meeting tasks (events/meetings.py)
    def on_TaskAssigned(self, d: dict[str, Any], oid: Any, at: str) -> None:
        self.f.tasks[oid] = [d["unit"], d["deadline"]]

    def on_TaskDeadlineExtended(self, d: dict[str, Any], oid: Any, at: str) -> None:
        task = self.f.tasks.get(oid)
        if task is not None:
            task[1] = d["new_deadline"]

    def on_TaskRejected(self, d: dict[str, Any], oid: Any, at: str) -> None:
        self.on_TaskDeadlineExtended(d, oid, at)

    def on_TaskCompleted(self, d: dict[str, Any], oid: Any, at: str) -> None:
        task = self.f.tasks.get(oid)
        if task is not None and self.in_year(d):
            self.f.task_completed.append((task[0], d["event_id"], d["occurred_on"] <= task[1]))

    def on_TaskOverdue(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            self.f.overdue.append(("task", d["unit"], d["event_id"], d["deadline"], int(d["days_overdue"])))

    def on_TaskEscalated(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            self.f.escalations.append(("task", d["unit"], d["event_id"], int(d["level"]), d["name"], d["deadline"]))

    # warnings (events/warnings.py)
    def on_WarningIssued(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            # event_id is the warning's id; the raw originator id is hex text on SQLite
            self.f.warnings[d["event_id"]] = (d["issued_at"], list(d["units"]), d["event_id"], d["title"])

    def on_WarningAcknowledged(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if d["recipient_kind"] == "unit":
            self.f.acks[(d["warning_id"], d["recipient"])] = (d["acknowledged_at"], d["event_id"])

    # campaigns (events/campaigns.py): by the campaign's year
    def on_CampaignLaunched(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if int(d["year"]) == self.f.year:
            self.f.campaigns[d["event_id"]] = {
                "event_id": d["event_id"], "lead": d["agency"], "name": d["name"], "template": d["template"],
                "inspecting_units": list(d["inspecting_units"]), "phases": list(d["phases"]),
                "schools": len(d["school_ids"]),
            }
            self.f.self_checks[d["event_id"]] = [0, 0, []]

    def on_SelfCheckSubmitted(self, d: dict[str, Any], oid: Any, at: str) -> None:
        campaign = self.f.campaigns.get(d["campaign_id"])
        if campaign is None:
            return
        tally = self.f.self_checks[d["campaign_id"]]
        on_time = d["occurred_on"] <= campaign["phases"][0]["deadline"]
        tally[0 if on_time else 1] += 1
        self._evidence(tally[2], d["event_id"])

    def on_JointInspectionConducted(self, d: dict[str, Any], oid: Any, at: str) -> None:
        campaign = self.f.campaigns.get(d["campaign_id"])
        if campaign is None:
            return
        deadline = next((p["deadline"] for p in campaign["phases"] if p["code"] == d["phase"]), "")
        if d["occurred_on"] > deadline:
            return
        for unit in d["units"]:
            self._evidence(self.f.inspections.setdefault((d["campaign_id"], d["phase"], unit), []), d["event_id"])

    # joint meetings
    def on_MeetingHeld(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            self.f.meetings.append((d["event_id"], d["held_on"], list(d["attendance"]), list(d["absent"])))

    # logistics (events/logistics.py): targets by their year, measured at year end
    def on_TargetSet(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if int(d["year"]) == self.f.year and d["scope"] == "county":
            self.f.targets[oid] = {"code": d["target_code"], "measure": d["measure"], "value": d["value"],
                                   "direction": d["direction"], "text": d["text"], "ids": [d["event_id"]]}

    def on_TargetRevised(self, d: dict[str, Any], oid: Any, at: str) -> None:
        target = self.f.targets.get(oid)
        if target is not None:
            target["value"] = d["value"]
            target["ids"].append(d["event_id"])

    def on_SchoolRecognised(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if d["awarded_on"] <= self.year_end:
            self.f.recognitions[oid] = [d["school_id"], d["kind"], d["awarded_on"], d["event_id"], None]

    def on_RecognitionWithdrawn(self, d: dict[str, Any], oid: Any, at: str) -> None:
        rec = self.f.recognitions.get(oid)
        if rec is not None and d["occurred_on"] <= self.year_end:
            rec[4] = d["occurred_on"]

    def on_ComplianceRecordLogged(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if not self.in_year(d):
            return
        idx = self.f.schools.get(d["school_id"])
        entry = self.f.compliance.get(d["kind"])
        if entry is None:
            entry = self.f.compliance[d["kind"]] = (bytearray(len(self.f.schools)), [])
        if idx is not None:
            entry[0][idx] = 1
        self._evidence(entry[1], d["event_id"])

    def on_ComplianceRecordMissing(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            self.f.gaps.append((d["agency"], d["event_id"], d["school_id"], d["kind"], d["period"]))

    def on_PetitionReceived(self, d: dict[str, Any], oid: Any, at: str) -> None:
        y = d["occurred_on"][:4]
        if y in (self.year, self.prev_year):
            self.f.petitions[oid] = [int(y), d["event_id"], None]

    def on_PetitionClosed(self, d: dict[str, Any], oid: Any, at: str) -> None:
        p = self.f.petitions.get(oid)
        if p is not None:
            p[2] = d["event_id"]

    # appeals (events/reviews.py): by the reviewed year
    def on_ReviewAppealFiled(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if int(d["year"]) == self.f.year:
            self.f.appeals[oid] = {"appeal_id": d["event_id"], "unit": d["unit"], "clause": d["clause"],
                                   "item": d["item"], "filed_event_id": d["event_id"], "reason": d["reason"],
                                   "rules": d["rules"], "status": "pending"}

    def on_ReviewAppealDecided(self, d: dict[str, Any], oid: Any, at: str) -> None:
        appeal = self.f.appeals.get(oid)
        if appeal is not None:
            appeal.update(status="upheld" if d["upheld"] else "rejected", decided_event_id=d["event_id"],
                          decision_reason=d["reason"])

    def backdated(self, type_name: str, d: dict[str, Any], at: str) -> None:
        occurred = d.get("occurred_on")
        if not isinstance(occurred, str) or not occurred.startswith(self.year):
            return
        days = self.days.recorded(at) - self.days.of(occurred)
        if days > self.f.min_grace:
            self.f.backdated.append((d["agency"], d["event_id"], type_name, occurred, at, days))


def replay(conn: Any, *, upto: int, year: int, as_of: datetime, rule_sets: Iterable[RuleSet],
           progress: Callable[[int], None] | None = None) -> tuple[Facts, hashchain.Head]:
    """One verified pass over the log; raises ``hashchain.ChainBroken`` on a tampered log."""
    sets = list(rule_sets)
    key = as_of_key(as_of)
    cutoff = min(f"{year:04d}-12-31", as_of.astimezone(COUNTY_TZ).date().isoformat())
    facts = Facts(
        year=year, as_of=key, cutoff=cutoff, evidence_limit=max(s.evidence_limit for s in sets),
        min_grace=min(s.backdated.grace_days for s in sets),
        backdated_types=frozenset(t for s in sets for t in s.backdated.types),
    )
    col = Collector(facts)
    handlers = col.handlers
    backdated_types = facts.backdated_types
    Route = tuple[str, Callable[..., None] | None, bool]
    by_topic: dict[str, Route | None] = {}
    loads = orjson.loads
    min_grace = facts.min_grace
    heads: list[hashchain.Head] = []
    read = used = 0
    for _pos, oid, _ver, topic, state in hashchain.verified_log(conn, upto=upto, progress=progress, head_out=heads):
        read += 1
        route = by_topic.get(topic)
        if route is None:
            if topic in by_topic:
                continue  # a type no measure looks at: verified, never decoded
            name = type_of_topic(topic)
            handler = handlers.get(name)
            late = name in backdated_types
            route = by_topic[topic] = (name, handler, late) if (handler or late) else None
            if route is None:
                continue
        d = loads(state)
        at = d["timestamp"]
        if not at.endswith("+00:00"):
            at = utc_key(at)
        if at > key:
            continue
        used += 1
        name, handler, late = route
        if handler is not None:
            handler(d, oid, at)
        # Recorded on or before the day it occurred (UTC): at most a day late in the county.
        if late and (at[:10] > d["occurred_on"] or min_grace < 1):
            col.backdated(name, d, at)
    facts.events_read, facts.events_used = read, used
    return facts, heads[0]


# -- the pass, signed --------------------------------------------------------------------------


def _checkpoint(head: hashchain.Head) -> Checkpoint:
    """The head, signed; its time is the head event's recorded time so the review is
    reproducible from the same log."""
    when = datetime(1970, 1, 1, tzinfo=UTC)
    if head.recorded_state is not None:
        ts = orjson.loads(head.recorded_state).get("timestamp")
        if isinstance(ts, str):
            when = datetime.fromisoformat(ts)
    return sign(head, when, load_key())


def compute_facts(
    platform: Any, *, year: int, as_of: datetime, rule_sets: Iterable[RuleSet],
    progress: Callable[[int], None] | None = None,
) -> tuple[Facts, Checkpoint]:
    if not 2000 <= year <= 2100:
        raise ReviewError(f"year {year} is out of range")
    hashchain.catch_up(platform.write_engine)
    with hashchain.snapshot(platform.read_engine) as conn:
        upto = hashchain.tracked_position(conn)
        try:
            facts, head = replay(conn, upto=upto, year=year, as_of=as_of, rule_sets=rule_sets, progress=progress)
        except hashchain.ChainBroken as e:
            raise ReviewError(f"refusing to review a log that fails verification: {e}") from None
    return facts, _checkpoint(head)

