"""The 2026 review method on a demo year with planted units (services/demo/profiles.py): the
planted negligent units rank below the planted diligent ones, no credit without events, no
thinly-recorded unit on top, 不适用 and 数据不足 said with reasons, the same log gives the same
bytes (API call and CLI), a year without data is refused in one Chinese line, and the
what-if table puts old and new scores side by side."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from contracts.catalogue import default_catalogue
from contracts.rules import named_rules, rules_for_year
from projections.base import type_of_topic
from services.demo.profiles import plant
from services.demo.year import run_demo
from services.documents.review import render, to_json
from services.platform import Platform
from services.reviews.document import compute_review
from tests.conftest import make_platform

YEAR = 2026
SEED = 7
NOW = datetime(YEAR + 1, 1, 20, tzinfo=UTC)
ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, dict[str, Any], str]]:
    tmp = tmp_path_factory.mktemp("review-demo")
    os.environ["LIANXI_CHECKPOINT_KEY"] = str(tmp / "checkpoint.key")
    url = f"sqlite:///{tmp / 'demo.db'}"
    p = make_platform(url)
    counts = run_demo(p.app, default_catalogue(), schools=40, year=YEAR, seed=SEED, now=NOW)
    p.runner.catch_up()
    yield p, counts, url
    p.close()
    os.environ.pop("LIANXI_CHECKPOINT_KEY", None)


@pytest.fixture(scope="module")
def review(county: tuple[Platform, dict[str, Any], str]) -> dict[str, Any]:
    p, _, _ = county
    doc: dict[str, Any] = compute_review(p, year=YEAR, rules=rules_for_year(YEAR))
    return doc


def duty_records(p: Platform) -> Counter[str]:
    """Duty records per unit in the year, counted straight from the log."""
    out: Counter[str] = Counter()
    for n in p.app.recorder.select_notifications(start=1, limit=10_000_000):
        if type_of_topic(n.topic) == "DutyPerformed":
            d = orjson.loads(n.state)
            if d["occurred_on"].startswith(str(YEAR)):
                out[d["agency"]] += 1
    return out


def test_the_demo_plants_units_by_seed_and_says_which(county: tuple[Platform, dict[str, Any], str]) -> None:
    _, counts, _ = county
    planted = plant(default_catalogue(), SEED)
    assert counts["diligent"] == list(planted.diligent) and counts["negligent"] == list(planted.negligent)
    assert len(planted.diligent) == 3 == len(planted.negligent)
    assert not set(planted.diligent) & set(planted.negligent)
    assert plant(default_catalogue(), SEED) == planted and plant(default_catalogue(), SEED + 1) != planted


def test_planted_negligent_units_rank_below_the_diligent(county: tuple[Platform, dict[str, Any], str],
                                                         review: dict[str, Any]) -> None:
    _, counts, _ = county
    units = {u["unit"]: u for u in review["units"]}
    diligent_ranks = [units[c]["rank"] for c in counts["diligent"]]
    assert all(r is not None for r in diligent_ranks), diligent_ranks
    worst_diligent = max(diligent_ranks)
    for code in counts["negligent"]:
        rank = units[code]["rank"]
        assert rank is None or rank > worst_diligent, (code, rank, worst_diligent)


def test_no_credit_without_events_and_no_thin_unit_on_top(county: tuple[Platform, dict[str, Any], str],
                                                          review: dict[str, Any]) -> None:
    p, _, _ = county
    credited = 0
    for u in review["units"]:
        for c in u["clauses"]:
            if c["kind"] != "credit":
                continue
            for it in c["items"]:
                if it["points"] > 0:
                    credited += 1
                    assert it["event_count"] > 0 and it["event_ids"], (u["unit"], c["clause"], it["item"])
    assert credited > 20
    records = duty_records(p)
    median = statistics.median(records.get(u["unit"], 0) for u in review["units"])
    first = [r["unit"] for r in review["ranking"] if r["rank"] == 1]
    assert first and all(records.get(u, 0) >= median for u in first), (first, median)


def test_not_applicable_and_insufficient_data_are_said(review: dict[str, Any]) -> None:
    ranking = review["ranking"]
    assert all(set(r) == {"unit", "name", "rank", "score"} for r in ranking)
    unranked = [r for r in ranking if r["score"] is None]
    assert unranked and all(r["rank"] is None for r in unranked)
    ranked = [r for r in ranking if r["score"] is not None]
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    assert all(r["score"] <= 100 for r in ranked)
    by_unit = {u["unit"]: u for u in review["units"]}
    for r in unranked:
        assert by_unit[r["unit"]]["note"].startswith("数据不足，不参与排名")
    na = 0
    for u in review["units"]:
        for c in u["clauses"]:
            assert isinstance(c["applicable"], bool)
            if not c["applicable"]:
                na += 1
                assert c["reason"] and c["points"] == 0
            else:
                assert c["reason"] is None
    assert na > 10
    # A unit that led no rectification is 不适用 under clause 2, with its reason; nothing is skipped.
    court = by_unit["court"]
    assert [c["clause"] for c in court["clauses"]] == [r.clause for r in rules_for_year(YEAR).rules]
    assert next(c for c in court["clauses"] if c["clause"] == "2")["applicable"] is False
    assert review["method"]["clauses"] and review["method"]["title"].endswith("（2026年版）")


def test_without_as_of_the_review_is_as_of_the_log_head(county: tuple[Platform, dict[str, Any], str],
                                                       review: dict[str, Any]) -> None:
    p, _, _ = county
    again = compute_review(p, year=YEAR, rules=rules_for_year(YEAR))
    assert to_json(again) == to_json(review)
    assert review["as_of_source"] == "head"
    head = p.app.recorder.max_notification_id()
    assert review["checkpoint"]["position"] == head
    assert review["as_of"] <= NOW.isoformat() and review["as_of"] >= review["checkpoint"]["time"][:19]
    html = render(review, "html").decode()
    for code in ("court", "education"):
        assert f"({code})" not in html  # names, not codes
    assert "/events?before=" in html and "+00:00" not in html


def test_cli_same_bytes_and_no_data_year(county: tuple[Platform, dict[str, Any], str]) -> None:
    _, _, url = county
    env = {**os.environ, "LIANXI_DATABASE_URL": url}

    def lianxi(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "services.cli", "review", *args], env=env, capture_output=True,
                              timeout=300, cwd=ROOT)

    a, b = lianxi("--year", str(YEAR)), lianxi("--year", str(YEAR))
    assert a.returncode == 0 and a.stdout == b.stdout and a.stdout
    doc = orjson.loads(a.stdout)
    assert doc["rules"]["name"] == "review-2026.v1" and doc["rules"]["note"] is None
    # Rules written for 2025 applied to 2026 must be asked for, and say so on the document.
    old = lianxi("--year", str(YEAR), "--rules", "review-2025.v1")
    assert old.returncode == 0 and "适用年度为 2025" in orjson.loads(old.stdout)["rules"]["note"]
    # A year before the schools were registered: no ranking, one Chinese line, non-zero exit.
    none = lianxi("--year", str(YEAR - 1), "--rules", "review-2026.v1")
    lines = [x for x in none.stderr.decode().splitlines() if x.strip() and "review" not in x[:8]]
    assert none.returncode != 0 and not none.stdout
    assert len(lines) == 1 and "不能进行考核排名" in lines[0], none.stderr.decode()
    no_rules = lianxi("--year", str(YEAR - 3))
    assert no_rules.returncode != 0 and "考核细则" in no_rules.stderr.decode()


def test_compare_rules_shows_old_and_new_score_and_rank(county: tuple[Platform, dict[str, Any], str]) -> None:
    p, _, _ = county
    cmp = compute_review(p, year=YEAR, rules=named_rules("review-2025.v1"), compare=rules_for_year(YEAR))
    rows = {r["unit"]: r for r in cmp["units"]}
    assert cmp["base"]["name"] == "review-2025.v1" and cmp["draft"]["name"] == "review-2026.v1"
    court = rows["court"]
    assert court["base"]["score"] is not None and court["draft"] == {"score": None, "rank": None}
    assert court["score_delta"] is None
    moved = [r for r in rows.values() if r["score_delta"] not in (None, 0)]
    assert moved and all(r["base"]["rank"] and r["draft"]["rank"] for r in moved)
    assert render(cmp, "html") and render(cmp, "docx")[:2] == b"PK"
