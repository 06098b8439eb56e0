"""The one-page 考核办法 (method) printed with every review, generated from the rules data:
the rules' own opening paragraphs, each clause with its points, and how a score is formed."""

from __future__ import annotations

from typing import Any

from contracts.rules import RuleSet
from services.documents import labels


def _points(x: float) -> str:
    return f"{x:g}"


def method_text(rules: RuleSet) -> dict[str, Any]:
    credit = [r for r in rules.rules if r.kind == "credit"]
    deduction = [r for r in rules.rules if r.kind == "deduction"]
    credit_total = sum(r.points for r in credit)
    paragraphs = list(rules.method) or [
        "本细则依据联席会议制度制定，考核数据取自联席会议工作平台的事件日志。",
        "加分条款按完成情况计分，扣分条款按所列事项逐项扣分，各条扣分不超过该条分值。",
    ]
    formula = (f"得分 = {_points(rules.scale)} × 适用加分条款所得分 ÷ 适用加分条款分值之和 − 扣分条款扣分之和。"
               f"加分条款共 {len(credit)} 条、合计 {_points(credit_total)} 分，扣分条款共 {len(deduction)} 条。")
    if rules.min_weight:
        formula += f"适用的加分条款合计不足 {_points(rules.min_weight)} 分的单位，数据不足，不参与排名。"
    formula += (f"发生后超过 {rules.backdated.grace_days} 天才录入的记录为补录。"
                "同一日志、同一细则、同一截止时间，考核结果完全相同。")
    clauses = []
    for rule in rules.rules:
        scope = f"（仅适用于{'、'.join(rule.units)}）" if rule.units else ""
        kind = "加分" if rule.kind == "credit" else "扣分"
        clauses.append({"clause": rule.clause, "heading": labels.article(rule.clause), "kind": kind,
                        "points": rule.points, "text": f"{rule.text}{scope}"})
    years = "、".join(str(y) for y in rules.for_years)
    return {
        "title": rules.title,
        "subtitle": f"细则 {rules.name}{f'，适用年度 {years}' if years else ''}，SHA-256 {rules.sha256[:16]}",
        "paragraphs": paragraphs,
        "clauses": clauses,
        "formula": formula,
    }
