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
from datetime import UTC, datetime
from typing import Any

import orjson

from contracts.rules import RuleSet
from events.base import COUNTY_TZ
from projections.base import type_of_topic
from services.reviews.times import ReviewError, _Days, as_of_key, load_rules_arg, parse_as_of, utc_key
from services.security import hashchain
from services.security.checkpoint import Checkpoint, load_key, sign

__all__ = ["ReviewError", "as_of_key", "load_rules_arg", "parse_as_of", "utc_key"]

APPLIES_FLAGS = ("canteen", "boarding", "school_bus")


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
class Item:
    """A rectification or task as the load-aware clauses see it: whose, due when, closed how."""

    unit: str
    deadline: str
    event_id: str  # its assignment
    closed_on: str | None = None
    on_time: bool | None = None
    closed_event: str | None = None
    level: int = 0  # highest escalation step reached
    level_event: str | None = None

    def due_by(self, year: int, cutoff: str) -> bool:
        """Counted in ``year``: its deadline fell in the year by the cut-off day, or it was closed
        in the year."""
        closed = self.closed_on is not None and self.closed_on[:4] == str(year)
        return closed or (self.deadline[:4] == str(year) and self.deadline <= cutoff)


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
    # Load-aware measures (services/reviews/rated.py): each item's life, and each unit's entries.
    rects: dict[Any, Item] = field(default_factory=dict)
    task_items: dict[Any, Item] = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)  # unit -> entries of backdated types in the year
    compliance_logged: dict[str, int] = field(default_factory=dict)  # unit -> records logged in the year
    # Names people read, and the log position of every event a line may cite (evidence links).
    school_names: dict[str, str] = field(default_factory=dict)
    duty_texts: dict[str, str] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    head_time: str = ""  # the latest recorded time counted (the as_of of a review as of the head)
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
        self.pos = 0  # position of the event being handled
        self.handlers: dict[str, Callable[[dict[str, Any], Any, str], None]] = {
            name[3:]: getattr(self, name) for name in dir(self) if name.startswith("on_")
        }

    def in_year(self, d: dict[str, Any]) -> bool:
        return str(d["occurred_on"]).startswith(self.year)

    def _evidence(self, ids: list[str], event_id: str) -> None:
        if len(ids) < self.f.evidence_limit:
            ids.append(event_id)
            self.f.positions[event_id] = self.pos

    def cite(self, event_id: str) -> None:
        self.f.positions[event_id] = self.pos

    # registries: as of the cutoff day, whatever year they began in
    def on_AgencyRegistered(self, d: dict[str, Any], oid: Any, at: str) -> None:
        self.f.units[d["code"]] = UnitFacts(d["code"], d["name"], bool(d["lead"]),
                                            [(d["occurred_on"], list(d["duties"]), d["event_id"])])
        self._duties(d)

    def _duties(self, d: dict[str, Any]) -> None:
        self.cite(d["event_id"])
        for duty in d["duties"]:
            self.f.duty_texts[duty["code"]] = duty["text"]

    def on_AgencyDutiesRevised(self, d: dict[str, Any], oid: Any, at: str) -> None:
        unit = self.f.units.get(d["agency"])
        if unit is not None:
            unit.history.append((d["occurred_on"], list(d["duties"]), d["event_id"]))
            self._duties(d)

    def on_AgencyRenamed(self, d: dict[str, Any], oid: Any, at: str) -> None:
        unit = self.f.units.get(d["agency"])
        if unit is not None and d["occurred_on"] <= self.f.cutoff:
            unit.name = d["name"]

    def on_SchoolRegistered(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if d["occurred_on"] > self.f.cutoff or d["school_id"] in self.f.schools:
            return
        idx = len(self.f.schools)
        self.f.schools[d["school_id"]] = idx
        self.f.school_names[d["school_id"]] = d["name"]
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
            school = next((s for s, i in self.f.schools.items() if i == idx), None)
            if school is not None:
                self.f.school_names[school] = d["name"]

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
            self.f.positions[d["event_id"]] = self.pos
        schools = self.f.schools
        covered = stat.covered
        for sid in d["school_ids"]:
            idx = schools.get(sid)
            if idx is not None:
                covered[idx] = 1

    # rectifications (events/rectifications.py): the lead unit is known from the assignment
    def on_RectificationAssigned(self, d: dict[str, Any], oid: Any, at: str) -> None:
        self.f.rect_lead[oid] = d["lead_unit"]
        self.f.rects[oid] = Item(d["lead_unit"], d["deadline"], d["event_id"])
        self.cite(d["event_id"])

    def on_DeadlineExtended(self, d: dict[str, Any], oid: Any, at: str) -> None:
        item = self.f.rects.get(oid)
        if item is not None:
            item.deadline = d["new_deadline"]

    def on_RectificationRejected(self, d: dict[str, Any], oid: Any, at: str) -> None:
        item = self.f.rects.get(oid)
        if item is not None:
            item.deadline, item.closed_on, item.on_time, item.closed_event = d["new_deadline"], None, None, None

    def on_RectificationVerified(self, d: dict[str, Any], oid: Any, at: str) -> None:
        unit = self.f.rect_lead.get(oid)
        if unit is not None and self.in_year(d):
            self.f.rect_verified.append((unit, d["event_id"], bool(d["on_time"])))
            self.cite(d["event_id"])
        item = self.f.rects.get(oid)
        if item is not None:
            item.closed_on, item.on_time, item.closed_event = d["occurred_on"], bool(d["on_time"]), d["event_id"]
            self.cite(d["event_id"])

    def on_RectificationOverdue(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            self.f.overdue.append(("rectification", d["agency"], d["event_id"], d["deadline"], int(d["days_overdue"])))
            self.cite(d["event_id"])

    def _escalated(self, item: Item | None, d: dict[str, Any]) -> None:
        if item is not None and self.in_year(d) and int(d["level"]) > item.level:
            item.level, item.level_event = int(d["level"]), d["event_id"]

    def on_RectificationEscalated(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            self.f.escalations.append(("rectification", d["agency"], d["event_id"], int(d["level"]), d["name"],
                                       d["deadline"]))
            self.cite(d["event_id"])
        self._escalated(self.f.rects.get(oid), d)

    # meeting tasks (events/meetings.py)
    def on_TaskAssigned(self, d: dict[str, Any], oid: Any, at: str) -> None:
        self.f.tasks[oid] = [d["unit"], d["deadline"]]
        self.f.task_items[oid] = Item(d["unit"], d["deadline"], d["event_id"])
        self.cite(d["event_id"])

    def on_TaskDeadlineExtended(self, d: dict[str, Any], oid: Any, at: str) -> None:
        task = self.f.tasks.get(oid)
        if task is not None:
            task[1] = d["new_deadline"]
        item = self.f.task_items.get(oid)
        if item is not None:
            item.deadline, item.closed_on, item.on_time, item.closed_event = d["new_deadline"], None, None, None

    def on_TaskRejected(self, d: dict[str, Any], oid: Any, at: str) -> None:
        self.on_TaskDeadlineExtended(d, oid, at)

    def on_TaskCompleted(self, d: dict[str, Any], oid: Any, at: str) -> None:
        task = self.f.tasks.get(oid)
        if task is not None and self.in_year(d):
            self.f.task_completed.append((task[0], d["event_id"], d["occurred_on"] <= task[1]))
            self.cite(d["event_id"])
        item = self.f.task_items.get(oid)
        if item is not None:
            item.closed_on, item.on_time = d["occurred_on"], d["occurred_on"] <= item.deadline
            item.closed_event = d["event_id"]
            self.cite(d["event_id"])

    def on_TaskOverdue(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            self.f.overdue.append(("task", d["unit"], d["event_id"], d["deadline"], int(d["days_overdue"])))
            self.cite(d["event_id"])

    def on_TaskEscalated(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            self.f.escalations.append(("task", d["unit"], d["event_id"], int(d["level"]), d["name"], d["deadline"]))
            self.cite(d["event_id"])
        self._escalated(self.f.task_items.get(oid), d)

    # warnings (events/warnings.py)
    def on_WarningIssued(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            # event_id is the warning's id; the raw originator id is hex text on SQLite
            self.f.warnings[d["event_id"]] = (d["issued_at"], list(d["units"]), d["event_id"], d["title"])
            self.cite(d["event_id"])

    def on_WarningAcknowledged(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if d["recipient_kind"] == "unit":
            self.f.acks[(d["warning_id"], d["recipient"])] = (d["acknowledged_at"], d["event_id"])
            self.cite(d["event_id"])

    # campaigns (events/campaigns.py): by the campaign's year
    def on_CampaignLaunched(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if int(d["year"]) == self.f.year:
            self.f.campaigns[d["event_id"]] = {
                "event_id": d["event_id"], "lead": d["agency"], "name": d["name"], "template": d["template"],
                "inspecting_units": list(d["inspecting_units"]), "phases": list(d["phases"]),
                "schools": len(d["school_ids"]),
            }
            self.f.self_checks[d["event_id"]] = [0, 0, []]
            self.cite(d["event_id"])

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
            self.cite(d["event_id"])

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
        self.f.compliance_logged[d["agency"]] = self.f.compliance_logged.get(d["agency"], 0) + 1

    def on_ComplianceRecordMissing(self, d: dict[str, Any], oid: Any, at: str) -> None:
        if self.in_year(d):
            self.f.gaps.append((d["agency"], d["event_id"], d["school_id"], d["kind"], d["period"]))
            self.cite(d["event_id"])

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
            self.cite(d["event_id"])


def replay(conn: Any, *, upto: int, year: int, as_of: datetime | None, rule_sets: Iterable[RuleSet],
           progress: Callable[[int], None] | None = None) -> tuple[Facts, hashchain.Head]:
    """One verified pass over the log; raises ``hashchain.ChainBroken`` on a tampered log.
    Without ``as_of`` every event up to the head counts, and ``facts.as_of`` becomes the latest
    recorded time among them (the log head's time), so the same log gives the same review."""
    sets = list(rule_sets)
    key = as_of_key(as_of) if as_of is not None else "9999-12-31T23:59:59+00:00"
    year_end = f"{year:04d}-12-31"
    cutoff = year_end if as_of is None else min(year_end, as_of.astimezone(COUNTY_TZ).date().isoformat())
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
    latest = ""
    entries = facts.entries
    for pos, oid, _ver, topic, state in hashchain.verified_log(conn, upto=upto, progress=progress, head_out=heads):
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
        if at > latest:
            latest = at
        name, handler, late = route
        col.pos = pos
        if handler is not None:
            handler(d, oid, at)
        if late and str(d.get("occurred_on", "")).startswith(col.year):
            entries[d["agency"]] = entries.get(d["agency"], 0) + 1
        # Recorded on or before the day it occurred (UTC): at most a day late in the county.
        if late and (at[:10] > d["occurred_on"] or min_grace < 1):
            col.backdated(name, d, at)
    facts.events_read, facts.events_used = read, used
    head = heads[0]
    facts.head_time = latest
    if as_of is None:
        # As of the head: the latest recorded time counted (or the head event's own time).
        head_ts = orjson.loads(head.recorded_state).get("timestamp") if head.recorded_state is not None else None
        stamps = [t for t in (latest, utc_key(head_ts) if isinstance(head_ts, str) else "") if t]
        facts.as_of = max(stamps) if stamps else datetime(1970, 1, 1, tzinfo=UTC).isoformat()
        head_day = datetime.fromisoformat(facts.as_of).astimezone(COUNTY_TZ).date().isoformat()
        facts.cutoff = min(f"{year:04d}-12-31", head_day)
    return facts, head


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
    platform: Any, *, year: int, as_of: datetime | None, rule_sets: Iterable[RuleSet],
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

