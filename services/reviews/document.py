"""The review document (and the what-if comparison) as a JSON-native dict.

Determinism: the output depends only on the log up to its head, the rules file and
``as_of``; lines come in a stable order, scores are rounded to two places, and the document
embeds a checkpoint of the head whose time is the head event's own recorded time, so the same
log, rules and as_of give byte-identical JSON (services/documents/review.py's ``to_json``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from contracts.rules import RuleSet
from services.reviews.facts import Facts, compute_facts
from services.reviews.scoring import Scored, flagged_backdated, rounded, rule_change, rules_meta, score
from services.security.checkpoint import Checkpoint

FORMAT = "lianxi-review/1"
COMPARE_FORMAT = "lianxi-review-compare/1"
BACKDATED_COLUMNS = ("unit", "event_id", "type", "occurred_on", "recorded_at", "days_late")


def review_document(facts: Facts, checkpoint: Checkpoint, scored: Scored) -> dict[str, Any]:
    rules = scored.rules
    # Rows, not objects: a province year flags hundreds of thousands of entries.
    rows = sorted(flagged_backdated(rules, facts), key=lambda b: (b[0], b[3], b[1]))
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


def compare_document(facts: Facts, checkpoint: Checkpoint, base: Scored, draft: Scored) -> dict[str, Any]:
    clauses = list(dict.fromkeys([r.clause for r in base.rules.rules] + [r.clause for r in draft.rules.rules]))
    changes = {}
    for clause in clauses:
        a = next((r for r in base.rules.rules if r.clause == clause), None)
        b = next((r for r in draft.rules.rules if r.clause == clause), None)
        change = rule_change(a, b)
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
                moved.append({"clause": clause, "base_points": va, "draft_points": vb, "delta": rounded(vb - va),
                              "change": changes.get(clause, "分值换算(其他条款调整)")})
        rows.append({"unit": unit, "name": ua["name"],
                     "base": {"score": ua["score"], "rank": ua["rank"]},
                     "draft": {"score": ub["score"], "rank": ub["rank"]},
                     "score_delta": rounded(ub["score"] - ua["score"]), "rank_delta": ua["rank"] - ub["rank"],
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
