"""School logistics domain: given events -> when command -> then events, and the calendar as data."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from contracts.catalogue import CatalogueError, default_catalogue
from contracts.compliance import (
    PeriodError,
    default_calendar,
    load_calendar,
    period_bounds,
    period_of,
    periods_overlapping,
)
from events.base import event_payload
from events.errors import Conflict, InvariantViolated, NotPermitted
from events.logistics import (
    AnnualTarget,
    ComplianceGap,
    ComplianceRecord,
    Petition,
    Recognition,
    check_no_personal_data,
    compliance_gap_id,
)

NOW = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)
SEEDS = Path(__file__).parents[2] / "shared" / "seeds"


def test_calendar_loads_and_names_the_seed_kinds() -> None:
    cal = default_calendar()
    codes = {k.code for k in cal.kinds}
    for expected in ("drinking-water-test-report", "water-dispenser-disinfection", "canteen-staff-certification",
                     "dormitory-safety-check", "school-bus-approval", "school-bus-teacher-escort",
                     "liability-insurance", "milk-programme-uptake", "heavy-pollution-emergency-plan",
                     "psychological-screening", "national-security-education", "legal-vice-principal",
                     "micro-fire-station", "fire-evacuation-route-check", "cyber-security-drill",
                     "cyber-security-grading", "four-100-security-guards"):
        assert expected in codes
    assert cal.kind("national-security-education").measure is not None
    assert cal.kind("national-security-education").measure.min == 2  # type: ignore[union-attr]
    assert cal.kind("dormitory-safety-check").applies_to == "boarding"
    assert set(cal.hazard_kinds) >= {"drinking-water-test-report", "micro-fire-station"}
    recognitions = {r.code for r in cal.recognitions}
    assert {"green-school", "water-saving-school", "garbage-sorting-demo-school", "demonstration-canteen",
            "demonstration-dormitory", "healthy-canteen", "bright-kitchen"} <= recognitions
    # every catalogue target is measurable: a recognition, or a calendar measure
    for t in default_catalogue().targets.targets:
        assert t.recognition or t.code in cal.target_measures, t.code


@pytest.mark.skipif(not SEEDS.is_dir(), reason="seeds not beside the repo")
def test_calendar_texts_are_verbatim_from_their_seed() -> None:
    seeds = {p.name[:3]: p.read_text(encoding="utf-8") for p in SEEDS.glob("0*.txt")}
    for k in default_calendar().kinds:
        seed = k.source[:3]
        assert k.text in seeds[seed], (k.code, k.text)


def test_calendar_errors_name_file_and_field(tmp_path: Path) -> None:
    src = Path(__file__).parents[1] / "contracts" / "catalogue" / "compliance_calendar.yaml"
    raw = yaml.safe_load(src.read_text(encoding="utf-8"))
    raw["kinds"][0]["responsible"] = "no-such-unit"
    (tmp_path / "compliance_calendar.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"kinds\[0\].*no-such-unit"):
        load_calendar(tmp_path)
    raw["kinds"][0]["responsible"] = "education"
    raw["kinds"][0]["cadence"] = "fortnightly"
    (tmp_path / "compliance_calendar.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"kinds\[0\]\.cadence"):
        load_calendar(tmp_path)


def test_periods() -> None:
    assert period_bounds("quarterly", "2025-Q2") == (date(2025, 4, 1), date(2025, 6, 30))
    assert period_bounds("semester", "2025-S2") == (date(2025, 7, 1), date(2025, 12, 31))
    assert period_bounds("school-year", "2024-2025") == (date(2024, 9, 1), date(2025, 8, 31))
    assert period_of("school-year", date(2025, 8, 31)) == "2024-2025"
    assert period_of("school-year", date(2025, 9, 1)) == "2025-2026"
    assert periods_overlapping("monthly", date(2025, 11, 15), date(2026, 1, 2)) == ["2025-11", "2025-12", "2026-01"]
    with pytest.raises(PeriodError):
        period_bounds("quarterly", "2025-03")
    with pytest.raises(PeriodError):
        period_bounds("school-year", "2024-2026")
    ins = default_calendar().kind("liability-insurance")
    assert ins.due_on("2025-2026") == date(2025, 10, 1)
    assert ins.missing_after("2025-2026") == date(2025, 10, 16)


def _target(value: float | None = 0.7, measure: str = "share") -> AnnualTarget:
    return AnnualTarget.set_target(
        by_agency="education", by_lead=True, target_code="green-school-share", year=2025, scope="county",
        measure=measure, value=value, direction=None, recognition="green-school", text="x", set_by="t", now=NOW)


def test_target_set_and_revised_with_reason() -> None:
    t = _target()
    assert [type(e).__name__ for e in t.collect_events()] == ["TargetSet"]
    assert t.revise(by_agency="education", by_lead=True, value=0.7, reason="", set_by="t", now=NOW) is False
    with pytest.raises(InvariantViolated, match="reason"):
        t.revise(by_agency="education", by_lead=True, value=0.8, reason=" ", set_by="t", now=NOW)
    assert t.revise(by_agency="education", by_lead=True, value=0.8, reason="省里提高要求", set_by="t", now=NOW)
    (e,) = t.collect_events()
    assert type(e).__name__ == "TargetRevised" and event_payload(e)["value"] == 0.8
    with pytest.raises(InvariantViolated, match="fraction"):
        _target(1.5)
    with pytest.raises(InvariantViolated, match="whole number"):
        _target(2.5, "count")
    with pytest.raises(NotPermitted):
        AnnualTarget.set_target(by_agency="fire-rescue", by_lead=False, target_code="x", year=2025, scope="county",
                                measure="share", value=1, direction=None, recognition=None, text="x", set_by="t",
                                now=NOW)
    with pytest.raises(InvariantViolated, match="scope"):
        AnnualTarget.set_target(by_agency="education", by_lead=True, target_code="x", year=2025, scope="province",
                                measure="share", value=1, direction=None, recognition=None, text="x", set_by="t",
                                now=NOW)


def _award(**kw: object) -> Recognition:
    args: dict[str, object] = dict(
        by_agency="education", by_lead=True, school_id="S1", school_applies=True, kind="green-school",
        known_kinds=["green-school", "healthy-canteen"], level="province", awarded_on=date(2025, 6, 1),
        awarding_body="四川省教育厅", evidence=["sha256:ab"], logged_by="t", now=NOW)
    args.update(kw)
    return Recognition.award(**args)  # type: ignore[arg-type]


def test_recognition_awarded_and_withdrawn_once() -> None:
    r = _award()
    (e,) = r.collect_events()
    data = event_payload(e)
    assert type(e).__name__ == "SchoolRecognised"
    assert (data["level"], data["awarded_on"], data["occurred_on"]) == ("province", "2025-06-01", "2025-06-01")
    with pytest.raises(InvariantViolated, match="before it was awarded"):
        r.withdraw(by_agency="education", by_lead=True, withdrawn_on=date(2025, 5, 1), reason="x", logged_by="t",
                   now=NOW)
    r.withdraw(by_agency="education", by_lead=True, withdrawn_on=date(2025, 6, 20), reason="复审未通过",
               logged_by="t", now=NOW)
    assert [type(e).__name__ for e in r.collect_events()] == ["RecognitionWithdrawn"]
    with pytest.raises(Conflict):
        r.withdraw(by_agency="education", by_lead=True, withdrawn_on=date(2025, 6, 21), reason="x", logged_by="t",
                   now=NOW)


@pytest.mark.parametrize(("kw", "error", "match"), [
    ({"kind": "gold-star"}, InvariantViolated, "not one of"),
    ({"level": "galactic"}, InvariantViolated, "level"),
    ({"awarded_on": date(2025, 7, 1)}, InvariantViolated, "future"),
    ({"school_applies": False}, InvariantViolated, "lacks the facility"),
    ({"by_lead": False}, NotPermitted, "lead"),
])
def test_recognition_rules(kw: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _award(**kw)


def _record(**kw: object) -> ComplianceRecord:
    args: dict[str, object] = dict(
        record_id=uuid.uuid4(), agency="education", may_log=True, school_id="S1", school_applies=True,
        kind="national-security-education", period="2024-2025", period_start=date(2024, 9, 1),
        occurred_on=date(2025, 5, 10), evidence=[], evidence_required=False, measure=2.0,
        measure_bounds=("class_hours", 2.0, 200.0), note="", logged_by="t", request_digest="d", now=NOW)
    args.update(kw)
    return ComplianceRecord.log(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "error", "match"), [
    ({"may_log": False}, NotPermitted, "does not log"),
    ({"school_applies": False}, InvariantViolated, "does not owe"),
    ({"occurred_on": date(2025, 7, 2)}, InvariantViolated, "future"),
    ({"period_start": date(2025, 12, 1)}, InvariantViolated, "three months"),
    ({"measure": 1.0}, InvariantViolated, "outside 2..200"),
    ({"measure": None}, InvariantViolated, "needs its measure"),
    ({"evidence_required": True}, InvariantViolated, "evidence"),
    ({"measure_bounds": None}, InvariantViolated, "carries no measure"),
    ({"note": "联系家长 13800138000"}, InvariantViolated, "phone or ID"),
    ({"evidence": ["has space"]}, InvariantViolated, "without spaces"),
])
def test_compliance_record_rules(kw: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _record(**kw)


def test_compliance_record_logged() -> None:
    (e,) = _record(evidence=["sha256:1", "sha256:1", "https://files/x.pdf"]).collect_events()
    data = event_payload(e)
    assert type(e).__name__ == "ComplianceRecordLogged"
    assert data["evidence"] == ["sha256:1", "https://files/x.pdf"]  # repeats dropped
    assert (data["kind"], data["period"], data["measure"]) == ("national-security-education", "2024-2025", 2.0)


def test_missing_record_has_a_deterministic_id_and_payload() -> None:
    def declare(now: datetime) -> ComplianceGap:
        return ComplianceGap.declare(responsible="education", school_id="S1", kind="dormitory-safety-check",
                                     period="2025-05", due_on=date(2025, 5, 31), grace_until=date(2025, 6, 10),
                                     opens_hazard=True, now=now)

    a, b = declare(NOW), declare(datetime(2025, 6, 20, tzinfo=UTC))
    assert a.id == b.id == compliance_gap_id("S1", "dormitory-safety-check", "2025-05")
    ea, eb = event_payload(a.collect_events()[0]), event_payload(b.collect_events()[0])
    assert ea == eb  # two instances build the same event; the store keeps one
    assert ea["missing_since"] == "2025-06-11" and ea["event_id"] == str(a.id)
    with pytest.raises(InvariantViolated, match="grace"):
        declare(datetime(2025, 6, 10, 4, tzinfo=UTC))


def _petition(**kw: object) -> Petition:
    args: dict[str, object] = dict(
        agency="petitions", may_receive=True, reference="XF2025-0001", channel="letter", topic="canteen",
        school_id="S1", school_exists=True, summary="反映食堂饭菜价格偏高", handling_unit="education",
        handling_unit_known=True, received_on=date(2025, 4, 1), logged_by="t", request_digest="d", now=NOW)
    args.update(kw)
    return Petition.receive(**args)  # type: ignore[arg-type]


def test_petition_lifecycle() -> None:
    p = _petition()
    assert event_payload(p.collect_events()[0])["due_on"] == "2025-05-31"  # 60 days
    with pytest.raises(InvariantViolated, match="answered before"):
        p.close(by_agency="petitions", by_lead=False, closed_on=date(2025, 6, 1), satisfaction="satisfied", note="",
                logged_by="t", now=NOW)
    with pytest.raises(NotPermitted):
        p.answer(by_agency="fire-rescue", by_lead=False, answered_on=date(2025, 6, 1), answer="x", logged_by="t",
                 now=NOW)
    p.answer(by_agency="education", by_lead=False, answered_on=date(2025, 6, 5), answer="已核查并整改", logged_by="t",
             now=NOW)
    with pytest.raises(Conflict):
        p.answer(by_agency="education", by_lead=False, answered_on=date(2025, 6, 6), answer="x", logged_by="t",
                 now=NOW)
    p.close(by_agency="petitions", by_lead=False, closed_on=date(2025, 6, 8), satisfaction="basically-satisfied",
            note="", logged_by="t", now=NOW)
    answered, closed = (event_payload(e) for e in p.collect_events())
    assert answered["on_time"] is False  # answered after the 60-day due date
    assert closed["satisfaction"] == "basically-satisfied"
    with pytest.raises(Conflict):
        p.close(by_agency="petitions", by_lead=False, closed_on=date(2025, 6, 9), satisfaction="satisfied", note="",
                logged_by="t", now=NOW)


@pytest.mark.parametrize(("kw", "error", "match"), [
    ({"may_receive": False}, NotPermitted, "does not register"),
    ({"reference": "张三 的信"}, InvariantViolated, "reference"),
    ({"summary": "身份证号 110101199003071234 反映问题"}, InvariantViolated, "phone or ID"),
    ({"topic": "weather"}, InvariantViolated, "topic"),
    ({"handling_unit_known": False}, InvariantViolated, "unknown member unit"),
    ({"school_exists": False}, InvariantViolated, "unknown school"),
])
def test_petition_rules(kw: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _petition(**kw)


def test_personal_data_guard_allows_ordinary_numbers() -> None:
    check_no_personal_data("2025年第3季度检测报告编号 20250701", "note")
    with pytest.raises(InvariantViolated):
        check_no_personal_data("电话13800138000", "note")
