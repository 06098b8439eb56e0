"""Demo hazards and rectifications for the synthetic county year (called at the end of run_demo).

Each hazard gets a planned life (reported, assigned, progress, completion, verification, or a
late completion, an extension, a rejection and redo, a reopening, or no answer at all). All
steps of all items, plus a daily 09:00 overdue sweep, run through the domain in chronological
order with their simulated `now`, so the log reads as if the year had happened: late and
stalled items really are marked overdue and escalated by the sweep, step by step.

Deterministic from the demo seed and year; nothing after `now` (or after the year) is written.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from contracts.catalogue import Catalogue
from contracts.escalation import EscalationRules, default_escalation_rules
from events.base import COUNTY_TZ, derive_id, local_date
from events.rectifications import Actor, Rectification
from events.stored import RUNNING
from services.demo.profiles import Profiles

DEMO_ACTOR = "demo:generator"

# category -> (weight, lead unit, cooperating units, findings, measures)
CATEGORIES: dict[str, tuple[float, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "fire": (0.16, "fire-rescue", ("education",),
             ("疏散通道堆放杂物", "灭火器过期未更换", "微型消防站器材不全", "应急照明灯损坏"),
             ("清理疏散通道", "更换过期灭火器", "补齐微型消防站器材", "组织消防疏散演练")),
    "food": (0.14, "market-supervision", ("education",),
             ("食堂留样记录不全", "从业人员健康证过期", "原料进货台账缺失", "餐具消毒记录不全"),
             ("完善留样制度并培训", "组织从业人员体检换证", "建立进货查验台账", "落实餐具消毒并记录")),
    "drinking-water": (0.07, "market-supervision", ("education",),
                       ("饮水机消毒记录缺失", "桶装水无检测报告", "二次供水水箱未清洗"),
                       ("落实饮水机定期消毒", "索取每批次检测报告", "清洗消毒二次供水水箱")),
    "school-bus": (0.08, "public-security", ("education",),
                   ("校车安全设备缺失", "校车驾驶人资质待核", "接送车辆超员"),
                   ("补齐校车安全设备", "核验驾驶人资质", "核定载员并加强随车照管")),
    "drowning": (0.05, "education", ("emergency-management",),
                 ("校园周边水域警示标志缺失", "防溺水安全教育未覆盖"),
                 ("设置警示标志和救生设施", "开展防溺水专题教育")),
    "bullying": (0.06, "education", ("public-security",),
                 ("防欺凌制度和预案不健全", "欺凌事件报告处置不及时"),
                 ("修订防欺凌制度和预案", "建立欺凌事件报告处置台账")),
    "surroundings": (0.10, "public-security", ("urban-management", "market-supervision"),
                     ("校门口占道经营", "校园周边违规销售", "上下学时段交通秩序混乱"),
                     ("清理校门口占道经营", "查处周边违规经营", "增设护学岗和交通设施")),
    "dormitory": (0.07, "education", (),
                  ("宿舍值班巡查记录缺失", "宿舍私拉乱接电线"),
                  ("落实宿舍值班巡查制度", "整改宿舍用电线路")),
    "building": (0.09, "housing-construction", ("education",),
                 ("教学楼外墙瓷砖脱落", "围墙局部开裂", "在建工程围挡不到位"),
                 ("排危处置外墙", "加固维修围墙", "规范施工围挡和隔离")),
    "lab-chemicals": (0.05, "emergency-management", ("education",),
                      ("危化品未双人双锁管理", "实验室危化品台账不全"),
                      ("落实双人双锁管理", "建立危化品出入库台账")),
    "network": (0.04, "cyberspace", ("public-security",),
                ("校园网站存在安全漏洞", "等级保护测评未开展"),
                ("修补网站漏洞", "开展等级保护测评")),
    "psychological": (0.04, "education", (),
                      ("心理辅导室未按标准建设", "学生心理健康排查未覆盖"),
                      ("按标准建设心理辅导室", "开展心理健康全员排查")),
    "environment": (0.05, "ecology-environment", (),
                    ("食堂油烟净化设施未运行", "校内焚烧垃圾"),
                    ("维修并运行油烟净化设施", "规范垃圾分类和清运")),
}
SEVERITIES = (("general", 0.70), ("major", 0.22), ("critical", 0.08))
# Days from assignment to deadline, by severity: critical items get short deadlines.
DEADLINE_DAYS = {"general": (15, 30), "major": (20, 45), "critical": (7, 15)}
FUND_RANGE = {"general": (0, 5_000), "major": (5_000, 50_000), "critical": (50_000, 300_000)}
FUND_SOURCES = ("学校公用经费", "旗财政专项资金", "上级补助资金", "学校自筹")
# Hazards are found mostly in the spring self-check (March) and at term starts.
MONTH_WEIGHTS = (0.03, 0.03, 0.16, 0.10, 0.10, 0.09, 0.05, 0.04, 0.14, 0.10, 0.10, 0.06)
OUTCOMES = (("on_time", 0.66), ("late", 0.12), ("extended", 0.07), ("rejected", 0.07), ("reopened", 0.02),
            ("stalled", 0.06))
JOINT_UNITS = ("education", "public-security", "market-supervision", "fire-rescue")


class Step(NamedTuple):
    """Ordered by (at, seq) as a tuple, in C (seq is unique: nothing after it is compared)."""

    at: datetime  # UTC
    seq: int
    item: int
    action: str
    args: dict[str, Any]


def _at(day: date, rng: random.Random, hour: tuple[int, int] = (8, 18)) -> datetime:
    local = datetime.combine(day, time(rng.randint(*hour), rng.randint(0, 59)), tzinfo=COUNTY_TZ)
    return local.astimezone(UTC)


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    names, weights = zip(*weighted, strict=True)
    choice: str = rng.choices(names, weights)[0]
    return choice


@dataclass
class Plan:
    """One hazard's planned life: the report's fields and its later steps."""

    n: int
    report: dict[str, Any]
    steps: list[tuple[datetime, str, dict[str, Any]]]


PlannedSteps = list[tuple[datetime, str, dict[str, Any]]]


def _progress(steps: PlannedSteps, rng: random.Random, day: date, units: list[str]) -> None:
    steps.append((_at(day, rng), "progress", {"by": rng.choice(units), "percent": rng.choice((30, 40, 50, 60))}))


def _done(steps: PlannedSteps, rng: random.Random, day: date, unit: str, verify: bool = True) -> None:
    steps.append((_at(day, rng), "complete", {"by": unit}))
    if verify:
        steps.append((_at(day + timedelta(days=rng.randint(1, 6)), rng), "verify", {}))


def planted_outcome(profiles: Profiles | None, unit: str, drawn: str, key: object) -> str:
    """A planted unit's item: the diligent finish on time; the negligent finish late or never."""
    profile = profiles.of(unit) if profiles else "ordinary"
    if profile == "diligent":
        return "on_time"
    if profile == "negligent":
        return "late" if profiles is not None and profiles.rng(key).random() < 0.5 else "stalled"
    return drawn


def plan_hazards(school_ids: Sequence[str], year: int, seed: int, count: int,
                 profiles: Profiles | None = None) -> list[Plan]:
    rng = random.Random(f"lianxi-demo-hazards:{seed}:{year}")
    categories = [(c, w[0]) for c, w in CATEGORIES.items()]
    plans = []
    for n in range(count):
        month = rng.choices(range(1, 13), MONTH_WEIGHTS)[0]
        first = date(year, month, 1)
        found = first + timedelta(days=rng.randrange((date(year + month // 12, month % 12 + 1, 1) - first).days))
        category = _pick(rng, categories)
        _, lead_unit, coop, findings, measures = CATEGORIES[category]
        severity = _pick(rng, SEVERITIES)
        kind = _pick(rng, (("unit", 0.45), ("self-check", 0.35), ("joint-inspection", 0.20)))
        if kind == "unit":
            reporter, units = lead_unit, [lead_unit]
        elif kind == "self-check":
            reporter, units = "education", []
        else:
            units = list(dict.fromkeys(["education", lead_unit, *rng.sample(JOINT_UNITS, 2)]))
            reporter = units[0]
        school = school_ids[rng.randrange(len(school_ids))]
        reported = found + timedelta(days=rng.choice((0, 0, 1, 2)))
        report = {
            "at": _at(reported, rng), "reporter": reporter, "kind": kind, "units": units if kind != "unit" else [],
            "school_id": school, "category": category, "severity": severity, "found_on": found,
            "description": f"{rng.choice(findings)}（{'学校自查' if kind == 'self-check' else '检查'}发现）",
        }
        assigned = reported + timedelta(days=rng.randint(1, 4))
        lo, hi = DEADLINE_DAYS[severity]
        allowed = rng.randint(lo, hi)
        deadline = assigned + timedelta(days=allowed)
        amount_lo, amount_hi = FUND_RANGE[severity]
        steps: PlannedSteps = [(_at(assigned, rng), "assign", {
            "lead_unit": lead_unit, "cooperating_units": list(coop), "deadline": deadline,
            "measures": rng.sample(measures, min(len(measures), rng.randint(1, 2))),
            "funds": {"amount_cny": f"{rng.randrange(amount_lo, amount_hi + 1, 100)}.00",
                      "source": rng.choice(FUND_SOURCES)},
        })]
        outcome = planted_outcome(profiles, lead_unit, _pick(rng, OUTCOMES), f"hazard:{seed}:{year}:{n}")
        units_all = [lead_unit, *coop]
        on_time_day = assigned + timedelta(days=max(1, int(allowed * rng.uniform(0.5, 0.95))))
        _progress(steps, rng, assigned + timedelta(days=max(1, allowed // 3)), units_all)
        if outcome == "on_time":
            _done(steps, rng, on_time_day, lead_unit)
        elif outcome == "late":
            _done(steps, rng, deadline + timedelta(days=rng.randint(2, 35)), lead_unit)
        elif outcome == "extended":
            ask = assigned + timedelta(days=max(1, int(allowed * rng.uniform(0.6, 0.9))))
            new = deadline + timedelta(days=rng.randint(10, 30))
            steps.append((_at(ask, rng), "extend", {"new_deadline": new, "reason": "需采购设备，工期延长"}))
            _done(steps, rng, new - timedelta(days=rng.randint(1, 8)), lead_unit)
        elif outcome in ("rejected", "reopened"):
            _done(steps, rng, on_time_day, lead_unit, verify=outcome == "reopened")
            if outcome == "rejected":
                back = on_time_day + timedelta(days=rng.randint(2, 6))
                reason = "复查发现整改不彻底（回头看）"
            else:
                back = on_time_day + timedelta(days=rng.randint(20, 40))
                reason = "回头看发现问题反弹"
            new = back + timedelta(days=rng.randint(10, 20))
            steps.append((_at(back, rng), "reject", {"new_deadline": new, "reason": reason}))
            _done(steps, rng, new - timedelta(days=rng.randint(1, 7)), lead_unit)
        # stalled: one progress report, then nothing
        plans.append(Plan(n, report, steps))
    return plans


def hazard_events(
    catalogue: Catalogue, *, school_ids: Sequence[str], year: int, seed: int, now: datetime,
    rules: EscalationRules | None = None, per_school: float = 1.6, profiles: Profiles | None = None,
) -> Generator[Any, None, dict[str, int]]:
    """The year's hazards and rectifications as events, in time order (for the bulk appender);
    returns counts."""
    rules = rules or default_escalation_rules()
    steps_rules = rules.domain_steps()
    lead = catalogue.lead.code
    lead_actor = Actor(agency=lead, lead=True, logged_by=DEMO_ACTOR)
    categories = [c.code for c in catalogue.hazards.categories]
    severities = [s.code for s in catalogue.hazards.severities]
    units = {u.code for u in catalogue.units.units}
    schools = set(school_ids)
    last_day = min(local_date(now), date(year, 12, 31))
    plans = plan_hazards(school_ids, year, seed, max(1, round(len(school_ids) * per_school)), profiles)

    queue: list[Step] = []
    seq = 0
    for plan in plans:
        for at, action, args in [(plan.report["at"], "report", {}), *plan.steps]:
            seq += 1
            heapq.heappush(queue, Step(at, seq, plan.n, action, args))
    day = date(year, 1, 1)
    while day <= last_day:  # the daily sweep, 09:00 county time
        seq += 1
        heapq.heappush(queue, Step(datetime.combine(day, time(9), tzinfo=COUNTY_TZ).astimezone(UTC), seq, -1,
                                   "sweep", {}))
        day += timedelta(days=1)

    items: dict[int, Rectification] = {}
    # The items a sweep looks at (running ones, in the order they were reported): a province
    # year has tens of thousands of items, most of them closed long before its last sweep.
    running: dict[int, Rectification] = {}
    counts = {"hazards": 0, "overdue": 0, "escalations": 0}
    # Items that took every step for their deadline pass the sweeps by until their deadline
    # changes: nothing more falls due for them. Stalled items sit here most of the year.
    exhausted: dict[int, str] = {}  # item -> the deadline it took every step for
    while queue:
        step = heapq.heappop(queue)
        if step.at > now or local_date(step.at) > last_day:
            continue
        if step.action == "sweep":
            today = local_date(step.at).isoformat()
            for n, agg in running.items():
                deadline = agg.deadline
                if deadline is None or deadline >= today or exhausted.get(n) == deadline:
                    continue  # nothing falls due before the deadline has passed (events/escalation.py)
                overdue = agg.mark_overdue(step.at)
                levels = agg.escalate(step.at, steps_rules, rules.version)
                counts["overdue"] += int(overdue)
                counts["escalations"] += len(levels)
                yield from agg.collect_events()
                if agg.took_every_step(steps_rules):
                    exhausted[n] = deadline
            continue
        if step.action == "report":
            r = plans[step.item].report
            agg = items[step.item] = Rectification.report(
                item_id=derive_id("demo-hazard", str(seed), str(year), str(step.item)),
                actor=Actor(agency=r["reporter"], lead=False, logged_by=DEMO_ACTOR), kind=r["kind"],
                units=r["units"], school_id=r["school_id"], category=r["category"], severity=r["severity"],
                description=r["description"], found_on=r["found_on"], categories=categories,
                severities=severities, known_unit=units.__contains__, school_exists=schools.__contains__,
                request_digest="", now=step.at,
            )
            counts["hazards"] += 1
        else:
            agg = items[step.item]
            _apply(agg, step, lead_actor, rules, units)
        if agg.status in RUNNING:
            running.setdefault(step.item, agg)
        else:
            running.pop(step.item, None)
        yield from agg.collect_events()
    return counts


def _apply(agg: Rectification, step: Step, lead_actor: Actor, rules: EscalationRules, units: set[str]) -> None:
    a, now = step.args, step.at
    if step.action == "assign":
        agg.assign(actor=lead_actor, lead_unit=a["lead_unit"], cooperating_units=a["cooperating_units"],
                   deadline=a["deadline"], measures=a["measures"], funds=a["funds"], known_unit=units.__contains__,
                   now=now)
    elif step.action == "progress":
        agg.report_progress(actor=Actor(a["by"], False, DEMO_ACTOR),
                            note="整改推进中", percent=a["percent"], evidence=[], now=now)
    elif step.action == "complete":
        agg.complete(actor=Actor(a["by"], False, DEMO_ACTOR), summary="已按整改方案完成整改",
                     evidence=[f"sha256:{derive_id('demo-evidence', str(agg.id), str(agg.version)).hex}"], now=now)
    elif step.action == "verify":
        agg.verify(actor=lead_actor, note="复核合格，予以销号", now=now)
    elif step.action == "reject":
        agg.reject(actor=lead_actor, reason=a["reason"], new_deadline=a["new_deadline"], now=now)
    elif step.action == "extend":  # the lead unit asks (申请延期) and the lead bureau grants it the same day
        assert agg.lead_unit is not None
        agg.request_extension(actor=Actor(agg.lead_unit, False, DEMO_ACTOR), reason=a["reason"],
                              new_deadline=a["new_deadline"], max_extensions=rules.max_extensions, now=now)
        agg.extend(actor=lead_actor, reason=a["reason"], new_deadline=a["new_deadline"],
                   max_extensions=rules.max_extensions, now=now)
