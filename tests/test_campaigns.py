"""Campaigns (专项整治): launch from a template, self-checks and joint inspections whose problems
become hazards, the progress read model, phase reminders exactly once, and the API's refusals."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from contracts.catalogue import default_catalogue
from events.campaigns import Campaign, JointInspection, SelfCheck, campaign_id
from events.errors import Conflict, InvariantViolated, NotPermitted
from projections.campaign_progress import campaign_status, list_reminders, progress_matrix
from projections.rectification_board import get_item
from services.kernel.principal import Principal
from services.platform import Platform
from services.scheduler import LianxiScheduler
from tests.conftest import Api, Clock, register_schools

LAUNCH = datetime(2025, 3, 22, 1, 0, tzinfo=UTC)
FIRE = next(c for c in default_catalogue().campaigns.campaigns if c.code == "fire-safety")
ASPECTS = [a.code for a in FIRE.aspects]
LEAD = Principal("t-lead", "education", "lead", "desk")
EDU = Principal("t-edu", "education", "liaison", "desk")
PS = Principal("t-ps", "public-security", "liaison", "desk")
FR = Principal("t-fr", "fire-rescue", "liaison", "desk")


def at(day: str, hour: int = 2) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def launched(schools: tuple[str, ...] = ("S1", "S2")) -> Campaign:
    c = Campaign.launch(lead="education", is_lead=True, year=2025, template=FIRE, school_ids=list(schools),
                        school_exists=lambda s: True, now=LAUNCH)
    c.collect_events()
    return c


def passing(**problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"aspect": a, "passed": a not in problems, "problems": problems.get(a, [])} for a in ASPECTS]


def test_launch_takes_phases_and_aspects_from_the_template() -> None:
    c = Campaign.launch(lead="education", is_lead=True, year=2025, template=FIRE, school_ids=["S1", "S1", "S2"],
                        school_exists=lambda s: True, now=LAUNCH)
    [e] = c.collect_events()
    assert c.id == campaign_id(2025, "fire-safety")
    assert [(p["code"], p["starts"], p["deadline"]) for p in e.phases] == [  # type: ignore[attr-defined]
        ("self-check", "2025-03-22", "2025-03-31"), ("inspection", "2025-04-01", "2025-10-31"),
        ("evaluation", "2025-11-01", "2025-12-31")]
    assert e.school_ids == ["S1", "S2"] and len(e.aspects) == 5  # type: ignore[attr-defined]
    with pytest.raises(NotPermitted):
        Campaign.launch(lead="public-security", is_lead=False, year=2025, template=FIRE, school_ids=["S1"],
                        school_exists=lambda s: True, now=LAUNCH)
    with pytest.raises(InvariantViolated, match="unknown school"):
        Campaign.launch(lead="education", is_lead=True, year=2025, template=FIRE, school_ids=["S9"],
                        school_exists=lambda s: False, now=LAUNCH)


def test_self_check_rules() -> None:
    c = launched()
    now = at("2025-03-25")

    def submit(**over: Any) -> SelfCheck:
        kwargs: dict[str, Any] = dict(campaign=c, by_agency="education", acts_for_schools=True, school_id="S1",
                                      occurred_on=date(2025, 3, 25), results=passing(), logged_by="x", now=now)
        kwargs.update(over)
        return SelfCheck.submit(**kwargs)

    with pytest.raises(NotPermitted):
        submit(by_agency="public-security", acts_for_schools=False)
    with pytest.raises(InvariantViolated, match="not in the campaign's scope"):
        submit(school_id="S9")
    with pytest.raises(InvariantViolated, match="missing"):
        submit(results=passing()[:4])
    with pytest.raises(InvariantViolated, match="passed aspect lists no problems"):
        submit(results=[{"aspect": ASPECTS[0], "passed": False, "problems": []}, *passing()[1:]])
    with pytest.raises(InvariantViolated, match="before the campaign"):
        submit(occurred_on=date(2025, 3, 1))
    check = submit(results=passing(**{ASPECTS[4]: [{"description": "私拉电线", "severity": "major"}]}))
    [(aspect, problem)] = check.problems()
    assert aspect == ASPECTS[4] and problem["severity"] == "major"
    again = submit(results=passing(**{ASPECTS[4]: [{"description": "私拉电线", "severity": "major"}]}))
    assert (again.id, again.problems()[0][1]["hazard_id"]) == (check.id, problem["hazard_id"])


def test_joint_inspection_rules() -> None:
    c = launched()
    units = ["education", "public-security", "fire-rescue"]

    def conduct(**over: Any) -> JointInspection:
        kwargs: dict[str, Any] = dict(
            inspection_id=uuid.uuid4(), campaign=c, by_agency="public-security", units=["fire-rescue"],
            school_ids=["S1"], occurred_on=date(2025, 4, 10), summary="督查", findings=[], known_units=units,
            lead="education", logged_by="x", now=at("2025-04-10"))
        kwargs.update(over)
        return JointInspection.conduct(**kwargs)

    with pytest.raises(InvariantViolated, match="at least two units"):
        conduct(units=["public-security"])
    with pytest.raises(InvariantViolated, match="not inspected"):
        conduct(findings=[{"school_id": "S2", "aspect": ASPECTS[0], "description": "d"}])
    ji = conduct(findings=[{"school_id": "S1", "aspect": ASPECTS[0], "description": "责任书未签"},
                           {"school_id": "S1", "aspect": ASPECTS[1], "description": "未培训",
                            "responsible_unit": "education", "deadline": date(2025, 4, 20)}])
    [e] = ji.collect_events()
    f1, f2 = e.findings  # type: ignore[attr-defined]
    # Fire findings go to the fire brigade, which took part; 30 days unless the inspectors set a deadline.
    assert (f1["responsible_unit"], f1["deadline"]) == ("fire-rescue", "2025-05-10")
    assert (f2["responsible_unit"], f2["deadline"]) == ("education", "2025-04-20")
    assert e.phase == "inspection" and e.units == ["public-security", "fire-rescue"]  # type: ignore[attr-defined]
    [late] = conduct(occurred_on=date(2025, 11, 5), now=at("2025-11-05")).collect_events()
    assert late.phase == "evaluation"  # type: ignore[attr-defined]


@pytest.fixture
def county(platform: Platform, clock: Clock) -> Platform:
    from events.schools import School

    for i in range(1, 4):
        platform.app.save(School.register(
            by_agency="education", by_lead=True, school_id=f"T{i:03d}", name=f"学校{i}", town="满都拉图镇",
            kind="primary", boarding=False, canteen=True, school_bus=False, now=LAUNCH - timedelta(days=30)))
    clock.now = LAUNCH
    return platform


def test_problems_and_findings_become_hazards_and_progress_is_tracked(county: Platform, clock: Clock) -> None:
    app = county.app
    cid = uuid.UUID(app.launch_campaign(LEAD, year=2025, template="fire-safety", school_ids=["T001", "T002", "T003"],
                                        now=LAUNCH).id)
    clock.now = at("2025-03-28")
    w = app.submit_self_check(EDU, cid, school_id="T001", occurred_on=date(2025, 3, 28), now=clock.now,
                              results=passing(**{ASPECTS[0]: [{"description": "责任书未签", "severity": "critical"}]}))
    [hazard] = w.related
    with pytest.raises(Conflict):
        app.submit_self_check(EDU, cid, school_id="T001", occurred_on=date(2025, 3, 28), results=passing(),
                              now=clock.now)
    clock.now = at("2025-04-03")  # after the deadline: late
    app.submit_self_check(EDU, cid, school_id="T002", occurred_on=date(2025, 4, 3), results=passing(), now=clock.now)
    clock.now = at("2025-04-10")
    ji = app.conduct_joint_inspection(
        PS, cid, units=["fire-rescue"], school_ids=["T001", "T002"], occurred_on=date(2025, 4, 10), summary="联合督查",
        findings=[{"school_id": "T002", "aspect": ASPECTS[4], "description": "私拉电线", "severity": "major"}],
        idempotency_key="insp-1", now=clock.now)
    [finding_hazard] = ji.related
    county.runner.catch_up()
    with county.read_engine.connect() as conn:
        h1 = get_item(conn, hazard, date(2025, 4, 10))
        h2 = get_item(conn, finding_hazard, date(2025, 4, 10))
        status = campaign_status(conn, str(cid), date(2025, 4, 10))
        matrix = progress_matrix(conn, str(cid))
    assert h1 is not None and h2 is not None
    assert (h1["reported_by_kind"], h1["category"], h1["severity"], h1["status"]) == (
        "self-check", "fire", "critical", "reported")
    # reported by the inspecting units, the inspectors' proposal in the text; the lead assigns
    assert (h2["reported_by_kind"], h2["status"], h2["lead_unit"]) == ("joint-inspection", "reported", None)
    assert "建议整改时限：2025-05-10" in h2["description"]
    assert h2["reported_units"] == ["public-security", "fire-rescue"]
    assert status is not None
    self_phase, inspection, _ = status["phase_status"]
    assert (self_phase["on_time"], self_phase["late"], self_phase["missed_schools"]) == (1, 1, ["T003"])
    assert [s["school_id"] for s in self_phase["late_schools"]] == ["T002"]
    assert self_phase["problems_by_aspect"][ASPECTS[0]] == 1
    assert (inspection["state"], inspection["on_time"], inspection["pending"]) == ("open", 2, 1)
    assert inspection["problems_by_aspect"][ASPECTS[4]] == 1
    cell = next(m for m in matrix if (m["phase"], m["school_id"], m["aspect"]) == ("inspection", "T002", ASPECTS[4]))
    assert cell["status"] == "problems" and cell["event_id"] == ji.id
    assert sum(1 for m in matrix if m["phase"] == "self-check") == 10  # two schools x five aspects


def test_phase_reminders_are_issued_once(county: Platform, clock: Clock) -> None:
    app = county.app
    cid = app.launch_campaign(LEAD, year=2025, template="fire-safety", school_ids=["T001", "T002"], now=LAUNCH).id
    clock.now = at("2025-03-26")
    app.submit_self_check(EDU, uuid.UUID(cid), school_id="T001", occurred_on=date(2025, 3, 26), results=passing(),
                          now=clock.now)
    one, two = LianxiScheduler(county, clock=clock), LianxiScheduler(county, clock=clock)
    assert one.run_job("campaign-reminders")["issued"] == 1  # due-soon: T002 has not submitted
    assert two.run_job("campaign-reminders")["issued"] == 0
    clock.now = at("2025-04-02")
    assert two.run_job("campaign-reminders")["issued"] == 1  # missed
    assert one.run_job("campaign-reminders")["issued"] == 0
    county.runner.catch_up()
    with county.read_engine.connect() as conn:
        rows = list_reminders(conn, cid)
    assert [(r["phase"], r["kind"], r["school_count"]) for r in rows] == [
        ("self-check", "due-soon", 1), ("self-check", "missed", 1)]


# -- API ------------------------------------------------------------------------------------


@pytest.fixture
def campaign(api: Api, clock: Clock) -> dict[str, str]:
    clock.now = LAUNCH
    register_schools(api, 2)
    r = api.client.post("/api/v1/campaigns", json={"year": 2025, "template": "fire-safety"},
                        headers=api.as_("education", "lead"))
    assert r.status_code == 201, r.text
    clock.now = at("2025-03-28")
    return {"campaign": r.json()["id"]}


def test_campaign_api_flow(api: Api, campaign: dict[str, str]) -> None:
    cid = campaign["campaign"]
    r = api.client.post(f"/api/v1/campaigns/{cid}/self-checks", headers=api.as_("education"), json={
        "school_id": "T001", "occurred_on": "2025-03-28",
        "results": passing(**{ASPECTS[2]: [{"description": "制度不健全"}]})})
    assert r.status_code == 201, r.text
    assert len(r.json()["related"]) == 1
    r = api.client.post(f"/api/v1/campaigns/{cid}/joint-inspections", headers=api.as_("fire-rescue"), json={
        "units": ["education"], "school_ids": ["T001", "T002"], "occurred_on": "2025-03-28", "summary": "督查",
        "findings": [{"school_id": "T002", "aspect": ASPECTS[3], "description": "巡查记录缺失"}]})
    assert r.status_code == 201, r.text
    api.settle()
    detail = api.client.get(f"/api/v1/campaigns/{cid}", headers=api.as_("court")).json()
    assert detail["school_count"] == 2 and detail["phase_status"][0]["on_time"] == 1
    assert detail["current_phase"] == "self-check"
    overview = api.client.get("/api/v1/campaigns?year=2025", headers=api.as_("court")).json()
    assert [c["template"] for c in overview] == ["fire-safety"]
    assert api.client.get(f"/api/v1/campaigns/{uuid.uuid4()}", headers=api.as_("court")).status_code == 404
    [finding] = r.json()["related"]
    board = api.client.get("/api/v1/rectifications?unit=fire-rescue", headers=api.as_("court")).json()
    assert board["items"] == []  # not assigned by the inspection itself
    assigned = api.client.post(f"/api/v1/rectifications/{finding}/assignment", headers=api.as_("education", "lead"),
                               json={"lead_unit": "fire-rescue", "deadline": "2025-04-27", "measures": ["补齐巡查记录"],
                                     "funds": {"amount_cny": "0", "source": "自筹"}})
    assert assigned.status_code == 200, assigned.text
    api.settle()
    board = api.client.get("/api/v1/rectifications?unit=fire-rescue", headers=api.as_("court")).json()
    assert [i["description"].split("（")[0] for i in board["items"]] == [
        "【消防安全专项整治·联合督查】日常防火巡查检查落实不到位：巡查记录缺失"]


def test_campaign_writes_refuse_no_token_other_units_and_auditors(api: Api, campaign: dict[str, str]) -> None:
    cid = campaign["campaign"]
    launch = ("/api/v1/campaigns", {"year": 2025, "template": "food-safety"})
    check = (f"/api/v1/campaigns/{cid}/self-checks",
             {"school_id": "T002", "occurred_on": "2025-03-28", "results": passing()})
    inspect = (f"/api/v1/campaigns/{cid}/joint-inspections",
               {"units": ["education"], "school_ids": ["T001"], "occurred_on": "2025-03-28", "summary": "s"})
    for path, body in (launch, check, inspect):
        assert api.client.post(path, json=body).status_code == 401, path
        assert api.client.post(path, json=body, headers=api.as_("education", "auditor")).status_code == 403, path
    for path, body in (launch, check):  # the lead's launch; schools act through the lead bureau
        r = api.client.post(path, json=body, headers=api.as_("public-security"))
        assert r.status_code == 403, (path, r.text)
    r = api.client.post(launch[0], json={"year": 2025, "template": "no-such"}, headers=api.as_("education", "lead"))
    assert r.status_code == 422 and "unknown campaign template" in r.json()["detail"]
