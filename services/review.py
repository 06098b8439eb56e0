"""The annual accountability review (年度考核), replayed from the log.

``compute_review`` reads the event log itself, never a read model: one pass over the stored
events in log order (services/security/hashchain.py's ``verified_log``, which checks every event's
link as it goes, so a review never runs on a log that fails verification), decoding only the
event types a measure looks at, keeping events that occurred in the year and were recorded
no later than ``as_of``. Memory stays bounded: per unit and duty a byte per school, bounded
evidence lists, and the itemised deductions.

The pass gathers rule-independent ``Facts``; each rule's ``measure`` names a scorer (the
``SCORERS`` table) that turns facts into credit and deduction lines. A new event type plugs
in as a handler that gathers its facts plus a scorer keyed by a new measure name
(contracts/rules.py lists the measures and their params). The same facts are scored under a
draft rules set for the what-if comparison, so a comparison costs one replay.

Determinism: the output depends only on the log up to its head, the rules file and
``as_of``; it is serialised with sorted keys, lines in a stable order and scores rounded to
two places, and embeds a checkpoint of the head whose time is the head event's own
recorded time (Ed25519 signatures are deterministic), so the same log, rules and as_of give
byte-identical JSON.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import orjson

from contracts.rules import (
    CampaignParams,
    DutyCoverageParams,
    EscalationParams,
    OnTimeParams,
    OverdueParams,
    PerItemParams,
    Rule,
    RuleSet,
    TargetsParams,
    WarningParams,
)
from events.base import COUNTY_TZ
from projections.base import type_of_topic
from services.security import hashchain
from services.security.checkpoint import Checkpoint, load_key, sign

FORMAT = "lianxi-review/1"
COMPARE_FORMAT = "lianxi-review-compare/1"
APPLIES_FLAGS = ("canteen", "boarding", "school_bus")
BACKDATED_COLUMNS = ("unit", "event_id", "type", "occurred_on", "recorded_at", "days_late")


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
            return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=COUNTY_TZ) - timedelta(
                microseconds=1)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReviewError(f"as_of {text!r} is not a date or an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise ReviewError(f"as_of {text!r} needs a UTC offset, e.g. 2024-01-31T18:00:00+08:00")
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
        self.year_end = f"{facts.year}-12-31"
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
    cutoff = min(f"{year}-12-31", as_of.astimezone(COUNTY_TZ).date().isoformat())
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


# -- scoring ---------------------------------------------------------------------------------


@dataclass
class Line:
    unit: str
    clause: str
    item: str
    points: float  # credit earned, or deduction taken (a positive number)
    label: str
    detail: dict[str, Any] = field(default_factory=dict)
    event_ids: list[str] = field(default_factory=list)
    event_count: int | None = None


# (rule, facts, the units the rule applies to, the whole rule set) -> lines
Scorer = Callable[[Rule, Facts, list[str], RuleSet], list[Line]]
SCORERS: dict[str, Scorer] = {}


def scorer(measure: str) -> Callable[[Scorer], Scorer]:
    def register(fn: Scorer) -> Scorer:
        SCORERS[measure] = fn
        return fn
    return register


def _share(done: int, total: int) -> float:
    return done / total if total else 0.0


@scorer("duty_coverage")
def _duty_coverage(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(DutyCoverageParams, rule.params)
    out = []
    for code in units:
        duties, _ = f.units[code].duties_on(f.cutoff)
        if not duties:
            continue
        each = rule.points / len(duties)
        for duty in duties:
            stat = f.duty.get((code, duty["code"]))
            spec = p.by_duty.get(duty["code"])
            target = spec.target if spec is not None else p.coverage_target
            records = stat.count if stat else 0
            detail: dict[str, Any] = {"duty": duty["code"], "applies_to": duty["applies_to"], "records": records,
                                      "target": target}
            if duty["applies_to"] == "none" or target == 0:
                share = 1.0 if records else 0.0
            else:
                applicable = f.school_count(duty["applies_to"])
                covered = f.covered(stat, duty["applies_to"]) if stat else 0
                coverage = _share(covered, applicable)
                detail.update(schools_applicable=applicable, schools_covered=covered, coverage=round(coverage, 4))
                share = min(1.0, coverage / target) if applicable else 1.0
            out.append(Line(code, rule.clause, f"duty:{duty['code']}", each * share,
                            f"{duty['code']} 履职覆盖", detail, list(stat.ids) if stat else [], records))
    return out


@scorer("blind_spots")
def _blind_spots(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(PerItemParams, rule.params)
    out = []
    for code in units:
        duties, source = f.units[code].duties_on(f.cutoff)
        for duty in duties:
            if (code, duty["code"]) not in f.duty:
                out.append(Line(code, rule.clause, f"duty:{duty['code']}", p.per_item,
                                f"履职盲区：{duty['code']} 全年无履职记录", {"duty": duty["code"]},
                                [source] if source else []))
    return out


def _on_time(rule: Rule, units: list[str], rows: list[tuple[str, str, bool]], what: str,
             limit: int) -> list[Line]:
    p = cast(OnTimeParams, rule.params)
    by_unit: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for unit, event_id, on_time in rows:
        by_unit[unit].append((event_id, on_time))
    out = []
    for code in units:
        items = by_unit.get(code, [])
        on = sum(1 for _, ok in items if ok)
        share = _share(on, len(items)) if items else (1.0 if p.when_none == "full" else 0.0)
        late_first = [e for e, ok in items if not ok] + [e for e, ok in items if ok]
        label = "按期整改销号率" if what == "rectifications" else "交办事项按期办结率"
        out.append(Line(code, rule.clause, what, rule.points * share, label,
                        {"closed": len(items), "on_time": on, "late": len(items) - on},
                        late_first[:limit], len(items)))
    return out


@scorer("rectification_on_time")
def _rectification_on_time(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    return _on_time(rule, units, f.rect_verified, "rectifications", f.evidence_limit)


@scorer("task_on_time")
def _task_on_time(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    return _on_time(rule, units, f.task_completed, "tasks", f.evidence_limit)


@scorer("overdue")
def _overdue(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(OverdueParams, rule.params)
    wanted = set(units)
    names = {"rectification": "整改事项", "task": "交办事项"}
    return [
        Line(unit, rule.clause, f"event:{event_id}", p.per_item, f"{names[kind]}逾期(期限 {deadline})",
             {"kind": kind, "deadline": deadline, "days_overdue": days}, [event_id])
        for kind, unit, event_id, deadline, days in f.overdue if unit in wanted and kind in p.kinds
    ]


@scorer("escalations")
def _escalations(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(EscalationParams, rule.params)
    wanted = set(units)
    return [
        Line(unit, rule.clause, f"event:{event_id}", p.level_points[level], f"{name}(第{level}级，期限 {deadline})",
             {"kind": kind, "level": level, "name": name, "deadline": deadline}, [event_id])
        for kind, unit, event_id, level, name, deadline in f.escalations
        if unit in wanted and kind in p.kinds and level in p.level_points
    ]


@scorer("warning_ack_latency")
def _warning_ack_latency(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(WarningParams, rule.params)
    wanted = set(units)
    as_of = datetime.fromisoformat(f.as_of)
    out = []
    for warning_id, (issued_at, asked, event_id, title) in f.warnings.items():
        issued = datetime.fromisoformat(issued_at)
        for unit in asked:
            if unit not in wanted:
                continue
            ack = f.acks.get((warning_id, unit))
            if ack is None:
                if (as_of - issued).total_seconds() / 3600 <= p.within_hours or not p.missing_points:
                    continue
                out.append(Line(unit, rule.clause, f"warning:{warning_id}", p.missing_points,
                                f"未确认预警：{title}", {"issued_at": issued_at}, [event_id]))
                continue
            hours = (datetime.fromisoformat(ack[0]) - issued).total_seconds() / 3600
            if hours > p.within_hours and p.late_points:
                out.append(Line(unit, rule.clause, f"warning:{warning_id}", p.late_points,
                                f"超时确认预警：{title}", {"issued_at": issued_at, "hours": round(hours, 2)},
                                [event_id, ack[1]]))
    return out


@scorer("campaign_phases")
def _campaign_phases(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(CampaignParams, rule.params)
    owed: dict[str, list[tuple[str, float, dict[str, Any], list[str], int | None]]] = defaultdict(list)
    for cid, c in sorted(f.campaigns.items()):
        first, *later = c["phases"]
        on_time, late, ids = f.self_checks[cid]
        share = _share(on_time, c["schools"])
        owed[c["lead"]].append((f"campaign:{c['template']}:{first['code']}",
                                min(1.0, share / p.self_check_share),
                                {"campaign": c["name"], "phase": first["code"], "deadline": first["deadline"],
                                 "schools": c["schools"], "on_time": on_time, "late": late},
                                [c["event_id"], *ids][: f.evidence_limit], on_time + late))
        for phase in later:
            for unit in c["inspecting_units"]:
                found = f.inspections.get((cid, phase["code"], unit), [])
                owed[unit].append((f"campaign:{c['template']}:{phase['code']}", 1.0 if found else 0.0,
                                   {"campaign": c["name"], "phase": phase["code"], "deadline": phase["deadline"],
                                    "joint_inspections": len(found)}, [c["event_id"], *found], None))
    out = []
    for code in units:
        items = owed.get(code, [])
        if not items:
            out.append(Line(code, rule.clause, "campaigns", rule.points if p.when_none == "full" else 0.0,
                            "无专项整治任务", {}))
            continue
        each = rule.points / len(items)
        for item, share, detail, ids, count in items:
            out.append(Line(code, rule.clause, item, each * share,
                            f"{detail['campaign']} {detail['phase']} 阶段(截止 {detail['deadline']})", detail, ids,
                            count))
    return out


def _target_value(spec: Any, target: dict[str, Any], f: Facts) -> tuple[float | None, list[str], dict[str, Any]]:
    """(achieved value, evidence, detail) of one target at year end."""
    year_end = f"{f.year}-12-31"
    if spec.recognition is not None:
        held: dict[str, str] = {}
        for school, kind, awarded, event_id, withdrawn in f.recognitions.values():
            if kind != spec.recognition or (withdrawn is not None and withdrawn <= year_end):
                continue
            if target["measure"] == "count" and not awarded.startswith(str(f.year)):
                continue
            held.setdefault(school, event_id)
        ids = sorted(held.values())[: f.evidence_limit]
        if target["measure"] == "count":
            return float(len(held)), ids, {"recognised": len(held)}
        total = f.school_count(spec.applies_to)
        return (_share(len(held), total) if total else None), ids, {"recognised": len(held), "schools": total}
    if spec.compliance_kind is not None:
        arr, ids = f.compliance.get(spec.compliance_kind, (bytearray(len(f.schools)), []))
        total = f.school_count(spec.applies_to)
        if spec.applies_to == "all":
            done = sum(arr)
        else:
            mask = f.flags[spec.applies_to]
            done = sum(1 for a, m in zip(arr, mask, strict=False) if a and m)
        return (_share(done, total) if total else None), list(ids), {"on_file": done, "schools": total}
    rates: dict[int, float | None] = {}
    cited: list[str] = []
    for y in (f.year - 1, f.year):
        rows = [r for r in f.petitions.values() if r[0] == y]
        closed = [r for r in rows if r[2] is not None]
        rates[y] = _share(len(closed), len(rows)) if rows else None
        if y == f.year:
            cited = sorted(r[1] for r in rows)[: f.evidence_limit]
    return rates[f.year], cited, {"previous_year_rate": rates[f.year - 1]}


@scorer("logistics_targets")
def _logistics_targets(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(TargetsParams, rule.params)
    evaluated = []
    for target in sorted(f.targets.values(), key=lambda t: t["code"]):
        spec = p.targets.get(target["code"])
        if spec is None:
            continue
        value, ids, detail = _target_value(spec, target, f)
        goal = target["value"]
        if goal is None:  # "raise it" (提高): beat last year's figure
            before = detail.get("previous_year_rate")
            met = value is not None and (before is None or value > before)
        else:
            met = value is not None and value + 1e-9 >= goal
        detail.update(target=goal, direction=target["direction"], achieved=None if value is None else round(value, 4),
                      met=met)
        evaluated.append((target, met, detail, [*target["ids"], *ids]))
    out = []
    for code in units:
        if not evaluated:
            out.append(Line(code, rule.clause, "targets", rule.points if p.when_none == "full" else 0.0,
                            "本年度未设定县级后勤目标", {}))
            continue
        each = rule.points / len(evaluated)
        for target, met, detail, ids in evaluated:
            out.append(Line(code, rule.clause, f"target:{target['code']}", each if met else 0.0,
                            f"{target['text']}({'已完成' if met else '未完成'})", dict(detail), ids))
    return out


@scorer("meeting_attendance")
def _meeting_attendance(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(PerItemParams, rule.params)
    wanted = set(units)
    return [
        Line(unit, rule.clause, f"event:{event_id}", p.per_item, f"缺席联席会议({held_on})", {"held_on": held_on},
             [event_id])
        for event_id, held_on, _present, absent in f.meetings for unit in absent if unit in wanted
    ]


@scorer("compliance_gaps")
def _compliance_gaps(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(PerItemParams, rule.params)
    wanted = set(units)
    return [
        Line(unit, rule.clause, f"event:{event_id}", p.per_item, f"台账缺失：{school} {kind} {period}",
             {"school_id": school, "kind": kind, "period": period}, [event_id])
        for unit, event_id, school, kind, period in f.gaps if unit in wanted
    ]


def _flagged(rules: RuleSet, f: Facts) -> list[tuple[str, str, str, str, str, int]]:
    types = set(rules.backdated.types)
    grace = rules.backdated.grace_days
    return [b for b in f.backdated if b[2] in types and b[5] > grace]


@scorer("backdated_reports")
def _backdated_reports(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(PerItemParams, rule.params)
    wanted = set(units)
    return [
        Line(unit, rule.clause, f"event:{event_id}", p.per_item, f"补录：{kind} 发生于 {occurred}，迟 {days} 天录入",
             {"type": kind, "occurred_on": occurred, "recorded_at": at, "days_late": days}, [event_id])
        for unit, event_id, kind, occurred, at, days in _flagged(rules, f) if unit in wanted
    ]


def _r(x: float) -> float:
    return round(x + 0.0, 2) + 0.0  # + 0.0: never "-0.0"


@dataclass
class Scored:
    rules: RuleSet
    units: dict[str, dict[str, Any]]
    ranking: list[dict[str, Any]]
    contributions: dict[str, dict[str, float]]  # unit -> clause -> points added to (or taken from) the score


def score(rules: RuleSet, f: Facts) -> Scored:
    missing = sorted({r.measure for r in rules.rules} - set(SCORERS))
    if missing:
        raise ReviewError(f"rules {rules.name}: no scorer for measure(s) {', '.join(missing)}")
    appeals = {(a["unit"], a["clause"], a["item"]): a for a in f.appeals.values()}
    all_units = sorted(f.units)
    per_unit: dict[str, list[dict[str, Any]]] = {u: [] for u in all_units}
    earned: dict[str, float] = defaultdict(float)
    possible: dict[str, float] = defaultdict(float)
    deducted: dict[str, float] = defaultdict(float)
    contributions: dict[str, dict[str, float]] = {u: {} for u in all_units}
    for rule in rules.rules:
        scope = [u for u in all_units if rule.units is None or u in rule.units]
        lines = SCORERS[rule.measure](rule, f, scope, rules)
        grouped: dict[str, list[Line]] = defaultdict(list)
        for line in lines:
            grouped[line.unit].append(line)
        for unit in scope:
            items = sorted(grouped.get(unit, []), key=lambda ln: ln.item)
            rendered = []
            subtotal = 0.0
            for ln in items:
                entry: dict[str, Any] = {"item": ln.item, "label": ln.label, "points": _r(ln.points),
                                         "detail": ln.detail, "event_ids": ln.event_ids,
                                         "event_count": ln.event_count if ln.event_count is not None
                                         else len(ln.event_ids), "counted": True}
                appeal = appeals.get((unit, rule.clause, ln.item)) if rule.kind == "deduction" else None
                if appeal is not None:
                    entry["appeal"] = {k: v for k, v in appeal.items() if k not in ("unit", "clause", "item")}
                    if appeal["status"] == "upheld":
                        entry["counted"] = False
                if entry["counted"]:
                    subtotal += ln.points  # unrounded: three thirds make a whole
                rendered.append(entry)
            if rule.kind == "credit":
                points = _r(min(subtotal, rule.points))
                earned[unit] += points
                possible[unit] += rule.points
            else:
                points = _r(min(subtotal, rule.points))
                deducted[unit] += points
            per_unit[unit].append({"clause": rule.clause, "measure": rule.measure, "kind": rule.kind,
                                   "text": rule.text, "max_points": rule.points, "points": points,
                                   "capped": subtotal > rule.points + 1e-9, "items": rendered})
    units: dict[str, dict[str, Any]] = {}
    for unit in all_units:
        scale = rules.scale / possible[unit] if possible[unit] else 0.0
        credit = _r(earned[unit] * scale)
        score_ = _r(credit - deducted[unit])
        for c in per_unit[unit]:
            value = c["points"] * scale if c["kind"] == "credit" else -c["points"]
            contributions[unit][c["clause"]] = _r(value)
        units[unit] = {"unit": unit, "name": f.units[unit].name, "score": score_, "credit": credit,
                       "credit_earned": _r(earned[unit]), "credit_possible": _r(possible[unit]),
                       "deductions": _r(deducted[unit]), "clauses": per_unit[unit]}
    order = sorted(all_units, key=lambda u: (-units[u]["score"], u))
    ranking: list[dict[str, Any]] = []
    for i, unit in enumerate(order):
        rank = i + 1
        if i and units[unit]["score"] == units[order[i - 1]]["score"]:
            rank = ranking[-1]["rank"]
        units[unit]["rank"] = rank
        ranking.append({"rank": rank, "unit": unit, "name": units[unit]["name"], "score": units[unit]["score"]})
    return Scored(rules, units, ranking, contributions)


# -- the review ------------------------------------------------------------------------------


def rules_meta(rules: RuleSet) -> dict[str, Any]:
    return {"name": rules.name, "id": rules.id, "version": rules.version, "title": rules.title,
            "sha256": rules.sha256, "scale": rules.scale, "backdated_grace_days": rules.backdated.grace_days}


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


def review_document(facts: Facts, checkpoint: Checkpoint, scored: Scored) -> dict[str, Any]:
    rules = scored.rules
    # Rows, not objects: a province year flags hundreds of thousands of entries.
    rows = sorted(_flagged(rules, facts), key=lambda b: (b[0], b[3], b[1]))
    by_unit: dict[str, int] = defaultdict(int)
    for b in rows:
        by_unit[b[0]] += 1
    flagged = [list(b) for b in rows]
    appeals = sorted(
        (dict(v) for v in facts.appeals.values()),
        key=lambda a: (a["unit"], a["clause"], a["item"]),
    )
    return {
        "format": FORMAT,
        "title": f"{facts.year}年度成员单位考核结果",
        "year": facts.year,
        "as_of": facts.as_of,
        "rules": rules_meta(rules),
        "checkpoint": checkpoint.as_dict(),
        "log": {"events_read": facts.events_read, "events_used": facts.events_used,
                "head_position": checkpoint.position, "schools": len(facts.schools)},
        "ranking": scored.ranking,
        "units": [scored.units[r["unit"]] for r in scored.ranking],
        "backdated": {"grace_days": rules.backdated.grace_days, "count": len(flagged), "by_unit": dict(by_unit),
                      "columns": list(BACKDATED_COLUMNS), "entries": flagged},
        "appeals": appeals,
    }


def _param_change(name: str, a: Any, b: Any) -> str:
    scalar = (int, float, str, bool, type(None))
    if isinstance(a, scalar) and isinstance(b, scalar):
        return f"{name} {a} → {b}"
    return name


def _rule_change(a: Rule | None, b: Rule | None) -> str | None:
    if a is None:
        return "新增条款"
    if b is None:
        return "删除条款"
    parts = []
    if a.measure != b.measure:
        parts.append(f"计分方式 {a.measure} → {b.measure}")
    if a.points != b.points:
        parts.append(f"分值 {a.points:g} → {b.points:g}")
    if a.units != b.units:
        parts.append("适用单位调整")
    if a.params != b.params:
        pa, pb = a.params.model_dump(), b.params.model_dump()
        changed = sorted(k for k in set(pa) | set(pb) if pa.get(k) != pb.get(k))
        parts.append("参数调整: " + ", ".join(_param_change(k, pa.get(k), pb.get(k)) for k in changed))
    return "; ".join(parts) or None


def compare_document(facts: Facts, checkpoint: Checkpoint, base: Scored, draft: Scored) -> dict[str, Any]:
    clauses = list(dict.fromkeys([r.clause for r in base.rules.rules] + [r.clause for r in draft.rules.rules]))
    changes = {}
    for clause in clauses:
        a = next((r for r in base.rules.rules if r.clause == clause), None)
        b = next((r for r in draft.rules.rules if r.clause == clause), None)
        change = _rule_change(a, b)
        if change:
            changes[clause] = change
    rows = []
    for r in base.ranking:
        unit = r["unit"]
        ua, ub = base.units[unit], draft.units[unit]
        ca, cb = base.contributions[unit], draft.contributions[unit]
        moved = []
        for clause in clauses:
            va, vb = ca.get(clause, 0.0), cb.get(clause, 0.0)
            if abs(va - vb) >= 0.005:
                moved.append({"clause": clause, "base_points": va, "draft_points": vb, "delta": _r(vb - va),
                              "change": changes.get(clause, "分值换算(其他条款调整)")})
        rows.append({"unit": unit, "name": ua["name"],
                     "base": {"score": ua["score"], "rank": ua["rank"]},
                     "draft": {"score": ub["score"], "rank": ub["rank"]},
                     "score_delta": _r(ub["score"] - ua["score"]), "rank_delta": ua["rank"] - ub["rank"],
                     "moved_by": moved})
    return {
        "format": COMPARE_FORMAT,
        "title": f"{facts.year}年度考核细则调整对比",
        "year": facts.year,
        "as_of": facts.as_of,
        "base": rules_meta(base.rules),
        "draft": rules_meta(draft.rules),
        "checkpoint": checkpoint.as_dict(),
        "rule_changes": [{"clause": c, "change": changes[c]} for c in clauses if c in changes],
        "units": rows,
    }


def compute_review(
    platform: Any, *, year: int, rules: RuleSet, as_of: datetime | None = None, compare: RuleSet | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The review of ``year`` under ``rules`` (or, with ``compare``, the side-by-side table)."""
    moment = as_of or platform.clock()
    sets = [rules] + ([compare] if compare else [])
    facts, checkpoint = compute_facts(platform, year=year, as_of=moment, rule_sets=sets, progress=progress)
    base = score(rules, facts)
    if compare is None:
        return review_document(facts, checkpoint, base)
    return compare_document(facts, checkpoint, base, score(compare, facts))


def to_json(document: dict[str, Any]) -> bytes:
    """Byte-identical for the same document: sorted keys, fixed float rendering. Compact (a
    province year's review is large; HTML is the readable form)."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def find_deduction(document: dict[str, Any], unit: str, clause: str, item: str) -> dict[str, Any] | None:
    for u in document["units"]:
        if u["unit"] != unit:
            continue
        for c in u["clauses"]:
            if c["clause"] == clause and c["kind"] == "deduction":
                for entry in c["items"]:
                    if entry["item"] == item:
                        return cast(dict[str, Any], entry)
    return None
