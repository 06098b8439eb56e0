"""The annual review, replayed from the log: every clause of the default rules against a
small county year built through the use cases (with the clock moved step by step), as_of,
backdated entries, determinism, the what-if comparison, appeals through events, a tampered
log, the rules loader, and the renderings."""

from __future__ import annotations

import io
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from contracts.escalation import default_escalation_rules
from contracts.rules import (
    MEASURES,
    RULES_DIR,
    RulesError,
    default_rules,
    load_rules,
    named_rules,
    parse_rules,
    rules_for_year,
)
from services.demo.year import run_demo
from services.documents.review import render, to_json
from services.kernel.principal import Principal
from services.platform import Platform
from services.reviews.document import compute_review, find_deduction
from services.reviews.facts import ReviewError, parse_as_of
from services.reviews.scoring import SCORERS
from tests.conftest import Clock, make_platform
from tests.zygote import run_cli

LEAD = Principal("t-lead", "education", "lead", "lead")
FIRE = Principal("t-fire", "fire-rescue", "liaison", "fire")
POLICE = Principal("t-ps", "public-security", "liaison", "ps")
MET = Principal("t-met", "meteorology", "liaison", "met")
AS_OF = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def checkpoint_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANXI_CHECKPOINT_KEY", str(tmp_path / "checkpoint.key"))


def at(y: int, m: int, d: int, h: int = 2) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)


@dataclass
class County:
    platform: Platform
    ids: dict[str, Any] = field(default_factory=dict)


def duty(p: Platform, who: Principal, code: str, schools: list[str], occurred: date, recorded: datetime,
         key: str) -> str:
    return p.app.log_duty(who, duty_code=code, school_ids=schools, occurred_on=occurred, summary="检查",
                          findings={"count": 0, "text": ""}, evidence=[], idempotency_key=key, body={"k": key},
                          now=recorded).id


def build_county(p: Platform) -> County:
    c = County(p)
    app = p.app
    for i, canteen in ((1, True), (2, False), (3, True), (4, False)):
        app.register_school(LEAD, school_id=f"S{i}", name=f"学校{i}", town="满都拉图镇", kind="primary",
                            boarding=False, canteen=canteen, school_bus=False, now=at(2025, 1, 2))
    c.ids["duty_on_time"] = duty(p, FIRE, "fire-rescue.inspection", ["S1", "S2"], date(2025, 3, 3), at(2025, 3, 3),
                                 "a")
    c.ids["duty_backdated"] = duty(p, FIRE, "fire-rescue.inspection", ["S3"], date(2025, 3, 1), at(2025, 3, 20), "b")
    c.ids["duty_last_year"] = duty(p, FIRE, "fire-rescue.inspection", ["S4"], date(2024, 12, 30), at(2025, 1, 3),
                                   "c")
    c.ids["duty_recorded_late"] = duty(p, FIRE, "fire-rescue.inspection", ["S4"], date(2025, 12, 20),
                                       at(2026, 2, 10), "d")
    # A rectification closed late, and one left overdue and escalated by the sweep.
    late = app.report_hazard(FIRE, kind="unit", units=[], school_id="S1", category="fire", severity="general",
                             description="灭火器过期", found_on=date(2025, 4, 1), idempotency_key="h1", body={"h": 1},
                             now=at(2025, 4, 1))
    rid = uuid.UUID(late.id)
    app.assign_rectification(LEAD, rid, lead_unit="fire-rescue", cooperating_units=[], deadline=date(2025, 4, 10),
                             measures=["更换"], funds={"amount_cny": "100", "source": "自筹"}, now=at(2025, 4, 2))
    app.complete_rectification(FIRE, rid, summary="已更换", evidence=["sha256:x"], now=at(2025, 4, 20))
    c.ids["verified"] = app.verify_rectification(LEAD, rid, note="验收", now=at(2025, 4, 21)).event_id
    stalled = app.report_hazard(POLICE, kind="unit", units=[], school_id="S2", category="surroundings",
                                severity="general", description="校门口占道", found_on=date(2025, 4, 20),
                                idempotency_key="h2", body={"h": 2}, now=at(2025, 4, 20))
    sid = uuid.UUID(stalled.id)
    app.assign_rectification(LEAD, sid, lead_unit="public-security", cooperating_units=[],
                             deadline=date(2025, 5, 1), measures=["清理"], funds={"amount_cny": "0", "source": "无"},
                             now=at(2025, 4, 21))
    app.sweep_overdue([sid], now=at(2025, 5, 20), rules=default_escalation_rules())
    # A warning: fire-rescue acknowledges 3 hours late, public security never.
    w = app.issue_warning(MET, warning_type="rainstorm", level="orange", title="暴雨橙色预警", towns=["满都拉图镇"],
                          valid_from=at(2025, 7, 1, 0), valid_until=at(2025, 7, 2, 0), measures=["停止户外活动"],
                          units=["fire-rescue", "public-security"], school_ids=["S1", "S2", "S3", "S4"],
                          idempotency_key="w1", now=at(2025, 7, 1, 0))
    c.ids["warning"] = w.id
    c.ids["warning_event"] = w.event_id
    app.acknowledge_warning(FIRE, uuid.UUID(w.id), recipient_kind="unit", recipient=None,
                            measures_taken=["备勤"], note="", now=at(2025, 7, 1, 3))
    # A joint meeting public security missed, and a task fire-rescue closed on time.
    m = app.schedule_meeting(LEAD, number=1, title="第一次联席会议", scheduled_for=date(2025, 6, 10), place="会议室",
                             now=at(2025, 6, 1))
    mid = uuid.UUID(m.id)
    held = app.hold_meeting(LEAD, mid, held_on=date(2025, 6, 10), attendance=["education", "fire-rescue"],
                            absent=["public-security"], minutes="研究校园安全", now=at(2025, 6, 10))
    c.ids["meeting_held"] = held.event_id
    res = app.adopt_resolution(LEAD, mid, text="开展消防检查", agenda_item_ids=[], now=at(2025, 6, 10),
                               tasks=[{"unit": "fire-rescue", "cooperating_units": [], "description": "全面检查",
                                       "deadline": date(2025, 6, 30)}])
    task_id = uuid.UUID(res.related[0])
    c.ids["task_completed"] = app.complete_task(FIRE, task_id, summary="完成", evidence=[], occurred_on=None,
                                                now=at(2025, 6, 25)).event_id
    # A campaign: one of two schools self-checks in time; fire-rescue and public security inspect together.
    camp = app.launch_campaign(LEAD, year=2025, template="fire-safety", school_ids=["S1", "S2"], now=at(2025, 3, 1))
    cid = uuid.UUID(camp.id)
    campaign = app.campaign(cid)
    app.submit_self_check(LEAD, cid, school_id="S1", occurred_on=date(2025, 3, 25), now=at(2025, 3, 25),
                          results=[{"aspect": a, "passed": True, "problems": []} for a in campaign.aspects])
    c.ids["inspection"] = app.conduct_joint_inspection(
        FIRE, cid, units=["fire-rescue", "public-security"], school_ids=["S1"], occurred_on=date(2025, 5, 10),
        summary="联合督查", findings=[], idempotency_key="ji", now=at(2025, 5, 10)).event_id
    # Logistics targets: 3 of 4 schools are green schools (target 70%); no water-saving school (target 4).
    app.set_target(LEAD, code="green-school-share", year=2025, now=at(2025, 1, 5))
    app.set_target(LEAD, code="water-saving-schools", year=2025, now=at(2025, 1, 5))
    for s in ("S1", "S2", "S3"):
        app.recognise_school(LEAD, school_id=s, kind="green-school", level="county", awarded_on=date(2025, 9, 1),
                             awarding_body="县教育局", evidence=[], now=at(2025, 9, 2))
    p.runner.catch_up()
    return c


@pytest.fixture
def county(platform: Platform) -> County:
    return build_county(platform)


def unit(doc: dict[str, Any], code: str) -> dict[str, Any]:
    return next(u for u in doc["units"] if u["unit"] == code)


def clause(doc: dict[str, Any], code: str, number: str) -> dict[str, Any]:
    return next(c for c in unit(doc, code)["clauses"] if c["clause"] == number)


def review(p: Platform, as_of: datetime = AS_OF, **kw: Any) -> dict[str, Any]:
    return compute_review(p, year=2025, rules=kw.pop("rules", default_rules()), as_of=as_of, **kw)


# -- every clause, on SQLite and PostgreSQL ------------------------------------------------------


def test_each_clause_scores_the_year_with_the_events_behind_it(county: County) -> None:
    doc = review(county.platform)
    ids = county.ids
    cover = next(i for i in clause(doc, "fire-rescue", "1")["items"] if i["item"] == "duty:fire-rescue.inspection")
    assert cover["detail"]["schools_covered"] == 3 and cover["detail"]["schools_applicable"] == 4
    assert cover["event_ids"] == [ids["duty_on_time"], ids["duty_backdated"]]  # not last year's, not recorded late
    blind = clause(doc, "fire-rescue", "2")
    assert blind["kind"] == "deduction" and blind["points"] == 4.0  # 2 silent duties x 2 points
    assert {i["item"] for i in blind["items"]} == {"duty:fire-rescue.management-system",
                                                   "duty:fire-rescue.hazard-elimination"}
    on_time = clause(doc, "fire-rescue", "3")
    assert on_time["points"] == 0.0 and on_time["items"][0]["event_ids"] == [ids["verified"]]
    assert clause(doc, "fire-rescue", "4")["points"] == 10.0
    assert clause(doc, "fire-rescue", "4")["items"][0]["event_ids"] == [ids["task_completed"]]
    overdue = clause(doc, "public-security", "5")
    assert overdue["points"] == 0.5 and len(overdue["items"]) == 1
    escal = clause(doc, "public-security", "6")
    assert sorted(i["points"] for i in escal["items"]) == [0.5, 1.0] and escal["points"] == 1.5
    assert {i["detail"]["name"] for i in escal["items"]} == {"督办", "通报"}
    warn_fire, warn_ps = clause(doc, "fire-rescue", "7"), clause(doc, "public-security", "7")
    assert warn_fire["points"] == 0.5 and warn_fire["items"][0]["detail"]["hours"] == 3.0
    assert warn_ps["points"] == 1.0 and warn_ps["items"][0]["event_ids"] == [ids["warning_event"]]
    assert clause(doc, "meteorology", "7")["points"] == 0.0
    absent = clause(doc, "public-security", "10")
    assert absent["points"] == 1.0 and absent["items"][0]["event_ids"] == [ids["meeting_held"]]
    assert clause(doc, "fire-rescue", "10")["points"] == 0.0
    camp_lead = clause(doc, "education", "8")["items"]
    self_check = next(i for i in camp_lead if i["item"] == "campaign:fire-safety:self-check")
    assert self_check["detail"]["on_time"] == 1 and self_check["detail"]["schools"] == 2
    fire_phases = {i["item"]: i["points"] for i in clause(doc, "fire-rescue", "8")["items"]}
    assert fire_phases["campaign:fire-safety:inspection"] > 0 and fire_phases["campaign:fire-safety:evaluation"] == 0
    targets = {i["item"]: i["detail"] for i in clause(doc, "education", "9")["items"]}
    assert targets["target:green-school-share"]["met"] and targets["target:green-school-share"]["achieved"] == 0.75
    assert not targets["target:water-saving-schools"]["met"]
    assert all(c["clause"] != "9" for c in unit(doc, "fire-rescue")["clauses"])  # the lead's clause only
    late = clause(doc, "fire-rescue", "11")
    assert [i["event_ids"] for i in late["items"]] == [[ids["duty_backdated"]]]
    assert late["items"][0]["detail"]["days_late"] == 19
    assert doc["backdated"]["count"] >= 1
    assert doc["backdated"]["columns"][1] == "event_id"
    assert ids["duty_backdated"] in {e[1] for e in doc["backdated"]["entries"]}
    assert doc["backdated"]["by_unit"]["fire-rescue"] == 1
    # Scores: scale x earned / possible - deductions, ranked best first.
    fire = unit(doc, "fire-rescue")
    assert fire["score"] == round(100 * fire["credit_earned"] / fire["credit_possible"] - fire["deductions"], 2)
    scores = [u["score"] for u in doc["units"]]
    assert scores == sorted(scores, reverse=True) and doc["units"][0]["rank"] == 1
    assert doc["checkpoint"]["position"] == county.platform.app.recorder.max_notification_id()
    # The embedded checkpoint is a signed one: the log can be verified against the review later.
    from services.security.checkpoint import Checkpoint, trusted_key, verify_against

    embedded = Checkpoint.from_json(to_json(doc))
    assert verify_against(county.platform, embedded, trusted_public_key=trusted_key().public_key).ok


def test_as_of_counts_only_what_was_recorded_by_then(county: County) -> None:
    before = review(county.platform, AS_OF)
    after = review(county.platform, datetime(2026, 3, 1, tzinfo=UTC))
    ids = county.ids
    cov = next(i for i in clause(after, "fire-rescue", "1")["items"] if i["item"] == "duty:fire-rescue.inspection")
    assert ids["duty_recorded_late"] in cov["event_ids"] and cov["detail"]["schools_covered"] == 4
    assert ids["duty_recorded_late"] in {i["event_ids"][0] for i in clause(after, "fire-rescue", "11")["items"]}
    cov_before = next(i for i in clause(before, "fire-rescue", "1")["items"]
                      if i["item"] == "duty:fire-rescue.inspection")
    assert ids["duty_recorded_late"] not in cov_before["event_ids"]
    # Mid-year, the later clauses have nothing yet.
    mid = review(county.platform, datetime(2025, 4, 5, tzinfo=UTC))
    assert clause(mid, "public-security", "6")["points"] == 0.0


def test_same_log_rules_and_as_of_give_byte_identical_json(county: County) -> None:
    first = to_json(review(county.platform))
    second = to_json(review(county.platform))
    assert first == second
    other = make_platform(county.platform.settings.database_url, clock=Clock())
    try:
        assert to_json(review(other)) == first  # another process, same bytes
    finally:
        other.close()
    assert to_json(review(county.platform, AS_OF + timedelta(days=30))) != first


def test_backdated_grace_is_configurable(county: County, tmp_path: Path) -> None:
    raw = yaml.safe_load((RULES_DIR / "review-2025.v1.yaml").read_text(encoding="utf-8"))
    raw["backdated"]["grace_days"] = 30
    lenient = parse_rules(raw, "lenient")
    doc = review(county.platform, rules=lenient)
    assert county.ids["duty_backdated"] not in {e[1] for e in doc["backdated"]["entries"]}
    assert clause(doc, "fire-rescue", "11")["points"] == 0.0


def test_what_if_compares_scores_and_ranks_under_a_draft(county: County) -> None:
    raw = yaml.safe_load((RULES_DIR / "review-2025.v1.yaml").read_text(encoding="utf-8"))
    raw["version"] = 2
    for r in raw["rules"]:
        if r["clause"] == "10":
            r["params"]["per_item"] = 5
    draft = parse_rules(raw, "draft")
    doc = review(county.platform, compare=draft)
    assert doc["format"] == "lianxi-review-compare/1"
    assert doc["rule_changes"] == [{"clause": "10", "change": "参数调整：per_item 1.0 → 5.0"}]
    ps = next(u for u in doc["units"] if u["unit"] == "public-security")
    assert ps["score_delta"] == -4.0 and ps["moved_by"] == [
        {"clause": "10", "base_points": -1.0, "draft_points": -5.0, "delta": -4.0,
         "change": "参数调整：per_item 1.0 → 5.0"}]
    assert ps["draft"]["rank"] >= ps["base"]["rank"]
    assert all(u["moved_by"] == [] for u in doc["units"] if u["unit"] != "public-security")
    assert to_json(review(county.platform, compare=draft)) == to_json(doc)


def test_an_upheld_appeal_lifts_the_deduction_through_events(county: County) -> None:
    p = county.platform
    before = review(p)
    item = clause(before, "public-security", "10")["items"][0]
    filed = p.app.file_review_appeal(POLICE, year=2025, clause="10", item=item["item"], points=item["points"],
                                     rules="review-2025.v1", reason="会议通知未送达", now=datetime(2026, 1, 10,
                                                                                            tzinfo=UTC))
    pending = review(p, datetime(2026, 2, 1, tzinfo=UTC))
    entry = find_deduction(pending, "public-security", "10", item["item"])
    assert entry is not None and entry["appeal"]["status"] == "pending" and entry["counted"]
    p.app.decide_review_appeal(LEAD, uuid.UUID(filed.id), year=2025, upheld=True,
                               reason="经核实通知未送达", now=datetime(2026, 1, 20, tzinfo=UTC))
    after = review(p, datetime(2026, 2, 1, tzinfo=UTC))
    entry = find_deduction(after, "public-security", "10", item["item"])
    assert entry is not None and entry["appeal"]["status"] == "upheld" and not entry["counted"]
    assert entry["appeal"]["decision_reason"] == "经核实通知未送达"
    assert unit(after, "public-security")["score"] == round(unit(pending, "public-security")["score"] + 1.0, 2)
    assert after["appeals"][0]["status"] == "upheld"
    # The review as of before the decision is unchanged: history is never edited.
    assert to_json(review(p, datetime(2026, 1, 15, tzinfo=UTC))) == to_json(
        review(p, datetime(2026, 1, 15, tzinfo=UTC)))
    assert find_deduction(review(p, datetime(2026, 1, 15, tzinfo=UTC)), "public-security", "10",
                          item["item"])["counted"]  # type: ignore[index]


def test_a_rejected_appeal_keeps_the_deduction(sqlite_platform: Platform) -> None:
    county = build_county(sqlite_platform)
    p = county.platform
    item = clause(review(p), "fire-rescue", "7")["items"][0]
    filed = p.app.file_review_appeal(FIRE, year=2025, clause="7", item=item["item"], points=item["points"],
                                     rules="review-2025.v1", reason="系统延迟", now=datetime(2026, 1, 10, tzinfo=UTC))
    p.app.decide_review_appeal(LEAD, uuid.UUID(filed.id), year=2025, upheld=False,
                               reason="签收记录显示超时", now=datetime(2026, 1, 11, tzinfo=UTC))
    entry = find_deduction(review(p), "fire-rescue", "7", item["item"])
    assert entry is not None and entry["appeal"]["status"] == "rejected" and entry["counted"]
    from events.errors import Conflict, NotPermitted

    with pytest.raises(Conflict):
        p.app.decide_review_appeal(LEAD, uuid.UUID(filed.id), year=2025, upheld=True, reason="再议",
                                   now=datetime(2026, 1, 12, tzinfo=UTC))
    with pytest.raises(Conflict):
        p.app.file_review_appeal(FIRE, year=2025, clause="7", item=item["item"], points=item["points"],
                                 rules="review-2025.v1", reason="再次申诉", now=datetime(2026, 1, 13, tzinfo=UTC))
    with pytest.raises(NotPermitted):
        p.app.decide_review_appeal(FIRE, uuid.UUID(filed.id), year=2025, upheld=True, reason="x",
                                   now=datetime(2026, 1, 12, tzinfo=UTC))


def test_a_review_refuses_a_log_that_fails_verification(county: County) -> None:
    p = county.platform
    table, pos = ("stored_events", "rowid") if p.database.kind == "sqlite" else ("lianxi_events", "notification_id")
    with p.write_engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {table} WHERE {pos} = 30")
    with pytest.raises(ReviewError, match=r"fails verification.*position 30"):
        review(p)


# -- a demo year ----------------------------------------------------------------------------


def test_a_demo_year_reviews_every_unit_from_events_that_exist(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    now = datetime(2026, 1, 15, tzinfo=UTC)
    p = make_platform(sqlite_url, clock=Clock(now))
    try:
        from contracts.catalogue import default_catalogue

        run_demo(p.app, default_catalogue(), schools=12, year=2025, seed=3, now=now)
        doc = review(p, now)
        assert len(doc["ranking"]) == 21 and doc["log"]["schools"] == 12
        with p.read_engine.connect() as conn:
            stored = {r[0] for r in conn.exec_driver_sql("SELECT state FROM stored_events")}
        event_ids = {orjson.loads(s)["event_id"] for s in stored}
        cited = {e for u in doc["units"] for c in u["clauses"] for i in c["items"] for e in i["event_ids"]}
        assert cited and cited <= event_ids
        kinds = {c["clause"] for u in doc["units"] for c in u["clauses"]
                 if c["points"] > 0 and c["kind"] == "deduction"}
        assert {"2", "5", "6", "11", "12"} <= kinds  # blind spots, overdue, escalations, backdated, gaps
    finally:
        p.close()


# -- rules files ------------------------------------------------------------------------------


def test_default_rules_load_and_every_measure_has_a_scorer() -> None:
    rules = default_rules()
    assert rules.name == "review-2025.v1" and len(rules.sha256) == 64
    assert set(MEASURES) == set(SCORERS)
    current = named_rules("review-2026.v1")
    # Between them the 2025 rules and the load-aware 2026 rules use every measure.
    assert {r.measure for r in rules.rules} | {r.measure for r in current.rules} == set(MEASURES)
    assert all(r.text and r.source for r in rules.rules + current.rules)
    assert rules.for_years == (2025,) and current.for_years == (2026,)
    assert rules_for_year(2026).name == "review-2026.v1" and rules_for_year(2025).name == "review-2025.v1"
    with pytest.raises(RulesError, match="2019"):
        rules_for_year(2019)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r["rules"][1]["params"].update(per_item="two"), r"rules\[1\] \(clause 2\): params\.per_item"),
    (lambda r: r["rules"][3].update(measure="vibes"), r"rules\[3\] \(clause 4\): measure: unknown measure 'vibes'"),
    (lambda r: r["rules"][2].pop("points"), r"rules\[2\] \(clause 3\): points: Field required"),
    (lambda r: r["rules"][5]["params"].update(level_points={}), r"rules\[5\] \(clause 6\): params\.level_points"),
    (lambda r: r["rules"][4].update(clause="1"), r"rules\[4\] \(clause 1\): clause: '1' is listed twice"),
    (lambda r: r["rules"][6]["params"].update(surprise=1), r"rules\[6\] \(clause 7\): params\.surprise"),
    (lambda r: r["backdated"].update(grace_days=-1), r"backdated\.grace_days"),
])
def test_a_malformed_rules_file_is_rejected_naming_clause_and_field(tmp_path: Path, edit: Any, message: str) -> None:
    raw = yaml.safe_load((RULES_DIR / "review-2025.v1.yaml").read_text(encoding="utf-8"))
    edit(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RulesError, match=message) as err:
        load_rules(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_rules_files_that_are_not_yaml_or_missing_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(bad)
    with pytest.raises(RulesError, match="file not found"):
        load_rules(tmp_path / "none.yaml")


# -- input and renderings ---------------------------------------------------------------------


def test_as_of_accepts_a_date_or_an_instant_with_offset() -> None:
    assert parse_as_of("2026-01-31") == datetime(2026, 1, 31, 15, 59, 59, 999999, tzinfo=UTC)
    assert parse_as_of("2026-01-31T08:00:00+08:00") == datetime(2026, 1, 31, 0, 0, tzinfo=UTC)
    for bad in ("2026-13-01", "2026-01-31T08:00:00", "soon"):
        with pytest.raises(ReviewError):
            parse_as_of(bad)


def test_html_and_docx_renderings(sqlite_platform: Platform) -> None:
    build_county(sqlite_platform)
    doc = review(sqlite_platform)
    html = render(doc, "html").decode()
    assert "2025年度成员单位考核结果" in html and "旗消防大队" in html and doc["checkpoint"]["head_hash"] in html
    docx = render(doc, "docx")
    xml = zipfile.ZipFile(io.BytesIO(docx)).read("word/document.xml").decode()
    assert "旗公安局" in xml and 'w:eastAsia="' in xml
    runs = xml.count("<w:r>") + xml.count("<w:r ")
    assert runs and xml.count("w:eastAsia=") >= runs  # every run names its East-Asian font
    compare = render(review(sqlite_platform, compare=default_rules()), "html").decode()
    assert "两套细则相同" in compare


# -- the command line -------------------------------------------------------------------------


def test_cli_review_json_html_docx_compare_and_one_line_errors(sqlite_platform: Platform, tmp_path: Path,
                                                               checkpoint_key: None) -> None:
    import os
    import subprocess

    build_county(sqlite_platform)
    env = {**os.environ, "LIANXI_DATABASE_URL": sqlite_platform.settings.database_url}

    def lianxi(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(["review", "--year", "2025", *args], env=env, timeout=120)

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for out in (a, b):
        assert lianxi("--as-of", "2026-01-31", "-o", str(out)).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    assert orjson.loads(a.read_bytes())["as_of"] == "2026-01-31T15:59:59.999999+00:00"
    stdout = lianxi("--as-of", "2026-01-31")
    assert stdout.returncode == 0 and stdout.stdout.encode() == a.read_bytes()
    assert lianxi("--as-of", "2026-01-31", "--format", "docx", "-o", str(tmp_path / "r.docx")).returncode == 0
    assert zipfile.is_zipfile(tmp_path / "r.docx")
    cmp = lianxi("--as-of", "2026-01-31", "--compare-rules", str(RULES_DIR / "review-2025.v1.yaml"))
    assert cmp.returncode == 0 and orjson.loads(cmp.stdout)["rule_changes"] == []
    bad_rules = tmp_path / "bad.yaml"
    bad_rules.write_text("id: x\nversion: 1\ntitle: t\nbackdated: {grace_days: 1, types: [DutyPerformed]}\n"
                         "rules:\n  - {clause: '1', text: 文, measure: blind_spots, points: 5, params: {}}\n",
                         encoding="utf-8")
    for args in (["--format", "pdf"], ["--rules", str(tmp_path / "none.yaml")], ["--rules", str(bad_rules)],
                 ["--as-of", "tomorrow"], ["--format", "docx"]):
        proc = lianxi(*args)
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("lianxi: error:"), (args, proc.stderr)
    assert "rules[0] (clause 1): params.per_item: Field required" in lianxi("--rules", str(bad_rules)).stderr
