"""Demo school logistics for the synthetic county year (called at the end of run_demo):
the year's targets (county, plus water-saving quotas for the largest towns), recognitions
awarded before and during the year (and one withdrawn), compliance records with realistic
gaps (most on time, some late, a few never filed; the gaps past grace recorded exactly as
the missing-record job would, hazards included), and logistics petitions with answers,
closures and satisfaction, plus last year's petitions for the comparison the target asks.

Every action runs through the domain with its simulated ``now``, in chronological order, so
the log reads as if the year had happened. Deterministic from the seed and year; nothing
after ``now`` is written.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from eventsourcing.persistence import Mapper

from contracts.catalogue import Catalogue
from contracts.compliance import ComplianceCalendar, default_calendar, period_bounds, periods_overlapping
from events.base import COUNTY_TZ, derive_id, local_date
from events.logistics import AnnualTarget, ComplianceRecord, Petition, Recognition
from projections.compliance import owes
from services.demo.created import Created, derived_ids
from services.logistics.gaps import Gap, gap_aggregates

ACTOR = "demo:generator"

PETITION_SUMMARIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # topic -> (handling unit, answer, summaries)
    "canteen": ("market-supervision", "已会同学校核查食堂价格和菜品质量，督促整改并公示。",
                ("反映学校食堂饭菜价格偏高", "反映食堂饭菜分量不足", "反映食堂卫生状况差")),
    "drinking-water": ("education", "已督促学校更换合格供水企业并索取每批次检测报告。",
                       ("反映学校桶装水来源不明", "反映饮水机长期未消毒")),
    "dormitory": ("education", "已督促学校完善宿舍值班巡查和维修。",
                  ("反映学生宿舍热水供应不足", "反映宿舍门锁损坏未修")),
    "school-bus": ("education", "已核查校车运行情况，督促落实教师跟车制度。",
                   ("反映校车接送时间不固定", "反映接送车辆疑似超员")),
    "insurance": ("education", "已说明校方责任险统保政策，学生商业保险自愿投保。",
                  ("反映学校要求购买商业保险", "咨询校方责任险理赔流程")),
    "uniforms-supplies": ("education", "已核查校服采购程序，确认依法合规采购。",
                          ("反映校服价格过高", "反映强制购买床上用品")),
    "fees": ("education", "已核查收费项目，督促学校清退不合规收费。", ("反映学校代收费项目不清",)),
    "environment": ("education", "已督促学校整改校园环境卫生问题。", ("反映校园垃圾清运不及时",)),
}
SATISFACTION_WEIGHTS = (("satisfied", 0.68), ("basically-satisfied", 0.2), ("unsatisfied", 0.09),
                        ("not-evaluated", 0.03))


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=COUNTY_TZ).astimezone(UTC)


def _spec_row(s: Any, registered_on: date) -> dict[str, Any]:
    return {"school_id": s.school_id, "town": s.town, "kind": s.kind, "canteen": s.canteen, "boarding": s.boarding,
            "school_bus": s.school_bus, "registered_on": registered_on.isoformat()}


# (when, seq, what to run, its arguments): a plain tuple, ordered by (when, seq) in C. A
# province year plans a million compliance actions; a tuple of arguments is a fraction of a
# closure (and of a dataclass around it).
_Action = tuple[datetime, int, Callable[..., list[Any]], tuple[Any, ...]]


class _Plan:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.actions: list[_Action] = []
        self.seq = 0

    def at(self, moment: datetime, run: Callable[..., list[Any]], *args: Any) -> None:
        if moment > self.now:
            return
        self.seq += 1
        heapq.heappush(self.actions, (moment, self.seq, run, args))

    def until(self, bound: datetime | None) -> Iterator[Any]:
        """Runs the actions planned before ``bound`` (all with None) in time order, yielding
        the aggregates each one changed."""
        actions = self.actions
        while actions and (bound is None or actions[0][0] < bound):
            _, _, run, args = heapq.heappop(actions)
            yield from run(*args)


def logistics_events(
    catalogue: Catalogue, *, schools: Sequence[Any], year: int, seed: int, now: datetime,
    calendar: ComplianceCalendar | None = None, mapper: Mapper[Any] | None = None,
) -> Generator[Any, None, dict[str, int]]:
    """The year's logistics as aggregates with pending events, in time order (for the bulk
    appender); returns counts. ``schools`` are the demo's SchoolSpecs. Given the application's
    mapper, compliance records come as the rows the bulk appender stores (services/demo/created.py).

    Memory stays bounded at province scale: the compliance periods are planned one at a time,
    in the order of their first possible action, and the actions planned so far run up to
    that moment before the next period is planned, so only the periods still open are held
    (a year planned whole held 1.3 GiB at 20,000 schools)."""
    cal = calendar or default_calendar()
    rng = random.Random(f"logistics-{seed}-{year}")
    lead = catalogue.lead.code
    today = min(local_date(now), date(year, 12, 31))
    plan = _Plan(now)
    counts: Counter[str] = Counter()
    known = {s.school_id for s in schools}

    # -- targets: the catalogue's, set in the first working days; quotas for the largest towns
    towns = Counter(s.town for s in schools)

    def set_target(code: str, scope: str, value: Any, day: date) -> None:
        t = next(t for t in catalogue.targets.targets if t.code == code)
        m = cal.target_measures.get(code)
        rec = t.recognition or (m.recognition if m else None)

        def run(when: datetime = _local(day, 9)) -> list[Any]:
            counts["targets"] += 1
            return [AnnualTarget.set_target(
                by_agency=lead, by_lead=True, target_code=code, year=year, scope=scope, measure=t.measure,
                value=value, direction=t.direction, recognition=rec, text=t.text, set_by=ACTOR, now=when)]
        plan.at(_local(day, 9), run)

    for t in catalogue.targets.targets:
        set_target(t.code, "county", t.value, date(year, 1, 4))
    for town, _ in sorted(towns.items(), key=lambda kv: (-kv[1], kv[0]))[:4]:
        set_target("water-saving-schools", f"town:{town}", 1, date(year, 1, 5))

    # -- recognitions --------------------------------------------------------------------------

    def award(school: Any, kind: str, level: str, day: date, body: str, recorded: date) -> None:
        rid = derive_id("demo-recognition", str(seed), school.school_id, kind, day.isoformat())

        def run(when: datetime = _local(recorded, 10, rng.randint(0, 59))) -> list[Any]:
            counts["recognitions"] += 1
            return [Recognition.award(
                by_agency=lead, by_lead=True, school_id=school.school_id, school_applies=True, kind=kind,
                known_kinds=[r.code for r in cal.recognitions], level=level, awarded_on=day, awarding_body=body,
                evidence=[f"sha256:{rid.hex}"], logged_by=ACTOR, now=when)]
        plan.at(_local(recorded, 10), run)

    canteen = [s for s in schools if s.canteen]
    boarding = [s for s in schools if s.boarding]
    shuffled = list(schools)
    rng.shuffle(shuffled)
    n = len(shuffled)
    # Green schools: about half already recognised (recorded in January from earlier years),
    # then two provincial rounds in June and November.
    prior_green = shuffled[: int(n * 0.48)]
    june_green = shuffled[int(n * 0.48): int(n * 0.60)]
    nov_green = shuffled[int(n * 0.60): int(n * 0.71)]
    for s in prior_green:
        past = date(year - rng.choice((1, 2, 3)), rng.choice((6, 11)), rng.randint(10, 25))
        award(s, "green-school", "province", past, "四川省教育厅", date(year, 1, rng.randint(6, 20)))
    for s in june_green:
        award(s, "green-school", "province", date(year, 6, 18), "四川省教育厅", date(year, 6, rng.randint(19, 28)))
    for s in nov_green:
        award(s, "green-school", "province", date(year, 11, 12), "四川省教育厅", date(year, 11, rng.randint(13, 20)))
    rest = shuffled[int(n * 0.71):]
    water = (rest + shuffled)[:4]
    for s, day in zip(water, (date(year, 5, 20), date(year, 9, 8), date(year, 9, 8), date(year, 12, 10)), strict=True):
        award(s, "water-saving-school", "city", day, "市教育局、市水务局", day + timedelta(days=2))
    for s, day in zip((rest + shuffled)[4:6], (date(year, 6, 5), date(year, 11, 20)), strict=True):
        award(s, "garbage-sorting-demo-school", "city", day, "市教育局、市城管局", day + timedelta(days=3))
    for s in canteen:
        r = rng.random()
        if r < 0.55:
            past = date(year - 1, rng.randint(3, 12), rng.randint(1, 28))
            award(s, "bright-kitchen", "county", past, "区市场监管局", date(year, 1, rng.randint(6, 20)))
        elif r < 0.8:
            day = date(year, rng.randint(2, 11), rng.randint(1, 28))
            award(s, "bright-kitchen", "county", day, "区市场监管局", day + timedelta(days=rng.randint(1, 5)))
        if rng.random() < 0.12:
            day = date(year, rng.choice((5, 10)), rng.randint(1, 28))
            award(s, "demonstration-canteen", "city", day, "市教育局", day + timedelta(days=4))
        if rng.random() < 0.08:
            day = date(year, 9, rng.randint(1, 28))
            award(s, "healthy-canteen", "province", day, "省卫健委、省市场监管局", day + timedelta(days=5))
    for s in boarding:
        if rng.random() < 0.2:
            day = date(year, 10, rng.randint(1, 28))
            award(s, "demonstration-dormitory", "city", day, "市教育局", day + timedelta(days=4))
    for s in schools:
        r = rng.random()
        if r < 0.62:
            past = date(year - rng.choice((1, 2)), rng.randint(1, 12), rng.randint(1, 28))
            award(s, "sanitary-toilet-renovated", "county", past, "区教体局", date(year, 1, rng.randint(6, 20)))
        elif r < 0.85:
            day = date(year, rng.choice((2, 7, 8)), rng.randint(1, 28))
            award(s, "sanitary-toilet-renovated", "county", day, "区教体局", day + timedelta(days=rng.randint(3, 12)))
    # -- compliance records: planned period by period (see the docstring) ----------------------
    registered = date(year, 1, 1)
    diligence = {s.school_id: rng.uniform(0.8, 0.99) for s in schools}
    periods: list[tuple[datetime, str, str, Any]] = []  # (first possible action, kind, label, rule)
    for rule in cal.kinds:
        for label in periods_overlapping(rule.cadence, date(year, 1, 1), date(year, 12, 31)):
            start, _ = period_bounds(rule.cadence, label)
            if start <= today:
                periods.append((_local(min(start, rule.due_on(label)), 0), rule.code, label, rule))
    periods.sort(key=lambda p: p[:3])

    def plan_period(rule: Any, label: str) -> None:
        # Its own random stream: the same draws whatever order the periods are planned in.
        prng = random.Random(f"logistics-{seed}-{year}-{rule.code}-{label}")
        start, end = period_bounds(rule.cadence, label)
        due = rule.due_on(label)
        grace = rule.missing_after(label)
        missing_at = _local(grace + timedelta(days=1), 1, 30)
        owed: dict[tuple[str, bool, bool, bool], bool] = {}  # owes() by the school's flags
        for s in schools:
            flags = (s.kind, s.canteen, s.boarding, s.school_bus)
            if flags not in owed:
                owed[flags] = owes(rule, _spec_row(s, registered), label, cal.new_school_days)
            if not owed[flags]:
                continue
            sid = s.school_id
            d = diligence[sid]
            r = prng.random()
            filed_at: datetime | None
            if r < d:
                occurred = start + timedelta(days=prng.randint(0, max(0, (due - start).days)))
                recorded_day = min(due, occurred + timedelta(days=prng.randint(0, 2)))
                filed_at = _local(recorded_day, prng.randint(9, 17), prng.randint(0, 59))
            elif r < d + (1 - d) * 0.6:
                recorded_day = due + timedelta(days=prng.randint(1, rule.grace_days + 25))
                occurred = min(recorded_day, end) - timedelta(days=prng.randint(0, 3))
                filed_at = _local(recorded_day, prng.randint(9, 17), prng.randint(0, 59))
            else:
                filed_at = None
            if filed_at is not None:
                plan_record(rule, sid, label, occurred, filed_at, prng)
                if rule.code == "drinking-water-test-report" and prng.random() < 0.3:
                    extra = filed_at + timedelta(days=prng.randint(10, 40))
                    if local_date(extra) <= min(end, due):
                        plan_record(rule, sid, label, local_date(extra), extra, prng, batch=2)
            if filed_at is None or filed_at >= missing_at:
                plan.at(missing_at, record_gap, Gap(school_id=sid, kind=rule.code, period=label, due_on=due,
                                                    grace_until=grace), missing_at)

    def plan_record(rule: Any, sid: str, label: str, occurred: date, filed_at: datetime, prng: random.Random,
                    batch: int = 1) -> None:
        measure: float | None = None
        if rule.measure is not None:
            measure = (round(prng.uniform(0.55, 0.95), 2) if rule.measure.max <= 1
                       else float(prng.choice((2, 2, 3, 4))))
        evidence = rule.evidence_required or prng.random() < 0.5
        plan.at(filed_at, record, rule, sid, label, min(occurred, local_date(filed_at)), filed_at, measure,
                evidence, batch)

    def record_gap(gap: Gap, when: datetime) -> list[Any]:
        aggs = gap_aggregates(gap, calendar=cal, catalogue=catalogue, school_exists=known.__contains__, now=when)
        counts["missing"] += 1
        counts["hazards_opened"] += len(aggs) - 1
        return aggs

    logged = Created(ComplianceRecord, ComplianceRecord.ComplianceRecordLogged, mapper)
    compliance_id = derived_ids("demo-compliance", str(seed))

    def record(rule: Any, sid: str, label: str, occurred: date, when: datetime, measure: float | None,
               evidence: bool, batch: int) -> list[Any]:
        """A ComplianceRecordLogged built directly (services/demo/created.py); ``log``'s checks
        hold by construction: the lead logs for schools that owe the kind, nothing occurs after
        its filing nor is filed before its period starts, evidence where required, measures
        drawn within the kind's bounds."""
        rid = compliance_id(f"{sid}\x1f{rule.code}\x1f{label}\x1f{batch}")
        counts["compliance_records"] += 1
        refs = [f"sha256:{rid.hex}"] if evidence else []
        event = logged(rid, when, agency=lead, occurred_on=occurred.isoformat(), school_id=sid, kind=rule.code,
                       period=label, evidence=refs, measure=measure, note="", logged_by=ACTOR, request_digest="")
        if logged.unchecked((rule.code, evidence)):
            logged.compare((rule.code, evidence), event, ComplianceRecord.log(
                record_id=rid, agency=lead, may_log=True, school_id=sid, school_applies=True, kind=rule.code,
                period=label, period_start=period_bounds(rule.cadence, label)[0], occurred_on=occurred,
                evidence=list(refs), evidence_required=rule.evidence_required, measure=measure,
                measure_bounds=None if rule.measure is None else (rule.measure.name, rule.measure.min,
                                                                  rule.measure.max),
                note="", logged_by=ACTOR, request_digest="", now=when))
        return [event]

    # -- petitions -----------------------------------------------------------------------------------
    topics = list(PETITION_SUMMARIES)
    weights = [5, 2, 2, 2, 1, 2, 1, 1]

    def petition(ref: str, received: date, recorded: date, answered: date | None, closed: date | None,
                 satisfaction_weights: Sequence[float]) -> None:
        topic = rng.choices(topics, weights)[0]
        unit, answer_text, summaries = PETITION_SUMMARIES[topic]
        school = rng.choice(schools)
        receiver = rng.choice(("petitions", "petitions", lead))
        channel = rng.choice(("visit", "letter", "phone", "online", "hotline"))
        satisfaction = rng.choices([s for s, _ in SATISFACTION_WEIGHTS], satisfaction_weights)[0]
        summary = rng.choice(summaries)
        holder: dict[str, Any] = {}

        def receive(when: datetime = _local(recorded, 10, rng.randint(0, 59))) -> list[Any]:
            counts["petitions"] += 1
            holder["p"] = Petition.receive(
                agency=receiver, may_receive=True, reference=ref, channel=channel, topic=topic,
                school_id=school.school_id, school_exists=True, summary=summary, handling_unit=unit,
                handling_unit_known=True, received_on=received, logged_by=ACTOR, request_digest="", now=when)
            return [holder["p"]]
        plan.at(_local(recorded, 10), receive)
        if answered is None:
            return

        def do_answer(day: date = answered, when: datetime = _local(max(answered, recorded), 15)) -> list[Any]:
            holder["p"].answer(by_agency=unit, by_lead=False, answered_on=day, answer=answer_text, logged_by=ACTOR,
                               now=when)
            return [holder["p"]]
        plan.at(_local(max(answered, recorded), 15), do_answer)
        if closed is None:
            return

        def do_close(day: date = closed, when: datetime = _local(max(closed, recorded), 16)) -> list[Any]:
            holder["p"].close(by_agency=receiver, by_lead=receiver == lead, closed_on=day,
                              satisfaction=satisfaction, note="", logged_by=ACTOR, now=when)
            return [holder["p"]]
        plan.at(_local(max(closed, recorded), 16), do_close)

    # Last year's petitions, entered in January to give the comparison a baseline: fewer
    # closed, fewer satisfied.
    for i in range(1, 19):
        received = date(year - 1, rng.randint(1, 12), rng.randint(1, 28))
        answered = received + timedelta(days=rng.randint(5, 70))
        closed = answered + timedelta(days=rng.randint(2, 12)) if rng.random() < 0.8 else None
        petition(f"XF{year - 1}-{i:04d}", received, date(year, 1, rng.randint(3, 12)), answered, closed,
                 (0.5, 0.25, 0.22, 0.03))
    for i in range(1, 27):
        received = date(year, 1, 1) + timedelta(days=rng.randint(0, 360))
        answered = received + timedelta(days=rng.choice((rng.randint(5, 40), rng.randint(5, 40), rng.randint(45, 75))))
        closed = answered + timedelta(days=rng.randint(3, 15)) if rng.random() < 0.92 else None
        petition(f"XF{year}-{i:04d}", received, received, answered, closed, [w for _, w in SATISFACTION_WEIGHTS])

    # -- in time order ----------------------------------------------------------------------------
    # The withdrawal: the first prior green school, after a failed re-review in September.
    victim: dict[str, Any] = {}  # its green-school recognition, once recorded
    if prior_green:
        withdraw_at = _local(date(year, 9, 25), 11)

        def withdraw(when: datetime) -> list[Any]:
            rec = victim.get("green-school")
            if rec is None:
                return []
            rec.withdraw(by_agency=lead, by_lead=True, withdrawn_on=local_date(when),
                         reason="年度复审未通过：校园环境卫生整治不到位", logged_by=ACTOR, now=when)
            counts["withdrawals"] += 1
            return [rec]
        plan.at(withdraw_at, withdraw, withdraw_at)

    def run(actions: Iterator[Any]) -> Iterator[Any]:
        for agg in actions:
            if (prior_green and "green-school" not in victim and isinstance(agg, Recognition)
                    and agg.school_id == prior_green[0].school_id and agg.kind == "green-school"):
                victim["green-school"] = agg
            yield agg

    for first, _, label, rule in periods:
        yield from run(plan.until(first))
        plan_period(rule, label)
    yield from run(plan.until(None))
    return dict(counts)

