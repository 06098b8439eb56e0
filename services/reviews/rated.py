"""Load-aware deductions (contracts/rules/review-2026.v1.yaml): a clause takes ``points`` × the
share of the unit's own items that went wrong, so owning more work is not punished for its
size. Each failed item is its own line (with its events, so it can be appealed), worth
``points × weight / items``; a summary line states the denominator. A unit with no items of
the kind is 不适用 for the clause.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, cast

from contracts.rules import RateParams, Rule, RuleSet
from services.reviews.facts import Facts, Item
from services.reviews.lines import Line, flagged_backdated, not_applicable, scorer

Failure = tuple[str, float, str, dict[str, Any], list[str]]  # item, weight, label, detail, event ids


def _rate_lines(rule: Rule, unit: str, total: int, noun: str, failures: list[Failure], na: str) -> list[Line]:
    if not total:
        return [not_applicable(unit, rule, na)]
    failed = sum(w for _, w, _, _, _ in failures)
    out = [Line(unit, rule.clause, "summary", 0.0, f"{noun} {total} 项，其中 {len(failures)} 项计入扣分",
                {"items": total, "failed": len(failures), "weighted": round(failed, 4)}, [], total)]
    each = rule.points / total
    out.extend(Line(unit, rule.clause, item, each * weight, label, detail, ids)
               for item, weight, label, detail, ids in failures)
    return out


def _weight(p: RateParams, key: str) -> float:
    return p.weights.get(key, 1.0)


@scorer("escalation_rate")
def _escalation_rate(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(RateParams, rule.params)
    due: dict[str, list[tuple[str, Item]]] = defaultdict(list)
    pools = {"rectification": f.rects, "task": f.task_items}
    for kind in p.kinds:
        for item in pools[kind].values():
            if item.due_by(f.year, f.cutoff):
                due[item.unit].append((kind, item))
    names = {"rectification": "整改事项", "task": "交办事项"}
    out = []
    for code in units:
        mine = due.get(code, [])
        failures: list[Failure] = [
            (f"event:{item.level_event}", _weight(p, str(item.level)),
             f"{names[kind]}逾期升级至第{item.level}级（期限 {item.deadline}）",
             {"kind": kind, "level": item.level, "deadline": item.deadline}, [item.level_event])
            for kind, item in sorted(mine, key=lambda ki: (ki[1].deadline, ki[1].event_id))
            if item.level and item.level_event]
        out.extend(_rate_lines(rule, code, len(mine), "到期整改、交办事项", failures,
                               "本年度无本单位牵头的到期整改或交办事项"))
    return out


@scorer("warning_ack_rate")
def _warning_ack_rate(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(RateParams, rule.params)
    as_of = datetime.fromisoformat(f.as_of)
    asked: dict[str, int] = defaultdict(int)
    failures: dict[str, list[Failure]] = defaultdict(list)
    for warning_id, (issued_at, recipients, event_id, title) in sorted(f.warnings.items(), key=lambda w: w[1][0]):
        issued = datetime.fromisoformat(issued_at)
        for unit in recipients:
            ack = f.acks.get((warning_id, unit))
            if ack is None:
                if (as_of - issued).total_seconds() / 3600 <= p.within_hours:
                    continue  # not yet due
                asked[unit] += 1
                failures[unit].append((f"warning:{warning_id}", _weight(p, "missing"), f"未确认预警：{title}",
                                       {"issued_at": issued_at}, [event_id]))
                continue
            asked[unit] += 1
            hours = (datetime.fromisoformat(ack[0]) - issued).total_seconds() / 3600
            if hours > p.within_hours:
                failures[unit].append((f"warning:{warning_id}", _weight(p, "late"), f"超时确认预警：{title}",
                                       {"issued_at": issued_at, "hours": round(hours, 2)}, [event_id, ack[1]]))
    out = []
    for code in units:
        out.extend(_rate_lines(rule, code, asked.get(code, 0), "应确认的预警", failures.get(code, []),
                               "本年度未被要求确认预警信息"))
    return out


@scorer("meeting_absence_rate")
def _meeting_absence_rate(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(RateParams, rule.params)
    held: dict[str, int] = defaultdict(int)
    failures: dict[str, list[Failure]] = defaultdict(list)
    for event_id, held_on, present, absent in sorted(f.meetings, key=lambda m: (m[1], m[0])):
        for unit in present:
            held[unit] += 1
        for unit in absent:
            held[unit] += 1
            failures[unit].append((f"event:{event_id}", _weight(p, "absent"), f"缺席联席会议（{held_on}）",
                                   {"held_on": held_on}, [event_id]))
    out = []
    for code in units:
        out.extend(_rate_lines(rule, code, held.get(code, 0), "应出席的联席会议", failures.get(code, []),
                               "本年度未召开联席会议"))
    return out


@scorer("backdated_rate")
def _backdated_rate(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(RateParams, rule.params)
    failures: dict[str, list[Failure]] = defaultdict(list)
    for unit, event_id, kind, occurred, at, days in flagged_backdated(rules, f):
        failures[unit].append((f"event:{event_id}", _weight(p, "backdated"),
                               f"补录：发生于 {occurred}，迟 {days} 天录入",
                               {"type": kind, "occurred_on": occurred, "recorded_at": at, "days_late": days},
                               [event_id]))
    out = []
    for code in units:
        out.extend(_rate_lines(rule, code, f.entries.get(code, 0), "本年度录入的记录", failures.get(code, []),
                               "本年度无本单位录入的记录"))
    return out


@scorer("compliance_gap_rate")
def _compliance_gap_rate(rule: Rule, f: Facts, units: list[str], rules: RuleSet) -> list[Line]:
    p = cast(RateParams, rule.params)
    failures: dict[str, list[Failure]] = defaultdict(list)
    for unit, event_id, school, kind, period in f.gaps:
        failures[unit].append((f"event:{event_id}", _weight(p, "missing"), f"台账缺失：{kind} {period}",
                               {"school_id": school, "kind": kind, "period": period}, [event_id]))
    out = []
    for code in units:
        total = f.compliance_logged.get(code, 0) + len(failures.get(code, []))
        out.extend(_rate_lines(rule, code, total, "应归档的后勤台账", failures.get(code, []),
                               "本单位无应归档的后勤台账"))
    return out
