"""Joint meetings and tasks: domain rules, the agenda assembled from a hand-built log, the
draft-agenda and task-overdue jobs (exactly once), and the API with other units' tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from contracts.escalation import default_escalation_rules
from events.base import derive_id
from events.errors import Conflict, InvariantViolated, NotPermitted
from events.meetings import Meeting, Task, meeting_id
from projections.meetings import assemble_agenda, list_tasks
from services.kernel.principal import Principal
from services.platform import Platform
from services.scheduler import JOBS, LianxiScheduler
from tests.conftest import Api, Clock, register_schools

NOW = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)
UNITS = ["education", "public-security", "urban-management", "fire-rescue", "meteorology"]
LEAD = Principal("t-lead", "education", "lead", "desk")
EDU = Principal("t-edu", "education", "liaison", "desk")
PS = Principal("t-ps", "public-security", "liaison", "desk")
FIRE = Principal("t-fire", "fire-rescue", "liaison", "desk")
MET = Principal("t-met", "meteorology", "liaison", "desk")


def at(day: str, hour: int = 2) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


# -- domain --------------------------------------------------------------------------------


def given_meeting(held: bool = False) -> Meeting:
    m = Meeting.schedule(lead="education", is_lead=True, year=2025, number=2, next_number=2, title="第二次会议",
                         scheduled_for=date(2025, 7, 10), place="", now=NOW)
    if held:
        m.hold(lead="education", is_lead=True, held_on=date(2025, 7, 10), attendance=["education"], absent=[],
               minutes="纪要", known_units=UNITS, now=at("2025-07-10"))
    m.collect_events()
    return m


def test_only_the_lead_convenes_and_a_meeting_id_derives_from_year_and_number() -> None:
    with pytest.raises(NotPermitted):
        Meeting.schedule(lead="public-security", is_lead=False, year=2025, number=1, next_number=1, title="x",
                         scheduled_for=date(2025, 7, 1), place="", now=NOW)
    m = given_meeting()
    assert m.id == meeting_id(2025, 2)
    with pytest.raises(InvariantViolated, match="in the past"):
        Meeting.schedule(lead="education", is_lead=True, year=2025, number=3, next_number=3, title="x",
                         scheduled_for=date(2025, 6, 1), place="", now=NOW)


def test_meeting_lifecycle_rules() -> None:
    m = given_meeting()
    item = m.propose_item(unit="public-security", title="周边交通", detail="", related_event_ids=[], now=NOW)
    with pytest.raises(InvariantViolated, match="held meeting"):
        m.adopt_resolution(lead="education", is_lead=True, text="决议", agenda_item_ids=[], tasks=[],
                           known_units=UNITS, now=NOW)
    with pytest.raises(InvariantViolated, match="future"):
        m.hold(lead="education", is_lead=True, held_on=date(2025, 7, 10), attendance=["education"], absent=[],
               minutes="纪要", known_units=UNITS, now=NOW)
    with pytest.raises(InvariantViolated, match="lead unit must attend"):
        m.hold(lead="education", is_lead=True, held_on=date(2025, 6, 30), attendance=["fire-rescue"],
               absent=[], minutes="纪要", known_units=UNITS, now=NOW)
    m.hold(lead="education", is_lead=True, held_on=date(2025, 6, 30), attendance=["education", "fire-rescue"],
           absent=["meteorology"], minutes="纪要", known_units=UNITS, now=NOW)
    with pytest.raises(Conflict):
        m.hold(lead="education", is_lead=True, held_on=date(2025, 6, 30), attendance=["education"], absent=[],
               minutes="纪要", known_units=UNITS, now=NOW)
    with pytest.raises(InvariantViolated, match="already held"):
        m.propose_item(unit="public-security", title="晚到", detail="", related_event_ids=[], now=NOW)
    with pytest.raises(InvariantViolated, match="deadline must be after"):
        m.adopt_resolution(lead="education", is_lead=True, text="决议", agenda_item_ids=[item],
                           tasks=[{"unit": "public-security", "description": "x", "deadline": date(2025, 6, 30)}],
                           known_units=UNITS, now=NOW)
    rid, specs = m.adopt_resolution(
        lead="education", is_lead=True, text="决议", agenda_item_ids=[item],
        tasks=[{"unit": "public-security", "cooperating_units": ["urban-management"], "description": "护学岗",
                "deadline": date(2025, 7, 30)}], known_units=UNITS, now=NOW)
    assert [s["unit"] for s in specs] == ["public-security"]
    events = m.collect_events()
    assert [type(e).__name__ for e in events] == ["AgendaItemProposed", "MeetingHeld", "ResolutionAdopted"]
    assert events[-1].tasks == specs and events[-1].resolution_id == rid  # type: ignore[attr-defined]


def given_task(deadline: str = "2025-07-30") -> Task:
    t = Task.assign(spec={"task_id": str(uuid.uuid4()), "unit": "public-security",
                          "cooperating_units": ["urban-management"], "description": "护学岗", "deadline": deadline},
                    meeting_id="m", resolution_id="r", lead="education", now=NOW)
    t.collect_events()
    return t


def test_task_lifecycle_invariants() -> None:
    t = given_task()
    with pytest.raises(NotPermitted):
        t.report_progress(unit="fire-rescue", note="n", percent=10, occurred_on=date(2025, 6, 30), now=NOW)
    t.report_progress(unit="urban-management", note="协助中", percent=20, occurred_on=date(2025, 6, 30), now=NOW)
    with pytest.raises(NotPermitted):  # cooperating units report progress, only the responsible unit completes
        t.complete(unit="urban-management", summary="s", evidence=[], occurred_on=date(2025, 6, 30), now=NOW)
    with pytest.raises(InvariantViolated, match="after completion"):
        t.verify(lead="education", is_lead=True, note="", now=NOW)
    t.complete(unit="public-security", summary="已完成", evidence=[], occurred_on=date(2025, 6, 30), now=NOW)
    with pytest.raises(NotPermitted):
        t.verify(lead="public-security", is_lead=False, note="", now=NOW)
    t.reject(lead="education", is_lead=True, reason="材料不全", new_deadline=date(2025, 7, 15), now=NOW)
    assert t.status == "reopened" and t.deadline == "2025-07-15"
    t.extend(lead="education", is_lead=True, reason="协调", new_deadline=date(2025, 7, 20), max_extensions=1,
             now=NOW)
    with pytest.raises(InvariantViolated, match="maximum"):
        t.extend(lead="education", is_lead=True, reason="再延", new_deadline=date(2025, 7, 25), max_extensions=1,
                 now=NOW)


def test_task_sweep_takes_each_step_once_per_deadline() -> None:
    steps = default_escalation_rules().domain_steps()
    t = given_task(deadline="2025-06-10")
    assert t.sweep(steps=steps, now=at("2025-06-10"), rules_version=1) == 0  # due today, not late
    assert t.sweep(steps=steps, now=at("2025-06-12"), rules_version=1) == 2  # overdue + 督办
    assert t.sweep(steps=steps, now=at("2025-06-13"), rules_version=1) == 0
    assert t.sweep(steps=steps, now=at("2025-07-20"), rules_version=1) == 2  # 通报 + 纳入考核 caught up
    events = t.collect_events()
    assert [type(e).__name__ for e in events] == ["TaskOverdue", "TaskEscalated", "TaskEscalated", "TaskEscalated"]
    assert [getattr(e, "level", 0) for e in events] == [0, 1, 2, 3]
    # Ids derive from (task, deadline, level): a second instance deciding the same step makes the same id.
    assert [e.event_id for e in events] == [  # type: ignore[attr-defined]
        str(derive_id("task-step", str(t.id), "2025-06-10", str(level))) for level in range(4)]


# -- the agenda from a hand-built log --------------------------------------------------------


@pytest.fixture
def county(sqlite_platform: Platform, clock: Clock) -> Platform:
    from events.schools import School

    clock.now = at("2025-01-02")
    for i in range(1, 4):
        sqlite_platform.app.save(School.register(
            by_agency="education", by_lead=True, school_id=f"T{i:03d}", name=f"学校{i}", town="满都拉图镇",
            kind="primary", boarding=False, canteen=True, school_bus=False, now=clock.now))
    return sqlite_platform


def _sweep(p: Platform, clock: Clock) -> dict[str, Any]:
    """Every job once, but the brief pre-render (real PDFs, seconds each; tests/test_brief_cache.py)."""
    scheduler = LianxiScheduler(p, clock=clock)
    return {name: scheduler.run_job(name, clock.now) for name in JOBS if name != "brief-prerender"}


def test_the_agenda_is_assembled_from_the_log_since_the_previous_meeting(county: Platform, clock: Clock) -> None:
    app = county.app
    # Meeting 1, held 2025-03-20, adopts a resolution with two tasks.
    clock.now = at("2025-03-01")
    app.schedule_meeting(LEAD, number=1, title="第一次会议", scheduled_for=date(2025, 3, 20), place="", now=clock.now)
    m1 = meeting_id(2025, 1)
    clock.now = at("2025-03-20")
    app.hold_meeting(LEAD, m1, held_on=date(2025, 3, 20), attendance=["education", "public-security"],
                     absent=[], minutes="纪要", now=clock.now)
    res = app.adopt_resolution(LEAD, m1, text="整治周边交通", agenda_item_ids=[], tasks=[
        {"unit": "public-security", "description": "设置护学岗", "deadline": date(2025, 4, 20)},
        {"unit": "fire-rescue", "description": "消防检查", "deadline": date(2025, 4, 30)},
    ], now=clock.now)
    late_task, done_task = (uuid.UUID(t) for t in res.related)
    clock.now = at("2025-04-25")
    app.complete_task(FIRE, done_task, summary="已完成", evidence=[], occurred_on=None, now=clock.now)
    # A hazard found by fire-rescue, assigned with a deadline it misses; a 重大 hazard left open.
    clock.now = at("2025-04-01")
    hz = app.report_hazard(FIRE, kind="unit", units=[], school_id="T001", category="fire", severity="major",
                           description="灭火器过期", found_on=date(2025, 4, 1), idempotency_key=None, body={},
                           now=clock.now)
    app.assign_rectification(LEAD, uuid.UUID(hz.id), lead_unit="fire-rescue", cooperating_units=[],
                             deadline=date(2025, 5, 1), measures=["更换"], funds={"amount_cny": "0", "source": "自筹"},
                             now=clock.now)
    big = app.report_hazard(PS, kind="unit", units=[], school_id="T002", category="surroundings",
                            severity="critical", description="校门口违建", found_on=date(2025, 4, 1),
                            idempotency_key=None, body={}, now=clock.now)
    # A campaign whose self-check phase two schools missed.
    clock.now = at("2025-03-22")
    camp = app.launch_campaign(LEAD, year=2025, template="fire-safety", school_ids=["T001", "T002", "T003"],
                               now=clock.now)
    cid = uuid.UUID(camp.id)
    aspects = app.campaign(cid).aspects
    clock.now = at("2025-03-25")
    app.submit_self_check(EDU, cid, school_id="T001", occurred_on=date(2025, 3, 25),
                          results=[{"aspect": a, "passed": True} for a in aspects], now=clock.now)
    # A warning the education bureau never acknowledged; one school acknowledged late.
    clock.now = at("2025-05-10")
    w = app.issue_warning(MET, warning_type="rainstorm", level="orange", title="暴雨橙色预警", towns=["满都拉图镇"],
                          valid_from=clock.now, valid_until=clock.now + timedelta(hours=12), measures=["停止户外活动"],
                          units=None, school_ids=["T001"], idempotency_key=None, now=clock.now)
    clock.now = at("2025-05-10", 7)  # 5 hours later: slow for orange (2 h)
    app.acknowledge_warning(EDU, uuid.UUID(w.id), recipient_kind="school", recipient="T001",
                            measures_taken=["已停止户外活动"], note="", now=clock.now)
    # Meeting 2 on 2025-06-20 with a proposal; the scheduler sweeps on 2025-06-01.
    clock.now = at("2025-06-01")
    app.schedule_meeting(LEAD, number=2, title="第二次会议", scheduled_for=date(2025, 6, 20), place="", now=clock.now)
    m2 = meeting_id(2025, 2)
    item = app.propose_agenda_item(PS, m2, title="周边交通", detail="高峰拥堵", related_event_ids=[hz.id],
                                   now=clock.now)
    _sweep(county, clock)
    county.runner.catch_up()

    with county.read_engine.connect() as conn:
        agenda = assemble_agenda(conn, str(m2), date(2025, 6, 10))
    assert agenda is not None
    assert (agenda["period_start"], agenda["period_end"], agenda["as_of"]) == ("2025-03-21", "2025-06-20",
                                                                               "2025-06-10")
    [group] = agenda["overdue_rectifications"]
    assert group["unit"] == "fire-rescue" and group["count"] == 1 and group["escalated"] == 1
    [it] = group["items"]
    # Swept on 06-01 (31 days late): overdue, 督办, 通报 and 纳入考核; 40 days late as of the agenda.
    assert it["id"] == hz.id and it["days_overdue"] == 40 and it["escalation_name"] == "纳入考核"
    assert it["event_ids"][0] == hz.id and len(it["event_ids"]) == 5
    assert [h["id"] for h in agenda["critical_hazards"]] == [big.id]
    [c] = agenda["campaigns"]
    self_phase = c["phases"][0]
    assert self_phase["missed_schools"] == ["T002", "T003"] and self_phase["on_time"] == 1
    assert c["behind_schools"] == ["T002", "T003"] and c["current_phase"] == "inspection"
    [warn] = agenda["warnings"]
    assert warn["unacknowledged"] == [{"kind": "unit", "recipient": "education"}]
    assert [s["recipient"] for s in warn["slow"]] == ["T001"] and warn["escalated"]
    fu = agenda["follow_up"]
    assert fu["total"] == 2 and fu["overdue"] == 1 and fu["completed"] == 1 and fu["completed_on_time"] == 1
    overdue_task = next(t for t in fu["items"] if t["overdue"])
    assert overdue_task["task_id"] == str(late_task) and overdue_task["days_overdue"] == 51
    assert overdue_task["escalation_name"] == "纳入考核" and len(overdue_task["event_ids"]) == 5
    assert [(p["item_id"], p["proposed_by"], p["related_event_ids"]) for p in agenda["proposals"]] == [
        (item.event_id, "public-security", [hz.id])]
    blind_units = {b["unit"] for b in agenda["blind_spots"]}
    # Nothing was logged in three months: the education bureau's monthly duties are blind; the fire
    # brigade's duties are yearly, semester or on-demand, which a quarter's silence proves nothing about.
    assert "education" in blind_units and "fire-rescue" not in blind_units
    counts = {c["section"]: c["count"] for c in agenda["counts"]}
    assert counts["overdue_rectifications"] == 1 and counts["proposals"] == 1 and counts["follow_up"] == 2


def test_blind_spots_only_count_duties_whose_cadence_the_period_covers(county: Platform, clock: Clock) -> None:
    app = county.app
    clock.now = at("2025-05-01")
    app.schedule_meeting(LEAD, number=1, title="会议", scheduled_for=date(2025, 5, 20), place="", now=clock.now)
    clock.now = at("2025-05-03")
    app.log_duty(EDU, duty_code="education.inspection-guidance", school_ids=["T001"], occurred_on=date(2025, 5, 2),
                 summary="检查", findings={"count": 0, "text": ""}, evidence=[], idempotency_key=None, body={},
                 now=clock.now)
    county.runner.catch_up()
    with county.read_engine.connect() as conn:
        agenda = assemble_agenda(conn, str(meeting_id(2025, 1)), date(2025, 5, 20))
    assert agenda is not None and agenda["period_start"] == "2025-01-01"
    spots = {b["unit"]: {d["duty_code"]: d["cadence"] for d in b["duties"]} for b in agenda["blind_spots"]}
    edu = spots["education"]
    assert "education.inspection-guidance" not in edu  # performed in the period
    assert edu["education.lead-coordination"] == "monthly"  # monthly and silent for 140 days
    assert "education.safety-education" not in edu  # a semester duty: not yet due
    assert set(edu.values()) <= {"weekly", "monthly", "quarterly"}


# -- scheduler jobs -----------------------------------------------------------------------------


def test_draft_agenda_job_runs_n_days_before_and_once(county: Platform, clock: Clock) -> None:
    clock.now = at("2025-06-01")
    county.app.schedule_meeting(LEAD, number=1, title="会议", scheduled_for=date(2025, 6, 20), place="",
                                now=clock.now)
    sched = LianxiScheduler(county, clock=clock)
    clock.now = at("2025-06-12")  # 8 days before: not yet (default 7)
    assert sched.run_job("agenda-draft")["drafted"] == 0
    clock.now = at("2025-06-13")
    assert sched.run_job("agenda-draft")["drafted"] == 1
    assert LianxiScheduler(county, clock=clock).run_job("agenda-draft")["drafted"] == 0
    m = county.app.meeting(meeting_id(2025, 1))
    assert m.drafted
    # A second instance that loaded the meeting before the draft was saved cannot record another.
    assert county.app.record_agenda_draft(meeting_id(2025, 1), period_start=date(2025, 1, 1),
                                          period_end=date(2025, 6, 20), sections=[], now=clock.now) is False


def test_task_overdue_job_escalates_each_step_once(platform: Platform, clock: Clock) -> None:
    app = platform.app
    clock.now = at("2025-03-01")
    app.schedule_meeting(LEAD, number=1, title="会议", scheduled_for=date(2025, 3, 5), place="", now=clock.now)
    clock.now = at("2025-03-05")
    mid = meeting_id(2025, 1)
    app.hold_meeting(LEAD, mid, held_on=date(2025, 3, 5), attendance=["education"], absent=[], minutes="纪要",
                     now=clock.now)
    res = app.adopt_resolution(LEAD, mid, text="决议", agenda_item_ids=[], tasks=[
        {"unit": "public-security", "description": "护学岗", "deadline": date(2025, 3, 10)}], now=clock.now)
    one, two = LianxiScheduler(platform, clock=clock), LianxiScheduler(platform, clock=clock)
    clock.now = at("2025-03-12")
    assert one.run_job("task-overdue")["events"] == 2
    assert two.run_job("task-overdue")["events"] == 0
    clock.now = at("2025-04-15")
    assert two.run_job("task-overdue")["events"] == 2
    assert one.run_job("task-overdue")["events"] == 0
    platform.runner.catch_up()
    with platform.read_engine.connect() as conn:
        [row] = list_tasks(conn, today=date(2025, 4, 15), limit=10)
    assert row["task_id"] == res.related[0] and row["escalation_level"] == 3 and row["escalation_name"] == "纳入考核"
    assert row["overdue"] and row["days_overdue"] == 36


# -- API ------------------------------------------------------------------------------------


@pytest.fixture
def held_meeting(api: Api, clock: Clock) -> dict[str, str]:
    register_schools(api, 2)
    clock.now = at("2025-06-01")
    lead = api.as_("education", "lead")
    r = api.client.post("/api/v1/meetings", json={"scheduled_for": "2025-06-20", "place": "会议室"}, headers=lead)
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    r = api.client.post(f"/api/v1/meetings/{mid}/agenda-items", json={"title": "周边交通", "detail": "拥堵"},
                        headers=api.as_("public-security"))
    assert r.status_code == 201, r.text
    item = r.json()["event_id"]
    clock.now = at("2025-06-20")
    r = api.client.post(f"/api/v1/meetings/{mid}/held", headers=lead, json={
        "held_on": "2025-06-20", "attendance": ["education", "public-security"], "absent": ["court"],
        "minutes": "会议纪要"})
    assert r.status_code == 200, r.text
    r = api.client.post(f"/api/v1/meetings/{mid}/resolutions", headers=lead, json={
        "text": "公安局牵头整治周边交通", "agenda_item_ids": [item],
        "tasks": [{"unit": "public-security", "cooperating_units": ["urban-management"], "description": "护学岗",
                   "deadline": "2025-07-20"}]})
    assert r.status_code == 201, r.text
    api.settle()
    return {"meeting": mid, "item": item, "task": r.json()["related"][0]}


def test_meeting_api_flow_and_agenda(api: Api, held_meeting: dict[str, str]) -> None:
    mid = held_meeting["meeting"]
    r = api.client.get(f"/api/v1/meetings/{mid}", headers=api.as_("court"))
    assert r.status_code == 200
    m = r.json()
    assert m["number"] == 1 and m["title"] == "旗校园安全局际联席会议2025年第一次会议" and m["status"] == "held"
    assert m["absent"] == ["court"] and m["resolutions"][0]["tasks"][0]["unit"] == "public-security"
    agenda = api.client.get(f"/api/v1/meetings/{mid}/agenda", headers=api.as_("court")).json()
    assert agenda["proposals"][0]["title"] == "周边交通"
    assert api.client.get(f"/api/v1/meetings/{uuid.uuid4()}/agenda", headers=api.as_("court")).status_code == 404
    tasks = api.client.get("/api/v1/tasks?unit=urban-management", headers=api.as_("court")).json()
    assert [t["task_id"] for t in tasks["items"]] == [held_meeting["task"]]


def test_task_api_lifecycle(api: Api, held_meeting: dict[str, str], clock: Clock) -> None:
    tid = held_meeting["task"]
    ps = api.as_("public-security")
    r = api.client.post(f"/api/v1/tasks/{tid}/progress", json={"note": "已部署", "percent": 50},
                        headers=api.as_("urban-management"))
    assert r.status_code == 200, r.text
    r = api.client.post(f"/api/v1/tasks/{tid}/completion", json={"summary": "已完成"}, headers=ps)
    assert r.status_code == 200 and r.json()["status"] == "completed"
    lead = api.as_("education", "lead")
    r = api.client.post(f"/api/v1/tasks/{tid}/verification", json={"note": "合格"}, headers=lead)
    assert r.status_code == 200 and r.json()["status"] == "verified"
    r = api.client.post(f"/api/v1/tasks/{tid}/completion", json={"summary": "再次"}, headers=ps)
    assert r.status_code == 422
    api.settle()
    detail = api.client.get(f"/api/v1/tasks/{tid}", headers=ps).json()
    assert [h["type"] for h in detail["history"]] == ["TaskAssigned", "TaskProgressReported", "TaskCompleted",
                                                      "TaskVerified"]
    assert detail["on_time"] is True


def _writes(h: dict[str, str]) -> list[tuple[str, dict[str, Any], str]]:
    """(path, body, the unit that may write it) for every write endpoint of meetings and tasks."""
    mid, tid = h["meeting"], h["task"]
    return [
        ("/api/v1/meetings", {"scheduled_for": "2025-07-20"}, "lead"),
        (f"/api/v1/meetings/{mid}/agenda-items", {"title": "t"}, "any"),
        (f"/api/v1/meetings/{mid}/held", {"held_on": "2025-06-20", "attendance": ["education"], "minutes": "m"},
         "lead"),
        (f"/api/v1/meetings/{mid}/resolutions", {"text": "决议"}, "lead"),
        (f"/api/v1/tasks/{tid}/progress", {"note": "n", "percent": 10}, "public-security"),
        (f"/api/v1/tasks/{tid}/completion", {"summary": "s"}, "public-security"),
        (f"/api/v1/tasks/{tid}/verification", {}, "lead"),
        (f"/api/v1/tasks/{tid}/rejection", {"reason": "r", "new_deadline": "2025-08-01"}, "lead"),
        (f"/api/v1/tasks/{tid}/extension", {"reason": "r", "new_deadline": "2025-08-01"}, "lead"),
    ]


def test_every_write_refuses_no_token_other_units_and_auditors(api: Api, held_meeting: dict[str, str]) -> None:
    for path, body, owner in _writes(held_meeting):
        r = api.client.post(path, json=body)
        assert r.status_code == 401, path
        assert r.headers["content-type"].startswith("application/problem+json")
        assert api.client.post(path, json=body, headers=api.as_("education", "auditor")).status_code == 403, path
        if owner != "any":
            other = "fire-rescue" if owner != "fire-rescue" else "court"
            r = api.client.post(path, json=body, headers=api.as_(other))
            assert r.status_code == 403, (path, r.text)
    # The brief is the lead's and the auditors'.
    mid = held_meeting["meeting"]
    assert api.client.get(f"/api/v1/meetings/{mid}/brief").status_code == 401
    assert api.client.get(f"/api/v1/meetings/{mid}/brief", headers=api.as_("public-security")).status_code == 403


def test_bad_input_is_a_problem_and_stores_nothing(api: Api, held_meeting: dict[str, str]) -> None:
    lead = api.as_("education", "lead")
    head = api.platform.app.recorder.max_notification_id()
    r = api.client.post("/api/v1/meetings", json={"scheduled_for": "2025-07-01", "agency": "court"}, headers=lead)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = api.client.post(f"/api/v1/meetings/{held_meeting['meeting']}/resolutions", headers=lead, json={
        "text": "决议", "tasks": [{"unit": "no-such-unit", "description": "x", "deadline": "2025-08-01"}]})
    assert r.status_code == 422 and "unknown member unit" in r.json()["detail"]
    r = api.client.post("/api/v1/meetings", json={"scheduled_for": "2025-07-01", "number": 1}, headers=lead)
    assert r.status_code == 409
    assert api.client.post("/api/v1/tasks/not-a-uuid/progress", json={"note": "n", "percent": 1},
                           headers=api.as_("public-security")).status_code == 404
    assert api.platform.app.recorder.max_notification_id() == head
