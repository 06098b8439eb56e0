"""Demo campaigns, warnings and joint meetings for the synthetic county year (called at the
end of run_demo, after the hazards).

- The six campaigns of seed 004 are launched on 22 March for every school. Schools submit
  their self-checks by the end of March (some late, a few never); some report problems, which
  become hazards. Joint inspections cover the schools during April-October and the
  evaluation in December; their findings become hazards assigned to the responsible units.
- The 气象局 issues warnings through the year (most in the rainy season); schools and the
  education bureau acknowledge, some late, a few never; unacknowledged ones are escalated.
- A joint meeting each quarter: scheduled three weeks ahead, items proposed by member units,
  held with attendance and minutes, resolutions whose tasks run their course (most on time,
  some late, some stalled) while a daily sweep marks overdue tasks and escalates them.

Every step runs through the domain at its simulated ``now``, in time order, and ids derive
from the seed, so the same seed gives the same log. Nothing after ``now`` is written.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from contracts.catalogue import Catalogue
from contracts.escalation import EscalationRules, WarningRules, default_escalation_rules, default_warning_rules
from events.agencies import Agency
from events.base import COUNTY_TZ, derive_id, local_date
from events.campaigns import MAX_SCHOOLS_PER_INSPECTION, Campaign, JointInspection, SelfCheck
from events.meetings import Meeting, Task
from events.rectifications import Actor, Rectification
from events.stored import RUNNING
from events.warnings import EarlyWarning, WarningAcknowledgement
from services.demo.hazards import planted_outcome
from services.demo.profiles import Profiles
from services.documents import labels

DEMO = "demo:generator"
MEETING_DAYS = ((3, 27), (6, 26), (9, 25), (12, 17))
WARNING_KINDS = {  # month -> (type, weight) choices
    "winter": (("cold", 0.5), ("heavy-pollution", 0.3), ("gale", 0.2)),
    "spring": (("gale", 0.6), ("heavy-pollution", 0.2), ("rainstorm", 0.2)),
    "summer": (("rainstorm", 0.45), ("lightning", 0.25), ("heat", 0.2), ("gale", 0.1)),
}
TYPE_TEXT = {"rainstorm": "暴雨", "gale": "大风", "lightning": "雷电", "heat": "高温", "cold": "寒潮",
             "heavy-pollution": "重污染天气", "other": "其他"}
LEVEL_TEXT = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
MEASURES = {
    "rainstorm": ["停止户外活动", "排查校舍及周边积水隐患", "做好学生上下学安全护送"],
    "gale": ["停止户外活动", "加固室外设施和广告牌", "关闭门窗"],
    "lightning": ["停止户外活动", "检查防雷设施", "暂停室外集体活动"],
    "heat": ["调整户外活动时间", "做好防暑降温", "保障饮用水供应"],
    "cold": ["做好校舍保暖", "检查取暖设施", "防范一氧化碳中毒"],
    "heavy-pollution": ["减少或停止户外活动", "启动重污染天气应急预案", "加强室内通风净化"],
}
PROPOSALS = [
    ("public-security", "校园周边上下学时段交通秩序整治", "部分学校门口上下学高峰拥堵，建议公安、城管联合设置护学岗。"),
    ("market-supervision", "校园食堂食品安全抽检结果通报",
     "本季度抽检发现部分学校留样记录不全，提请会议研究整改要求。"),
    ("fire-rescue", "寄宿制学校消防设施改造", "部分寄宿制学校宿舍消防设施老化，提请会议研究改造资金。"),
    ("urban-management", "校园周边占道经营清理", "校门口流动摊点反弹，提请会议研究长效管理机制。"),
    ("meteorology", "汛期预警信息签收机制", "部分学校预警签收不及时，建议明确签收时限和责任人。"),
    ("housing-construction", "校舍维修工程质量监管", "暑期校舍维修工程较多，提请会议研究质量安全监管分工。"),
    ("civil-affairs", "困境学生关爱帮扶", "提请会议研究重点人群学生关爱帮扶的部门分工。"),
    ("education", "专项整治阶段推进情况", "部分学校自查滞后，提请会议研究督导措施。"),
    ("procuratorate", "法治副校长履职情况", "提请会议研究法治副校长进校园巡讲安排。"),
    ("justice", "涉校矛盾纠纷排查化解", "提请会议研究涉校纠纷调处衔接机制。"),
]
RESOLUTIONS = [
    ("由公安局牵头，城管局配合，开展校园周边交通秩序和占道经营集中整治。",
     [("public-security", ["urban-management"], "在重点学校门口设置护学岗并开展集中整治"),
      ("urban-management", [], "清理校门口流动摊点并建立巡查台账")]),
    ("由市场监管局牵头，开展校园食堂食品安全专项抽检并通报结果。",
     [("market-supervision", ["education"], "完成全旗学校食堂专项抽检并形成通报")]),
    ("各成员单位对照专项整治方案，督促进度滞后学校限期完成自查整改。",
     [("education", [], "对自查滞后学校开展约谈督导"),
      ("fire-rescue", ["education"], "对寄宿制学校开展消防设施专项检查")]),
    ("明确预警信息签收时限和责任人，教育局督促学校落实签收制度。",
     [("education", ["meteorology"], "制定学校预警签收制度并组织培训")]),
    ("住建局会同教育局加强暑期校舍维修工程质量安全监管。",
     [("housing-construction", ["education"], "对在建校舍维修工程开展质量安全检查")]),
    ("民政局、司法局会同教育局做好困境学生关爱和涉校纠纷化解工作。",
     [("civil-affairs", ["education"], "建立困境学生关爱帮扶台账"),
      ("justice", [], "开展涉校矛盾纠纷集中排查")]),
]
FINDINGS = ("台账资料不全", "制度落实不到位", "设施设备存在隐患", "宣传教育记录缺失")
TASK_OUTCOMES = (("on_time", 0.62), ("late", 0.14), ("stalled", 0.10), ("rejected", 0.07), ("extended", 0.07))
HAZARD_OUTCOMES = (("on_time", 0.75), ("late", 0.12), ("stalled", 0.13))


class Step(NamedTuple):
    """Ordered by (at, seq) as a tuple, in C (seq is unique: nothing after it is compared)."""

    at: datetime
    seq: int
    action: str
    args: dict[str, Any]


def _at(day: date, rng: random.Random, hours: tuple[int, int] = (8, 17)) -> datetime:
    return datetime.combine(day, time(rng.randint(*hours), rng.randint(0, 59)), tzinfo=COUNTY_TZ).astimezone(UTC)


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    names, weights = zip(*weighted, strict=True)
    out: str = rng.choices(names, weights)[0]
    return out


class _Sim:
    """The simulated year: a time-ordered queue of domain steps, aggregates held in memory."""

    def __init__(self, catalogue: Catalogue, now: datetime, last_day: date) -> None:
        self.catalogue = catalogue
        self.now = now
        self.last_day = last_day
        self.queue: list[Step] = []
        self.seq = 0
        self.serials: dict[str, int] = {}
        self.pending: list[Any] = []
        self.lead = catalogue.lead.code
        self.units = [u.code for u in catalogue.units.units]
        self.lead_actor = Actor(agency=self.lead, lead=True, logged_by=DEMO)
        self.hazards: dict[str, Rectification] = {}
        self.tasks: dict[str, Task] = {}
        self.counts: dict[str, int] = {"campaigns": 0, "self_checks": 0, "inspections": 0, "campaign_hazards": 0,
                                       "warnings": 0, "acknowledgements": 0, "warning_escalations": 0,
                                       "meetings": 0, "resolutions": 0, "tasks": 0, "task_steps": 0}

    def at(self, moment: datetime, action: str, **args: Any) -> None:
        if moment > self.now or local_date(moment) > self.last_day:
            return
        self.seq += 1
        heapq.heappush(self.queue, Step(moment, self.seq, action, args))

    def next(self, kind: str) -> int:
        """A per-kind serial number for deterministic ids."""
        self.serials[kind] = self.serials.get(kind, 0) + 1
        return self.serials[kind]

    def emit(self, agg: Any) -> None:
        self.pending.extend(agg.collect_events())

    def run(self, handlers: dict[str, Callable[..., None]]) -> Iterator[Any]:
        """Runs the steps in time order, yielding each step's events."""
        while self.queue:
            step = heapq.heappop(self.queue)
            handlers[step.action](step.at, **step.args)
            if self.pending:
                yield from self.pending
                self.pending = []


def meeting_events(
    meteorology: Agency, catalogue: Catalogue, *, school_ids: Sequence[str], school_towns: dict[str, str],
    year: int, seed: int, now: datetime, rules: EscalationRules | None = None,
    warning_rules: WarningRules | None = None, profiles: Profiles | None = None,
) -> Generator[Any, None, dict[str, int]]:
    """The year's campaigns, warnings and meetings as events, in time order (for the bulk
    appender); returns counts. ``meteorology`` is the unit that issues the warnings."""
    rules = rules or default_escalation_rules()
    wrules = warning_rules or default_warning_rules()
    rng = random.Random(f"lianxi-demo-meetings:{seed}:{year}")
    last_day = min(local_date(now), date(year, 12, 31))
    sim = _Sim(catalogue, now, last_day)
    schools = list(school_ids)
    known_schools = set(schools)
    hz = catalogue.hazards
    categories = [c.code for c in hz.categories]
    severities = [s.code for s in hz.severities]
    campaigns: dict[str, Campaign] = {}
    warnings: dict[str, EarlyWarning] = {}
    acked: dict[str, set[tuple[str, str]]] = {}
    kinds: dict[str, str] = {}
    meetings: dict[str, Meeting] = {}
    steps = rules.domain_steps()
    # Planted units are asked to acknowledge warnings too, so their response shows in the review.
    warned_units = sorted({*wrules.default_units, *(profiles.planted if profiles else ())})

    def report(actor: Actor, item: str, campaign: Campaign, kind: str, units: list[str], school: str,
               severity: str, text: str, day: date, at: datetime) -> Rectification:
        agg = Rectification.report(
            item_id=derive_id(item), actor=actor, kind=kind, units=units, school_id=school,
            category=campaign.hazard_category, severity=severity, description=text, found_on=day,
            categories=categories, severities=severities, known_unit=set(sim.units).__contains__,
            school_exists=known_schools.__contains__, request_digest="", now=at)
        sim.hazards[str(agg.id)] = agg
        sim.counts["campaign_hazards"] += 1
        return agg

    def plan_hazard_life(agg: Rectification, assigned_on: date, deadline: date, unit: str) -> None:
        hid = str(agg.id)
        outcome = planted_outcome(profiles, unit, _pick(rng, HAZARD_OUTCOMES), hid)
        allowed = max(2, (deadline - assigned_on).days)
        if outcome == "on_time":
            done = assigned_on + timedelta(days=rng.randint(1, allowed - 1))
        elif outcome == "late":
            done = deadline + timedelta(days=rng.randint(3, 30))
        else:
            sim.at(_at(assigned_on + timedelta(days=allowed // 2), rng), "hazard_progress", hid=hid, unit=unit)
            return
        sim.at(_at(done, rng), "hazard_complete", hid=hid, unit=unit)
        sim.at(_at(done + timedelta(days=rng.randint(1, 5)), rng), "hazard_verify", hid=hid)

    # -- campaigns ---------------------------------------------------------------------------

    def launch(at: datetime) -> None:
        for tpl in catalogue.campaigns.campaigns:
            c = Campaign.launch(lead=sim.lead, is_lead=True, year=year, template=tpl, school_ids=schools,
                                school_exists=known_schools.__contains__, now=at)
            campaigns[tpl.code] = c
            sim.counts["campaigns"] += 1
            sim.emit(c)
            plan_campaign(c)

    def plan_campaign(c: Campaign) -> None:
        self_check = c.phase("self-check")
        start, deadline = date.fromisoformat(self_check["starts"]), date.fromisoformat(self_check["deadline"])
        for school in schools:
            r = rng.random()
            if r < 0.03:
                continue  # never submitted: missed the phase
            if r < 0.13:
                day = deadline + timedelta(days=rng.randint(1, 20))  # late
            else:
                day = start + timedelta(days=rng.randint(1, (deadline - start).days))
            sim.at(_at(day, rng), "self_check", template=c.template, school=school)
        shuffled = schools[:]
        rng.shuffle(shuffled)
        covered = shuffled[: int(len(shuffled) * rng.uniform(0.9, 0.98))]
        # A real inspection team covers a district, never a whole province.
        size = min(MAX_SCHOOLS_PER_INSPECTION, max(5, len(covered) // 6))
        team = [u for u in c.inspecting_units if u != sim.lead]
        for i in range(0, len(covered), size):
            day = date(year, 4, 10) + timedelta(days=rng.randint(0, 190))
            by = rng.choice(team) if team else sim.lead
            sim.at(_at(day, rng), "inspect", template=c.template, schools=covered[i:i + size], by=by,
                   units=[sim.lead, *team])
        step = min(MAX_SCHOOLS_PER_INSPECTION, max(10, len(shuffled) // 3))
        for i in range(0, len(shuffled), step):
            day = date(year, 12, 1) + timedelta(days=rng.randint(0, 20))
            sim.at(_at(day, rng), "inspect", template=c.template, schools=shuffled[i:i + step],
                   by=sim.lead, units=[sim.lead, *team[:1]] if team else [sim.lead, "public-security"])

    def self_check(at: datetime, template: str, school: str) -> None:
        c = campaigns[template]
        failing = c.aspects[rng.randrange(len(c.aspects))] if rng.random() < 0.12 else None
        tpl = next(t for t in catalogue.campaigns.campaigns if t.code == template)
        results = [{"aspect": a, "passed": a != failing,
                    "problems": [] if a != failing else
                    [{"description": f"自查发现：{next(x.text for x in tpl.aspects if x.code == a)}",
                      "severity": _pick(rng, (("general", 0.8), ("major", 0.15), ("critical", 0.05)))}]}
                   for a in c.aspects]
        photos = [f"sha256:{derive_id('demo-self-check', str(c.id), school).hex}"] if failing else []
        check = SelfCheck.submit(campaign=c, by_agency=sim.lead, acts_for_schools=True, school_id=school,
                                 occurred_on=local_date(at), results=results, logged_by=DEMO, now=at,
                                 evidence=photos)
        sim.counts["self_checks"] += 1
        actor = Actor(agency=sim.lead, lead=True, logged_by=DEMO)
        aggs = []
        for _, p in check.problems():
            h = report(actor, p["hazard_id"], c, "self-check", [], school, p["severity"],
                       f"【{c.name}·自查】{p['description']}", local_date(at), at)
            assigned = local_date(at) + timedelta(days=rng.randint(1, 4))
            sim.at(_at(assigned, rng), "hazard_assign", hid=str(h.id), unit=sim.lead,
                   deadline=assigned + timedelta(days=30))
            aggs.append(h)
        sim.emit(check)
        for h in aggs:
            sim.emit(h)

    def inspect(at: datetime, template: str, schools: list[str], by: str, units: list[str]) -> None:
        c = campaigns[template]
        day = local_date(at)
        rate = 0.04 if day.month >= 11 else 0.08
        findings = [{"school_id": s, "aspect": c.aspects[rng.randrange(len(c.aspects))],
                     "description": rng.choice(FINDINGS),
                     "severity": _pick(rng, (("general", 0.75), ("major", 0.2), ("critical", 0.05)))}
                    for s in schools if rng.random() < rate]
        inspection_id = derive_id("demo-inspection", str(seed), str(year), str(sim.next("inspection")))
        inspection = JointInspection.conduct(
            inspection_id=inspection_id, campaign=c, by_agency=by,
            units=units, school_ids=schools, occurred_on=day, summary=f"{c.name}联合督查", findings=findings,
            known_units=sim.units, lead=sim.lead, logged_by=DEMO, now=at,
            evidence=[f"sha256:{derive_id('demo-inspection-record', str(inspection_id)).hex}"])
        sim.counts["inspections"] += 1
        actor = Actor(agency=by, lead=by == sim.lead, logged_by=DEMO)
        sim.emit(inspection)
        for f in inspection.findings:
            h = report(actor, f["hazard_id"], c, "joint-inspection", inspection.units, f["school_id"], f["severity"],
                       f"【{c.name}·联合督查】{f['description']}", day, at)
            deadline = date.fromisoformat(f["deadline"])
            # the lead bureau assigns the finding as the inspectors proposed (its own act)
            h.assign(actor=sim.lead_actor, lead_unit=f["responsible_unit"], cooperating_units=[], deadline=deadline,
                     measures=[f"按联合督查意见整改：{f['description']}"],
                     funds={"amount_cny": "0.00", "source": "责任单位自筹（待核定）"},
                     known_unit=set(sim.units).__contains__, now=at)
            sim.emit(h)
            plan_hazard_life(h, day, deadline, f["responsible_unit"])

    def hazard_assign(at: datetime, hid: str, unit: str, deadline: date) -> None:
        h = sim.hazards[hid]
        h.assign(actor=sim.lead_actor, lead_unit=unit, cooperating_units=[], deadline=deadline,
                 measures=["学校按自查问题清单限期整改"], funds={"amount_cny": "0.00", "source": "学校公用经费"},
                 known_unit=set(sim.units).__contains__, now=at)
        sim.emit(h)
        plan_hazard_life(h, local_date(at), deadline, unit)

    def hazard_progress(at: datetime, hid: str, unit: str) -> None:
        h = sim.hazards[hid]
        if h.status in RUNNING:
            h.report_progress(actor=Actor(unit, unit == sim.lead, DEMO), note="整改推进中", percent=50, evidence=[],
                              now=at)
            sim.emit(h)

    def hazard_complete(at: datetime, hid: str, unit: str) -> None:
        h = sim.hazards[hid]
        if h.status in RUNNING:
            h.complete(actor=Actor(unit, unit == sim.lead, DEMO), summary="已按整改要求完成",
                       evidence=[f"sha256:{derive_id('demo-evidence', hid).hex}"], now=at)
            sim.emit(h)

    def hazard_verify(at: datetime, hid: str) -> None:
        h = sim.hazards[hid]
        if h.status == "completed":
            h.verify(actor=sim.lead_actor, note="复核合格，予以销号", now=at)
            sim.emit(h)

    # -- warnings ----------------------------------------------------------------------------

    towns = sorted(set(school_towns.values()))

    def plan_warnings() -> None:
        for month in range(1, 13):
            season = "summer" if 5 <= month <= 9 else ("winter" if month in (1, 2, 11, 12) else "spring")
            for _ in range(rng.choice((0, 1, 1, 2) if season != "summer" else (1, 2, 3))):
                day = date(year, month, rng.randint(1, 28))
                sim.at(_at(day, rng, (6, 20)), "warn", kind=_pick(rng, WARNING_KINDS[season]),
                       level=_pick(rng, (("blue", 0.4), ("yellow", 0.35), ("orange", 0.2), ("red", 0.05))))

    def warn(at: datetime, kind: str, level: str) -> None:
        covered = sorted(rng.sample(towns, min(len(towns), rng.randint(1, 4)))) if towns else ["全旗"]
        recipients = [s for s in schools if school_towns.get(s) in covered]
        w = EarlyWarning.issue(
            warning_id=derive_id("demo-warning", str(seed), str(year), str(sim.next("warning"))), agency=meteorology,
            issuing_duties=wrules.issuing_duties, warning_type=kind, level=level,
            title=f"{TYPE_TEXT[kind]}{LEVEL_TEXT[level]}预警", towns=covered, valid_from=at,
            valid_until=at + timedelta(hours=rng.choice((12, 24, 48))), measures=MEASURES[kind][:2],
            school_ids=recipients, units=warned_units, known_units=sim.units, now=at)
        wid = str(w.id)
        warnings[wid] = w
        kinds[wid] = kind
        acked[wid] = set()
        sim.counts["warnings"] += 1
        sim.emit(w)
        slow = wrules.slow_after(level)
        late = wrules.escalate_after(level)
        who = [("school", s) for s in recipients] + [("unit", u) for u in warned_units]
        for kind_, r in who:
            x = rng.random()
            profile = profiles.of(r) if profiles and kind_ == "unit" else "ordinary"
            if profile == "diligent":  # within the hour
                sim.at(at + timedelta(minutes=rng.randint(5, 60)), "ack", wid=wid, kind=kind_, recipient=r)
                continue
            if profile == "negligent":  # never (two in five), or after the escalation
                x = 0.005 if rng.random() < 0.4 else 0.99
            if x < 0.01:
                continue  # never acknowledged
            if x < 0.80:
                delay = slow * rng.uniform(0.05, 0.8)
            elif x < 0.97:
                delay = slow + (late - slow) * rng.uniform(0.1, 0.9)
            else:
                delay = late * rng.uniform(1.1, 3.0)
            sim.at(at + delay, "ack", wid=wid, kind=kind_, recipient=r)
        sim.at(at + late + timedelta(minutes=1), "escalate", wid=wid)

    def ack(at: datetime, wid: str, kind: str, recipient: str) -> None:
        w = warnings[wid]
        by = recipient if kind == "unit" else sim.lead
        a = WarningAcknowledgement.acknowledge(
            warning=w, by_agency=by, acts_for_schools=by == sim.lead, recipient_kind=kind, recipient=recipient,
            measures_taken=[f"已落实：{m}" for m in MEASURES[kinds[wid]][:1]], note="",
            logged_by=DEMO, now=at)
        acked[wid].add((kind, recipient))
        sim.counts["acknowledgements"] += 1
        sim.emit(a)

    def escalate(at: datetime, wid: str) -> None:
        w = warnings[wid]
        schools_left = sorted(s for s in w.school_ids if ("school", s) not in acked[wid])
        units_left = sorted(u for u in w.units if ("unit", u) not in acked[wid])
        if schools_left or units_left:
            w.escalate(lead=sim.lead, unacknowledged_schools=schools_left, unacknowledged_units=units_left, now=at)
            sim.counts["warning_escalations"] += 1
            sim.emit(w)

    # -- meetings ----------------------------------------------------------------------------

    def plan_meetings() -> None:
        for number, (month, day) in enumerate(MEETING_DAYS, 1):
            held = date(year, month, day)
            sim.at(_at(held - timedelta(days=21), rng), "schedule", number=number, held=held)

    def schedule(at: datetime, number: int, held: date) -> None:
        m = Meeting.schedule(lead=sim.lead, is_lead=True, year=year, number=number, next_number=number,
                             title=labels.meeting_title(year, number), scheduled_for=held,
                             place="旗教育局三楼会议室", now=at)
        meetings[str(m.id)] = m
        sim.counts["meetings"] += 1
        sim.emit(m)
        for unit, title, detail in rng.sample(PROPOSALS, rng.randint(2, 3)):
            sim.at(_at(held - timedelta(days=rng.randint(3, 18)), rng), "propose", mid=str(m.id), unit=unit,
                   title=title, detail=detail)
        sim.at(_at(held, rng, (9, 10)), "hold", mid=str(m.id))

    def propose(at: datetime, mid: str, unit: str, title: str, detail: str) -> None:
        m = meetings[mid]
        m.propose_item(unit=unit, title=title, detail=detail, related_event_ids=[], now=at)
        sim.emit(m)

    def hold(at: datetime, mid: str) -> None:
        m = meetings[mid]
        absent = rng.sample([u for u in sim.units if u != sim.lead], rng.randint(1, 3))
        if profiles:  # the diligent attend every meeting; the negligent miss one in two
            absent = sorted((set(absent) - set(profiles.diligent))
                            | {u for u in profiles.negligent if profiles.rng("absent", mid, u).random() < 0.5})
        present = [u for u in sim.units if u not in absent]
        m.hold(lead=sim.lead, is_lead=True, held_on=local_date(at), attendance=present, absent=absent,
               minutes=f"会议通报了本期校园安全工作情况，研究了成员单位提请事项，议定{len(m.item_ids)}项工作。",
               known_units=sim.units, now=at)
        sim.emit(m)
        items = sorted(m.item_ids)
        for text, task_specs in rng.sample(RESOLUTIONS, rng.randint(2, 3)):
            tasks = [{"unit": u, "cooperating_units": coop, "description": d,
                      "deadline": local_date(at) + timedelta(days=rng.choice((30, 45, 60)))}
                     for u, coop, d in task_specs]
            rid, specs = m.adopt_resolution(lead=sim.lead, is_lead=True, text=text,
                                            agenda_item_ids=items[:1] if items else [], tasks=tasks,
                                            known_units=sim.units, now=at)
            sim.counts["resolutions"] += 1
            created = [Task.assign(spec=s, meeting_id=mid, resolution_id=rid, lead=sim.lead, now=at) for s in specs]
            sim.emit(m)
            for t in created:
                sim.tasks[str(t.id)] = t
                sim.counts["tasks"] += 1
                sim.emit(t)
                plan_task(t, local_date(at))

    def plan_task(t: Task, assigned: date) -> None:
        outcome = planted_outcome(profiles, t.unit, _pick(rng, TASK_OUTCOMES), str(t.id))
        deadline = date.fromisoformat(t.deadline)
        allowed = (deadline - assigned).days
        tid = str(t.id)
        sim.at(_at(assigned + timedelta(days=allowed // 3), rng), "task_progress", tid=tid, percent=40)
        if outcome == "stalled":
            return
        if outcome == "extended":
            new = deadline + timedelta(days=20)
            sim.at(_at(assigned + timedelta(days=allowed * 2 // 3), rng), "task_extend", tid=tid, new=new)
            done = new - timedelta(days=rng.randint(1, 5))
        elif outcome == "late":
            done = deadline + timedelta(days=rng.randint(3, 25))
        else:
            done = assigned + timedelta(days=rng.randint(max(1, allowed // 2), allowed - 1))
        sim.at(_at(done, rng), "task_complete", tid=tid)
        if outcome == "rejected":
            back = done + timedelta(days=rng.randint(2, 5))
            sim.at(_at(back, rng), "task_reject", tid=tid, new=back + timedelta(days=15))
            sim.at(_at(back + timedelta(days=10), rng), "task_complete", tid=tid)
            sim.at(_at(back + timedelta(days=13), rng), "task_verify", tid=tid)
        else:
            sim.at(_at(done + timedelta(days=rng.randint(1, 6)), rng), "task_verify", tid=tid)

    def task_progress(at: datetime, tid: str, percent: int) -> None:
        t = sim.tasks[tid]
        if t.is_open:
            t.report_progress(unit=t.unit, note="正在推进", percent=percent, occurred_on=local_date(at), now=at)
            sim.counts["task_steps"] += 1
            sim.emit(t)

    def task_complete(at: datetime, tid: str) -> None:
        t = sim.tasks[tid]
        if t.is_open:
            t.complete(unit=t.unit, summary="已完成并回告", evidence=[f"sha256:{derive_id('demo-task', tid).hex}"],
                       occurred_on=local_date(at), now=at)
            sim.counts["task_steps"] += 1
            sim.emit(t)

    def task_verify(at: datetime, tid: str) -> None:
        t = sim.tasks[tid]
        if t.status == "completed":
            t.verify(lead=sim.lead, is_lead=True, note="核验合格", now=at)
            sim.emit(t)

    def task_reject(at: datetime, tid: str, new: date) -> None:
        t = sim.tasks[tid]
        if t.status == "completed":
            t.reject(lead=sim.lead, is_lead=True, reason="回告材料不全，需补充整改", new_deadline=new, now=at)
            sim.emit(t)

    def task_extend(at: datetime, tid: str, new: date) -> None:
        t = sim.tasks[tid]
        if t.is_open:
            t.extend(lead=sim.lead, is_lead=True, reason="涉及多部门协调，申请延期", new_deadline=new,
                     max_extensions=rules.max_extensions, now=at)
            sim.emit(t)

    # Hazards that took every step for their deadline pass the sweeps by until the deadline
    # changes: nothing more falls due for them (hazards.py too).
    exhausted: dict[str, str] = {}  # hazard id -> the deadline it took every step for

    def sweep(at: datetime) -> None:
        today = local_date(at).isoformat()
        # Nothing falls due before a deadline has passed (events/escalation.py): a province's
        # tens of thousands of hazards are not each asked every day.
        for hid, agg in sim.hazards.items():
            deadline = agg.deadline
            if (agg.status in RUNNING and deadline is not None and deadline < today
                    and exhausted.get(hid) != deadline):
                if agg.sweep(at, steps, rules.version):
                    sim.emit(agg)
                if agg.took_every_step(steps):
                    exhausted[hid] = deadline
        for t in sim.tasks.values():
            if t.is_open and t.sweep(steps=steps, now=at, rules_version=rules.version):
                sim.emit(t)

    sim.at(_at(date(year, 3, 22), rng, (8, 9)), "launch")
    plan_warnings()
    plan_meetings()
    day = date(year, 1, 1)
    while day <= last_day:
        sim.at(datetime.combine(day, time(9, 30), tzinfo=COUNTY_TZ).astimezone(UTC), "sweep")
        day += timedelta(days=1)

    handlers: dict[str, Callable[..., None]] = {
        "launch": launch, "self_check": self_check, "inspect": inspect, "hazard_assign": hazard_assign,
        "hazard_progress": hazard_progress, "hazard_complete": hazard_complete, "hazard_verify": hazard_verify,
        "warn": warn, "ack": ack, "escalate": escalate, "schedule": schedule, "propose": propose, "hold": hold,
        "task_progress": task_progress, "task_complete": task_complete, "task_verify": task_verify,
        "task_reject": task_reject, "task_extend": task_extend, "sweep": sweep,
    }
    yield from sim.run(handlers)
    return sim.counts
