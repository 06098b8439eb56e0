"""Early warnings: who may issue and acknowledge, the response read model (rate and latency per
school and unit), escalation after N hours per level exactly once, and the API's refusals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts.catalogue import CatalogueError
from contracts.escalation import default_warning_rules, load_warning_rules
from events.agencies import Agency
from events.errors import Conflict, InvariantViolated, NotPermitted
from events.warnings import EarlyWarning, WarningAcknowledgement
from projections.warning_response import response_by_recipient, warnings_between
from services.kernel.principal import Principal
from services.platform import Platform
from services.scheduler import LianxiScheduler
from tests.conftest import Api, Clock, register_schools

T0 = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)  # 10:00 in the county
MET = Principal("t-met", "meteorology", "liaison", "desk")
EDU = Principal("t-edu", "education", "liaison", "desk")
PS = Principal("t-ps", "public-security", "liaison", "desk")
RULES = default_warning_rules()


def agency(code: str, duty: str) -> Agency:
    a = Agency.register(code=code, name=code, name_en=code, lead=code == "education",
                        duties=[{"code": duty, "text": "t", "applies_to": "all"}],
                        effective_on=datetime(2000, 1, 1).date(), now=T0)
    a.collect_events()
    return a


def issue(by: Agency, **over: object) -> EarlyWarning:
    kwargs: dict[str, object] = dict(
        warning_id=uuid.uuid4(), agency=by, issuing_duties=RULES.issuing_duties, warning_type="rainstorm",
        level="orange", title="暴雨橙色预警", towns=["满都拉图镇"], valid_from=T0, valid_until=T0 + timedelta(hours=12),
        measures=["停止户外活动"], school_ids=["S1", "S2"], units=["education"],
        known_units=["education", "meteorology"], now=T0)
    kwargs.update(over)
    return EarlyWarning.issue(**kwargs)  # type: ignore[arg-type]


def test_only_a_unit_with_a_warning_duty_issues() -> None:
    w = issue(agency("meteorology", "meteorology.weather-warning"))
    [event] = w.collect_events()
    assert event.level == "orange" and event.school_ids == ["S1", "S2"]  # type: ignore[attr-defined]
    with pytest.raises(NotPermitted, match="no warning duty"):
        issue(agency("education", "education.lead-coordination"))
    met = agency("meteorology", "meteorology.weather-warning")
    with pytest.raises(InvariantViolated, match="level"):
        issue(met, level="purple")
    with pytest.raises(InvariantViolated, match="expired"):
        issue(met, valid_from=T0 - timedelta(hours=3), valid_until=T0 - timedelta(hours=1))
    with pytest.raises(InvariantViolated, match="unknown member unit"):
        issue(met, units=["nobody"])


def test_acknowledgement_rules() -> None:
    w = issue(agency("meteorology", "meteorology.weather-warning"))

    def ack(by: str, kind: str, who: str, schools: bool = False) -> WarningAcknowledgement:
        return WarningAcknowledgement.acknowledge(
            warning=w, by_agency=by, acts_for_schools=schools, recipient_kind=kind, recipient=who,
            measures_taken=["已停止户外活动"], note="", logged_by="x", now=T0 + timedelta(minutes=30))

    with pytest.raises(NotPermitted, match="only for itself"):
        ack("public-security", "unit", "education")
    with pytest.raises(NotPermitted, match="lead bureau"):
        ack("public-security", "school", "S1")
    with pytest.raises(InvariantViolated, match="not a recipient"):
        ack("education", "school", "S9", schools=True)
    a = ack("education", "school", "S1", schools=True)
    assert a.id == ack("education", "school", "S1", schools=True).id  # one id per (warning, recipient)


def test_escalation_is_taken_once_per_warning() -> None:
    w = issue(agency("meteorology", "meteorology.weather-warning"))
    w.escalate(lead="education", unacknowledged_schools=["S2"], unacknowledged_units=[], now=T0 + timedelta(hours=5))
    with pytest.raises(Conflict):
        w.escalate(lead="education", unacknowledged_schools=["S2"], unacknowledged_units=[],
                   now=T0 + timedelta(hours=6))


def test_rules_file_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "w.yaml"
    bad.write_text("version: 1\nissuing_duties: [x.y]\nlevels:\n  blue: {name: 蓝, escalate_after_hours: 1, "
                   "slow_after_hours: 1}\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="levels must be exactly"):
        load_warning_rules(bad)
    assert RULES.escalate_after("red") < RULES.escalate_after("blue")


@pytest.fixture
def county(platform: Platform, clock: Clock) -> Platform:
    from events.schools import School

    for i, town in enumerate(("满都拉图镇", "满都拉图镇", "查干敖包镇"), 1):
        platform.app.save(School.register(
            by_agency="education", by_lead=True, school_id=f"T{i:03d}", name=f"学校{i}", town=town,
            kind="primary", boarding=False, canteen=True, school_bus=False, now=T0 - timedelta(days=30)))
    clock.now = T0
    return platform


def test_response_figures_and_escalation_exactly_once(county: Platform, clock: Clock) -> None:
    app = county.app
    w = app.issue_warning(MET, warning_type="rainstorm", level="orange", title="暴雨橙色预警", towns=["满都拉图镇"],
                          valid_from=T0, valid_until=T0 + timedelta(hours=12), measures=["停止户外活动"],
                          units=["education", "public-security"], school_ids=["T001", "T002"],
                          idempotency_key="w-1", now=T0)
    wid = uuid.UUID(w.id)
    app.acknowledge_warning(EDU, wid, recipient_kind="school", recipient="T001", measures_taken=["停课"], note="",
                            now=T0 + timedelta(minutes=30))
    app.acknowledge_warning(PS, wid, recipient_kind="unit", recipient=None, measures_taken=["加强巡逻"], note="",
                            now=T0 + timedelta(hours=3))  # slow: orange allows 2 hours
    with pytest.raises(Conflict):
        app.acknowledge_warning(PS, wid, recipient_kind="unit", recipient=None, measures_taken=["再次"], note="",
                                now=T0 + timedelta(hours=3))
    one, two = LianxiScheduler(county, clock=clock), LianxiScheduler(county, clock=clock)
    clock.now = T0 + timedelta(hours=3, minutes=59)  # orange escalates after 4 hours
    assert one.run_job("warning-escalation")["escalated"] == 0
    clock.now = T0 + timedelta(hours=4, minutes=1)
    assert one.run_job("warning-escalation")["escalated"] == 1
    assert two.run_job("warning-escalation")["escalated"] == 0
    assert app.escalate_warning(wid, schools=["T002"], units=[], now=clock.now) is False
    county.runner.catch_up()
    with county.read_engine.connect() as conn:
        [row] = warnings_between(conn, "2025-06-01", "2025-06-30")
        schools = {r["recipient"]: r for r in response_by_recipient(conn, "school", "2025-06-01", "2025-06-30")}
        units = {r["recipient"]: r for r in response_by_recipient(conn, "unit", "2025-06-01", "2025-06-30")}
    assert row["recipients"] == 4 and row["acknowledged"] == 2 and row["rate"] == 0.5 and row["escalated"]
    assert row["unacknowledged"] == [{"kind": "school", "recipient": "T002"},
                                     {"kind": "unit", "recipient": "education"}]
    assert [s["recipient"] for s in row["slow"]] == ["public-security"]
    assert schools["T001"]["rate"] == 1.0 and schools["T001"]["median_latency_minutes"] == 30.0
    assert schools["T002"]["acknowledged"] == 0 and schools["T002"]["rate"] == 0.0
    assert units["public-security"]["median_latency_minutes"] == 180.0 and units["public-security"]["slow"] == 1
    stored = list(app.events.get(wid))
    [esc] = [e for e in stored if type(e).__name__ == "WarningEscalated"]
    assert esc.unacknowledged_schools == ["T002"] and esc.unacknowledged_units == ["education"]


def test_escalation_hours_come_from_the_rules(county: Platform, clock: Clock) -> None:
    app = county.app
    app.warning_rules = RULES.model_copy(update={"levels": {**RULES.levels, "blue": RULES.levels["blue"].model_copy(
        update={"escalate_after_hours": 0.5})}})
    app.issue_warning(MET, warning_type="cold", level="blue", title="寒潮蓝色预警", towns=["查干敖包镇"],
                      valid_from=T0, valid_until=T0 + timedelta(hours=24), measures=["保暖"], units=[],
                      school_ids=["T003"], idempotency_key=None, now=T0)
    clock.now = T0 + timedelta(minutes=31)
    assert LianxiScheduler(county, clock=clock).run_job("warning-escalation")["escalated"] == 1


# -- API ------------------------------------------------------------------------------------


@pytest.fixture
def warned(api: Api, clock: Clock) -> dict[str, str]:
    clock.now = T0 - timedelta(days=1)
    register_schools(api, 2)
    clock.now = T0
    r = api.client.post("/api/v1/warnings", headers=api.as_("meteorology"), json={
        "warning_type": "heavy-pollution", "level": "yellow", "title": "重污染天气黄色预警", "towns": ["满都拉图镇"],
        "valid_from": "2025-06-01T10:00:00+08:00", "valid_until": "2025-06-02T10:00:00+08:00",
        "measures": ["减少或停止户外活动"]})
    assert r.status_code == 201, r.text
    return {"warning": r.json()["id"]}


def test_warning_api_issue_acknowledge_and_read(api: Api, warned: dict[str, str], clock: Clock) -> None:
    wid = warned["warning"]
    clock.now = T0 + timedelta(hours=1)
    r = api.client.post(f"/api/v1/warnings/{wid}/acknowledgements", headers=api.as_("education"),
                        json={"recipient_kind": "school", "school_id": "T001", "measures_taken": ["停止户外活动"]})
    assert r.status_code == 201, r.text
    r = api.client.post(f"/api/v1/warnings/{wid}/acknowledgements", headers=api.as_("education"),
                        json={"measures_taken": ["已部署"]})
    assert r.status_code == 201, r.text
    r = api.client.post(f"/api/v1/warnings/{wid}/acknowledgements", headers=api.as_("education"),
                        json={"measures_taken": ["again"]})
    assert r.status_code == 409
    api.settle()
    detail = api.client.get(f"/api/v1/warnings/{wid}", headers=api.as_("court")).json()
    assert detail["recipients"] == 3 and detail["acknowledged"] == 2  # T001, T002 and the education bureau
    figures = api.client.get("/api/v1/warning-response?kind=unit&from=2025-06-01",
                             headers=api.as_("education", "lead")).json()
    assert figures == [{"recipient": "education", "received": 1, "acknowledged": 1, "slow": 0, "rate": 1.0,
                        "median_latency_minutes": 60.0, "max_latency_minutes": 60.0}]
    assert api.client.get("/api/v1/warning-response?kind=school", headers=api.as_("court")).status_code == 403


def test_warning_writes_refuse_no_token_other_units_and_auditors(api: Api, warned: dict[str, str]) -> None:
    body = {"warning_type": "gale", "level": "blue", "title": "大风蓝色预警", "towns": ["满都拉图镇"],
            "valid_from": "2025-06-01T10:00:00+08:00", "valid_until": "2025-06-02T10:00:00+08:00",
            "measures": ["加固设施"]}
    assert api.client.post("/api/v1/warnings", json=body).status_code == 401
    assert api.client.post("/api/v1/warnings", json=body, headers=api.as_("education")).status_code == 403
    assert api.client.post("/api/v1/warnings", json=body,
                           headers=api.as_("meteorology", "auditor")).status_code == 403
    path = f"/api/v1/warnings/{warned['warning']}/acknowledgements"
    school_ack = {"recipient_kind": "school", "school_id": "T001", "measures_taken": ["x"]}
    assert api.client.post(path, json=school_ack).status_code == 401
    assert api.client.post(path, json=school_ack, headers=api.as_("public-security")).status_code == 403
    assert api.client.post(path, json=school_ack, headers=api.as_("education", "auditor")).status_code == 403
    r = api.client.post(path, json={"measures_taken": ["x"]}, headers=api.as_("court"))
    assert r.status_code == 422 and "not a recipient" in r.json()["detail"]
    bad = {**body, "valid_from": "2025-06-01T10:00:00"}  # no offset
    assert api.client.post("/api/v1/warnings", json=bad, headers=api.as_("meteorology")).status_code == 422
