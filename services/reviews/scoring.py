"""Scoring the review's facts under a rules set.

Each rule's ``measure`` names a scorer (the ``SCORERS`` table) that turns facts into credit
and deduction lines (contracts/rules.py lists the measures and their params). The same facts
are scored under a draft rules set for the what-if comparison, so a comparison costs one
replay. Scores are rounded to two places and lines kept in a stable order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

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
from services.reviews.facts import Facts, Item, ReviewError
from services.reviews.lines import SCORERS, Line, flagged_backdated, not_applicable, nothing_to_measure, scorer

__all__ = ["SCORERS", "Line", "flagged_backdated", "not_applicable", "scorer"]


def _share(done: int, total: int) -> float:
    return done / total if total else 0.0


@scorer("duty_coverage")
def _duty_coverage(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(DutyCoverageParams, rule.params)
    if p.method == "evidence":
        return _duty_evidence(rule, p, f, units)
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


def _duty_evidence(rule: Rule, p: DutyCoverageParams, f: Facts, units: list[str]) -> list[Line]:
    """Credit needs evidence: a duty earns its share only by the share of its applicable schools
    its records covered (against its target). A duty with no record is a 盲区: 0 of its share,
    counted here once. A duty that concerns no school, is performed on demand (target 0) or has
    no applicable school cannot be measured by coverage: 不适用 once it has records."""
    out = []
    for code in units:
        duties, source = f.units[code].duties_on(f.cutoff)
        if not duties:
            out.append(not_applicable(code, rule, "本单位无职责清单"))
            continue
        each = rule.points / len(duties)
        for duty in duties:
            stat = f.duty.get((code, duty["code"]))
            spec = p.by_duty.get(duty["code"])
            target = spec.target if spec is not None else p.coverage_target
            records = stat.count if stat else 0
            ids = list(stat.ids) if stat else []
            detail: dict[str, Any] = {"duty": duty["code"], "applies_to": duty["applies_to"], "records": records,
                                      "target": target}
            item = f"duty:{duty['code']}"
            applicable = f.school_count(duty["applies_to"]) if duty["applies_to"] != "none" else 0
            if not records:
                out.append(Line(code, rule.clause, item, 0.0, "履职盲区（全年无履职记录）", {**detail, "blind": True},
                                [source] if source else [], 0, weight=each))
                continue
            if duty["applies_to"] == "none" or target == 0 or not applicable:
                reason = ("不针对具体学校，无法按学校覆盖率计量" if duty["applies_to"] == "none" else
                          "按需履职，不预设覆盖目标" if target == 0 else "无适用学校")
                out.append(Line(code, rule.clause, item, 0.0, reason, detail, ids, records, weight=0.0, na=reason))
                continue
            covered = f.covered(stat, duty["applies_to"]) if stat else 0
            coverage = _share(covered, applicable)
            detail.update(schools_applicable=applicable, schools_covered=covered, coverage=round(coverage, 4))
            out.append(Line(code, rule.clause, item, each * min(1.0, coverage / target),
                            f"覆盖 {covered}/{applicable} 所学校", detail, ids, records, weight=each))
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


def _on_time_due(rule: Rule, f: Facts, units: list[str], items: dict[Any, Item], what: str) -> list[Line]:
    """Load-aware: the on-time share of the unit's own items due in the year (closed or not),
    so a unit with more work is not punished for its size; none due: 不适用."""
    by_unit: dict[str, list[Item]] = defaultdict(list)
    for item in items.values():
        if item.due_by(f.year, f.cutoff):
            by_unit[item.unit].append(item)
    noun = "整改事项" if what == "rectifications" else "交办事项"
    out = []
    for code in units:
        mine = sorted(by_unit.get(code, []), key=lambda i: (i.deadline, i.event_id))
        if not mine:
            out.append(not_applicable(code, rule, f"本年度无本单位牵头的到期{noun}"))
            continue
        on = [i for i in mine if i.on_time]
        late = [i for i in mine if not i.on_time]
        ids = [i.closed_event or i.event_id for i in late] + [i.closed_event or i.event_id for i in on]
        out.append(Line(code, rule.clause, what, rule.points * len(on) / len(mine),
                        f"到期{noun} {len(mine)} 项，按期完成 {len(on)} 项",
                        {"due": len(mine), "on_time": len(on), "late_or_open": len(late)},
                        [i for i in ids if i][: f.evidence_limit], len(mine), weight=rule.points))
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
        if not items and p.when_none == "not_applicable":
            reason = "本年度无已销号事项" if what == "rectifications" else "本年度无已办结事项"
            out.append(not_applicable(code, rule, reason))
            continue
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
    if cast(OnTimeParams, rule.params).count == "due":
        return _on_time_due(rule, f, units, f.rects, "rectifications")
    return _on_time(rule, units, f.rect_verified, "rectifications", f.evidence_limit)


@scorer("task_on_time")
def _task_on_time(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    if cast(OnTimeParams, rule.params).count == "due":
        return _on_time_due(rule, f, units, f.task_items, "tasks")
    return _on_time(rule, units, f.task_completed, "tasks", f.evidence_limit)


@scorer("overdue")
def _overdue(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(OverdueParams, rule.params)
    wanted = set(units)
    names = {"rectification": "整改事项", "task": "交办事项"}
    return [
        Line(unit, rule.clause, f"event:{event_id}", p.per_item, f"{names[kind]}逾期（期限 {deadline}）",
             {"kind": kind, "deadline": deadline, "days_overdue": days}, [event_id])
        for kind, unit, event_id, deadline, days in f.overdue if unit in wanted and kind in p.kinds
    ]


@scorer("escalations")
def _escalations(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(EscalationParams, rule.params)
    wanted = set(units)
    return [
        Line(unit, rule.clause, f"event:{event_id}", p.level_points[level], f"{name}（第{level}级，期限 {deadline}）",
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
                                {"campaign": c["name"], "phase": first["code"], "phase_name": first.get("name"),
                                 "deadline": first["deadline"],
                                 "schools": c["schools"], "on_time": on_time, "late": late},
                                [c["event_id"], *ids][: f.evidence_limit], on_time + late))
        for phase in later:
            for unit in c["inspecting_units"]:
                found = f.inspections.get((cid, phase["code"], unit), [])
                owed[unit].append((f"campaign:{c['template']}:{phase['code']}", 1.0 if found else 0.0,
                                   {"campaign": c["name"], "phase": phase["code"], "phase_name": phase.get("name"),
                                    "deadline": phase["deadline"],
                                    "joint_inspections": len(found)}, [c["event_id"], *found], None))
    out = []
    for code in units:
        items = owed.get(code, [])
        if not items:
            out.append(nothing_to_measure(code, rule, p.when_none, "campaigns",
                                          na_reason="本单位在本年度专项整治中无牵头或督查任务", label="无专项整治任务"))
            continue
        each = rule.points / len(items)
        weight = each if p.when_none == "not_applicable" else None
        for item, share, detail, ids, count in items:
            phase = detail["phase_name"] or detail["phase"]
            out.append(Line(code, rule.clause, item, each * share,
                            f"{detail['campaign']}“{phase}”阶段（截止 {detail['deadline']}）", detail, ids,
                            count, weight=weight))
    return out


def _target_value(spec: Any, target: dict[str, Any], f: Facts) -> tuple[float | None, list[str], dict[str, Any]]:
    """(achieved value, evidence, detail) of one target at year end."""
    year_end = f"{f.year:04d}-12-31"
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
            out.append(nothing_to_measure(code, rule, p.when_none, "targets",
                                          na_reason="本年度未设定县级后勤目标", label="本年度未设定县级后勤目标"))
            continue
        each = rule.points / len(evaluated)
        weight = each if p.when_none == "not_applicable" else None
        for target, met, detail, ids in evaluated:
            out.append(Line(code, rule.clause, f"target:{target['code']}", each if met else 0.0,
                            f"{target['text']}（{'已完成' if met else '未完成'}）", dict(detail), ids, weight=weight))
    return out


@scorer("meeting_attendance")
def _meeting_attendance(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(PerItemParams, rule.params)
    wanted = set(units)
    return [
        Line(unit, rule.clause, f"event:{event_id}", p.per_item, f"缺席联席会议（{held_on}）", {"held_on": held_on},
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


@scorer("backdated_reports")
def _backdated_reports(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(PerItemParams, rule.params)
    wanted = set(units)
    return [
        Line(unit, rule.clause, f"event:{event_id}", p.per_item, f"补录：{kind} 发生于 {occurred}，迟 {days} 天录入",
             {"type": kind, "occurred_on": occurred, "recorded_at": at, "days_late": days}, [event_id])
        for unit, event_id, kind, occurred, at, days in flagged_backdated(rules, f) if unit in wanted
    ]


def rounded(x: float) -> float:
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
        if rules.min_weight:  # the load-aware rules say 不适用 rather than skipping a clause
            names = "、".join(f.units[u].name if u in f.units else u for u in rule.units or ())
            for unit in all_units:
                if unit not in scope:
                    grouped[unit].append(not_applicable(unit, rule, f"本条仅适用于{names}"))
        for unit in (all_units if rules.min_weight else scope):
            items = sorted(grouped.get(unit, []), key=lambda ln: ln.item)
            rendered = []
            subtotal = 0.0
            weights = [ln.weight for ln in items if ln.weight is not None]
            legacy = len(weights) < len(items) or (not items and rule.kind == "credit" and not rules.min_weight)
            weight = rule.points if legacy else min(rule.points, sum(weights))
            reasons = [ln.na for ln in items if ln.na]
            applicable = bool(weight) if rule.kind == "credit" else not (items and len(reasons) == len(items))
            for ln in items:
                entry: dict[str, Any] = {"item": ln.item, "label": ln.label, "points": rounded(ln.points),
                                         "detail": ln.detail, "event_ids": ln.event_ids,
                                         "event_count": ln.event_count if ln.event_count is not None
                                         else len(ln.event_ids), "counted": True}
                if ln.na:
                    entry["applicable"] = False
                    entry["reason"] = ln.na
                if ln.weight is not None and rule.kind == "credit":
                    entry["weight"] = rounded(ln.weight)
                appeal = appeals.get((unit, rule.clause, ln.item)) if rule.kind == "deduction" else None
                if appeal is not None:
                    entry["appeal"] = {k: v for k, v in appeal.items() if k not in ("unit", "clause", "item")}
                    if appeal["status"] == "upheld":
                        entry["counted"] = False
                if entry["counted"]:
                    subtotal += ln.points  # unrounded: three thirds make a whole
                rendered.append(entry)
            if not applicable:
                rendered = [e for e in rendered if e.get("item") != "clause"]
            if rule.kind == "credit":
                weight = rounded(weight)  # earned and possible on the same two places: never over 100
                points = rounded(min(subtotal, weight))
                earned[unit] += points
                possible[unit] += weight
            else:
                points = rounded(min(subtotal, rule.points))
                deducted[unit] += points
            per_unit[unit].append({"clause": rule.clause, "measure": rule.measure, "kind": rule.kind,
                                   "text": rule.text, "max_points": rule.points, "points": points,
                                   "applicable": applicable,
                                   "reason": None if applicable else (reasons[0] if reasons else "无可计量事项"),
                                   "weight": rounded(weight) if rule.kind == "credit" else rule.points,
                                   "capped": subtotal > rule.points + 1e-9, "items": rendered})
    units: dict[str, dict[str, Any]] = {}
    for unit in all_units:
        scale = rules.scale / possible[unit] if possible[unit] else 0.0
        credit = rounded(earned[unit] * scale)
        score_: float | None = rounded(credit - deducted[unit])
        # 数据不足: too little of the method applies to the unit to rank it fairly.
        insufficient = bool(rules.min_weight) and possible[unit] < rules.min_weight - 1e-9
        if insufficient:
            score_ = None
        for c in per_unit[unit]:
            value = c["points"] * scale if c["kind"] == "credit" else -c["points"]
            contributions[unit][c["clause"]] = rounded(value)
        units[unit] = {"unit": unit, "name": f.units[unit].name, "score": score_, "credit": credit,
                       "credit_earned": rounded(earned[unit]), "credit_possible": rounded(possible[unit]),
                       "deductions": rounded(deducted[unit]), "clauses": per_unit[unit],
                       "status": "insufficient" if insufficient else "ranked",
                       "note": (f"数据不足，不参与排名（适用的加分条款合计 {rounded(possible[unit]):g} 分，"
                                f"低于 {rules.min_weight:g} 分）") if insufficient else None}
    ranked = sorted((u for u in all_units if units[u]["score"] is not None), key=lambda u: (-units[u]["score"], u))
    ranking: list[dict[str, Any]] = []
    for i, unit in enumerate(ranked):
        rank = i + 1
        if i and units[unit]["score"] == units[ranked[i - 1]]["score"]:
            rank = ranking[-1]["rank"]
        units[unit]["rank"] = rank
        ranking.append({"rank": rank, "unit": unit, "name": units[unit]["name"], "score": units[unit]["score"]})
    for unit in sorted(u for u in all_units if units[u]["score"] is None):
        units[unit]["rank"] = None
        ranking.append({"rank": None, "unit": unit, "name": units[unit]["name"], "score": None})
    return Scored(rules, units, ranking, contributions)



# -- what the rules say, and what changed between two sets -----------------------------------


def rules_meta(rules: RuleSet) -> dict[str, Any]:
    return {"name": rules.name, "id": rules.id, "version": rules.version, "title": rules.title,
            "sha256": rules.sha256, "scale": rules.scale, "backdated_grace_days": rules.backdated.grace_days,
            "years": list(rules.for_years), "min_weight": rules.min_weight}


def _param_change(name: str, a: Any, b: Any) -> str:
    scalar = (int, float, str, bool, type(None))
    if isinstance(a, scalar) and isinstance(b, scalar):
        return f"{name} {a} → {b}"
    return name


def rule_change(a: Rule | None, b: Rule | None) -> str | None:
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
        parts.append("参数调整：" + ", ".join(_param_change(k, pa.get(k), pb.get(k)) for k in changed))
    return "; ".join(parts) or None



# The load-aware deductions register their scorers on import (kept apart: this module's size).
from services.reviews import rated as _rated  # noqa: E402,F401
