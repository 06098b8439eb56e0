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
from events.base import COUNTY_TZ
from services.reviews.facts import Facts, ReviewError, compute_facts
from services.reviews.method import method_text
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
    units = [scored.units[r["unit"]] for r in scored.ranking]
    return {
        "format": FORMAT,
        "title": f"{facts.year}年度成员单位考核结果",
        "year": facts.year,
        "as_of": facts.as_of,
        "rules": {**rules_meta(rules), "for_year": facts.year in rules.for_years,
                  "note": rules_note(rules, facts.year)},
        "method": method_text(rules),
        "checkpoint": checkpoint.as_dict(),
        "log": {"events_read": facts.events_read, "events_used": facts.events_used,
                "head_position": checkpoint.position, "schools": len(facts.schools)},
        "ranking": scored.ranking,
        "units": units,
        "backdated": {"grace_days": rules.backdated.grace_days, "count": len(flagged), "by_unit": dict(by_unit),
                      "columns": list(BACKDATED_COLUMNS), "entries": flagged},
        "appeals": appeals,
        "names": names_of(facts, units, flagged, appeals),
        "county_tz": COUNTY_TZ.key,  # people read county-local times (the renderings convert)
    }


def rules_note(rules: RuleSet, year: int) -> str | None:
    if year in rules.for_years:
        return None
    written = "、".join(f"{y}" for y in rules.for_years) or "未声明"
    return f"本次考核按指定的细则 {rules.name} 计算，该细则适用年度为 {written}，不是 {year} 年度。"


def names_of(facts: Facts, units: list[dict[str, Any]], backdated: list[list[Any]],
             appeals: list[dict[str, Any]]) -> dict[str, Any]:
    """What people read instead of codes and ids: unit names, duty texts, school names, and the
    log position of each cited event (the HTML links evidence to the event log page)."""
    cited: set[str] = set()
    duties: set[str] = set()
    schools: set[str] = set()
    for u in units:
        for c in u["clauses"]:
            for it in c["items"]:
                cited.update(it["event_ids"])
                detail = it.get("detail") or {}
                if isinstance(detail.get("duty"), str):
                    duties.add(detail["duty"])
                if isinstance(detail.get("school_id"), str):
                    schools.add(detail["school_id"])
    cited.update(str(b[1]) for b in backdated)
    for a in appeals:
        cited.update(str(a[k]) for k in ("filed_event_id", "decided_event_id") if a.get(k))
    return {
        "units": {code: u.name for code, u in sorted(facts.units.items())},
        "duties": {d: facts.duty_texts[d] for d in sorted(duties) if d in facts.duty_texts},
        "schools": {s: facts.school_names[s] for s in sorted(schools) if s in facts.school_names},
        "positions": {e: facts.positions[e] for e in sorted(cited) if e in facts.positions},
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
                              "change": changes.get(clause, "分值换算（其他条款调整）")})
        both = ua["score"] is not None and ub["score"] is not None
        rows.append({"unit": unit, "name": ua["name"],
                     "base": {"score": ua["score"], "rank": ua["rank"]},
                     "draft": {"score": ub["score"], "rank": ub["rank"]},
                     "score_delta": rounded(ub["score"] - ua["score"]) if both else None,
                     "rank_delta": ua["rank"] - ub["rank"] if both else None,
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
    """The review of ``year`` under ``rules`` (or, with ``compare``, the side-by-side table).
    Without ``as_of`` it is as of the log head, so the same log gives the same bytes."""
    sets = [rules] + ([compare] if compare else [])
    facts, checkpoint = compute_facts(platform, year=year, as_of=as_of, rule_sets=sets, progress=progress)
    if not facts.schools or not facts.duty:
        missing = "没有登记的学校" if not facts.schools else "没有履职记录"
        raise ReviewError(f"{year}年度{missing}，数据不足，不能进行考核排名")
    base = score(rules, facts)
    if compare is None:
        document = review_document(facts, checkpoint, base)
    else:
        document = compare_document(facts, checkpoint, base, score(compare, facts))
    # "head": as of the log head (its position and the latest recorded time counted).
    document["as_of_source"] = "head" if as_of is None else "given"
    document["county_tz"] = COUNTY_TZ.key
    return document


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
