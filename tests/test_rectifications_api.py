"""Hazards and rectifications through the API: the lifecycle, who may do what (every write
endpoint with no token, another unit's token and an auditor's), the board with its filters and
paging, each unit's part in its ledger, and the board against a full rebuild after a demo year."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contracts.catalogue import default_catalogue
from contracts.escalation import default_escalation_rules
from events.base import derive_id
from events.rectifications import Rectification
from projections.rectification_board import history, items, responsible
from services.demo.year import run_demo
from services.scheduler import LianxiScheduler
from tests.conftest import Api, Clock, make_platform, register_schools

# FIXED_NOW is 2025-06-30 12:00 county time.
HAZARD = {
    "reported_by": {"kind": "unit"}, "school_id": "T001", "category": "fire", "severity": "major",
    "description": "疏散通道堆放杂物，应急照明损坏", "found_on": "2025-06-28",
}
ASSIGNMENT = {
    "lead_unit": "fire-rescue", "cooperating_units": ["public-security"], "deadline": "2025-07-20",
    "measures": ["清理疏散通道", "更换应急照明"], "funds": {"amount_cny": "8500.5", "source": "学校公用经费"},
}
PROGRESS = {"note": "已清理疏散通道", "percent": 60, "evidence": ["https://evidence.example/p1.jpg"]}
COMPLETION = {"summary": "整改完毕", "evidence": ["sha256:0f3a"]}
REJECTION = {"reason": "应急照明仍未更换（回头看）", "new_deadline": "2025-07-31"}
EXTENSION = {"reason": "照明设备采购中，申请延期", "new_deadline": "2025-08-10"}


def lead(api: Api) -> dict[str, str]:
    return api.as_("education", "lead")


def report(api: Api, agency: str = "fire-rescue", **over: Any) -> str:
    r = api.client.post("/api/v1/hazards", headers=api.as_(agency), json={**HAZARD, **over})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def post(api: Api, item: str, action: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return api.client.post(f"/api/v1/rectifications/{item}/{action}", headers=headers, json=body)


def ok(api: Api, item: str, action: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    r = post(api, item, action, body, headers)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def detail(api: Api, item: str, agency: str = "market-supervision") -> dict[str, Any]:
    api.settle()
    r = api.client.get(f"/api/v1/rectifications/{item}", headers=api.as_(agency))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.fixture
def schools(api: Api) -> list[str]:
    return register_schools(api, 3)


@pytest.fixture
def sq_schools(sqlite_api: Api) -> list[str]:
    return register_schools(sqlite_api, 3)


# -- the lifecycle -------------------------------------------------------------------------


def test_full_lifecycle_report_assign_progress_complete_verify(api: Api, schools: list[str]) -> None:
    r = api.client.post("/api/v1/hazards", headers=api.as_("fire-rescue"), json=HAZARD)
    assert r.status_code == 201, r.text
    item = r.json()["id"]
    assert r.headers["Location"] == f"/api/v1/rectifications/{item}"
    assert (r.json()["status"], r.json()["type"]) == ("reported", "HazardReported")
    assert ok(api, item, "assignment", ASSIGNMENT, lead(api))["status"] == "assigned"
    assert ok(api, item, "progress", PROGRESS, api.as_("public-security"))["status"] == "in_progress"
    done = ok(api, item, "completion", COMPLETION, api.as_("fire-rescue"))
    assert (done["status"], done["type"]) == ("completed", "RectificationCompleted")
    closed = ok(api, item, "verification", {"note": "复核合格，予以销号"}, lead(api))
    assert closed["status"] == "closed"

    d = detail(api, item)
    assert d["status"] == "closed" and d["on_time"] is True and d["closed_on"] == "2025-06-30"
    assert d["reported_by"] == {"kind": "unit", "units": ["fire-rescue"]}
    assert (d["lead_unit"], d["cooperating_units"], d["deadline"]) == ("fire-rescue", ["public-security"], "2025-07-20")
    assert d["funds"] == {"amount_cny": "8500.50", "source": "学校公用经费"}
    assert d["units"] == [{"unit": "fire-rescue", "role": "lead"}, {"unit": "public-security", "role": "cooperating"}]
    assert [h["type"] for h in d["history"]] == [
        "HazardReported", "RectificationAssigned", "RectificationProgressReported", "RectificationCompleted",
        "RectificationVerified"]
    assert d["history"][2]["agency"] == "public-security"
    assert d["history"][4]["data"]["note"] == "复核合格，予以销号"


def test_rejection_reopens_with_a_new_deadline_and_the_lead_extends(sqlite_api: Api, sq_schools: list[str]) -> None:
    api = sqlite_api
    item = report(api)
    ok(api, item, "assignment", ASSIGNMENT, lead(api))
    ok(api, item, "completion", COMPLETION, api.as_("fire-rescue"))
    reopened = ok(api, item, "rejection", REJECTION, lead(api))
    assert reopened["status"] == "reopened"
    extended = ok(api, item, "extension", EXTENSION, lead(api))
    assert extended["type"] == "DeadlineExtended"
    d = detail(api, item)
    assert (d["status"], d["deadline"], d["original_deadline"], d["rejections"], d["extensions"]) == (
        "reopened", "2025-08-10", "2025-07-20", 1, 1)
    assert d["history"][-2]["data"]["reason"] == REJECTION["reason"]
    # A closed item can be reopened (回头看) by the lead, and by no one else.
    ok(api, item, "completion", COMPLETION, api.as_("fire-rescue"))
    ok(api, item, "verification", {}, lead(api))
    r = post(api, item, "progress", PROGRESS, api.as_("fire-rescue"))
    assert r.status_code == 422 and "closed" in r.json()["detail"]
    assert ok(api, item, "rejection", {**REJECTION, "new_deadline": "2025-09-01"}, lead(api))["status"] == "reopened"


def test_broken_rules_are_problem_json_with_a_clear_detail(sqlite_api: Api, sq_schools: list[str]) -> None:
    api = sqlite_api
    item = report(api)
    r = post(api, item, "verification", {}, lead(api))
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == "urn:lianxi:problem:rule-violated" and body["title"] == "违反业务规则"
    assert "verification comes only after completion" in body["detail"]
    r = post(api, item, "assignment", {**ASSIGNMENT, "deadline": "2025-06-27"}, lead(api))
    assert r.status_code == 422 and "earlier than the day the hazard was found (2025-06-28)" in r.json()["detail"]
    r = post(api, item, "assignment", {**ASSIGNMENT, "surprise": 1}, lead(api))
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][-1] == "surprise"
    r = api.client.post("/api/v1/hazards", headers=api.as_("fire-rescue"), json={**HAZARD, "category": "ufo"})
    assert r.status_code == 422 and "hazard category 'ufo'" in r.json()["detail"]
    r = api.client.post("/api/v1/hazards", headers=api.as_("fire-rescue"), json={**HAZARD, "found_on": "2025-07-01"})
    assert r.status_code == 422 and "in the future" in r.json()["detail"]
    r = post(api, item, "completion", {"summary": "完成", "evidence": []}, api.as_("fire-rescue"))
    assert r.status_code == 422
    for bad in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        assert post(api, bad, "assignment", ASSIGNMENT, lead(api)).status_code == 404
        assert api.client.get(f"/api/v1/rectifications/{bad}", headers=lead(api)).status_code == 404


def test_idempotency_key_on_hazards(sqlite_api: Api, sq_schools: list[str]) -> None:
    api = sqlite_api
    headers = {**api.as_("fire-rescue"), "Idempotency-Key": "fire-2025-06-28-001"}
    first = api.client.post("/api/v1/hazards", headers=headers, json=HAZARD)
    again = api.client.post("/api/v1/hazards", headers=headers, json=HAZARD)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.json()["replayed"] is True
    assert again.json()["position"] == first.json()["position"]
    other = api.client.post("/api/v1/hazards", headers=headers, json={**HAZARD, "severity": "critical"})
    assert other.status_code == 409
    api.settle()
    page = api.client.get("/api/v1/rectifications", headers=lead(api)).json()
    assert len(page["items"]) == 1


# -- who may write -------------------------------------------------------------------------


def _assigned(api: Api) -> str:
    item = report(api)
    ok(api, item, "assignment", ASSIGNMENT, lead(api))
    return item


def _completed(api: Api) -> str:
    item = _assigned(api)
    ok(api, item, "completion", COMPLETION, api.as_("fire-rescue"))
    return item


# endpoint, body, state setup, allowed (agency, role), another unit's (agency, role)
WRITES: list[tuple[str, dict[str, Any], Callable[[Api], str], tuple[str, str], tuple[str, str]]] = [
    ("assignment", ASSIGNMENT, report, ("education", "lead"), ("fire-rescue", "liaison")),
    ("progress", PROGRESS, _assigned, ("public-security", "liaison"), ("market-supervision", "liaison")),
    ("completion", COMPLETION, _assigned, ("fire-rescue", "liaison"), ("market-supervision", "liaison")),
    ("verification", {"note": "合格"}, _completed, ("education", "lead"), ("fire-rescue", "liaison")),
    ("rejection", REJECTION, _completed, ("education", "lead"), ("fire-rescue", "liaison")),
    ("extension", EXTENSION, _assigned, ("education", "lead"), ("fire-rescue", "liaison")),
]


@pytest.mark.parametrize(("action", "body", "setup", "allowed", "other"), WRITES, ids=[w[0] for w in WRITES])
def test_write_endpoints_refuse_no_token_another_unit_and_auditors(
    api: Api, schools: list[str], action: str, body: dict[str, Any], setup: Callable[[Api], str],
    allowed: tuple[str, str], other: tuple[str, str],
) -> None:
    item = setup(api)
    head = api.platform.app.recorder.max_notification_id()
    assert post(api, item, action, body, {}).status_code == 401
    r = post(api, item, action, body, api.as_(*other))
    assert r.status_code == 403, r.text
    assert r.json()["type"] == "urn:lianxi:problem:forbidden"
    assert post(api, item, action, body, api.as_("education", "auditor")).status_code == 403
    assert post(api, item, action, body, api.as_("fire-rescue", "auditor")).status_code == 403
    assert api.platform.app.recorder.max_notification_id() == head  # refusals append nothing
    assert post(api, item, action, body, api.as_(*allowed)).status_code == 200


def test_lead_only_actions_refuse_the_responsible_unit_and_an_education_liaison(
    sqlite_api: Api, sq_schools: list[str],
) -> None:
    api = sqlite_api
    item = _completed(api)
    for action, body in (("verification", {}), ("rejection", REJECTION), ("assignment", ASSIGNMENT)):
        for who in (api.as_("fire-rescue"), api.as_("public-security"), api.as_("education")):
            assert post(api, item, action, body, who).status_code == 403
    assigned = _assigned(api)
    assert post(api, assigned, "extension", EXTENSION, api.as_("fire-rescue")).status_code == 403


def test_hazard_reports_refuse_no_token_another_units_name_and_auditors(api: Api, schools: list[str]) -> None:
    url = "/api/v1/hazards"
    assert api.client.post(url, json=HAZARD).status_code == 401
    r = api.client.post(url, headers=api.as_("public-security"),
                        json={**HAZARD, "reported_by": {"kind": "unit", "units": ["fire-rescue"]}})
    assert r.status_code == 403 and "own name" in r.json()["detail"]
    joint = {"kind": "joint-inspection", "units": ["public-security", "market-supervision"]}
    r = api.client.post(url, headers=api.as_("fire-rescue"), json={**HAZARD, "reported_by": joint})
    assert r.status_code == 403
    assert api.client.post(url, headers=api.as_("fire-rescue", "auditor"), json=HAZARD).status_code == 403
    r = api.client.post(url, headers=api.as_("market-supervision"), json={**HAZARD, "reported_by": joint})
    assert r.status_code == 201
    r = api.client.post(url, headers=api.as_("education"), json={**HAZARD, "reported_by": {"kind": "self-check"}})
    assert r.status_code == 201


# -- the board -----------------------------------------------------------------------------


def test_board_filters_and_cursor_pages(sqlite_api: Api, sq_schools: list[str]) -> None:
    api = sqlite_api
    a = report(api, school_id="T001", severity="major")
    b = report(api, "public-security", school_id="T002", category="school-bus", severity="critical")
    c = report(api, "market-supervision", school_id="T003", category="food", severity="general")
    ok(api, a, "assignment", ASSIGNMENT, lead(api))
    ok(api, b, "assignment", {**ASSIGNMENT, "lead_unit": "public-security", "cooperating_units": []}, lead(api))
    ok(api, b, "completion", COMPLETION, api.as_("public-security"))
    ok(api, b, "verification", {}, lead(api))
    api.settle()

    def ids(**params: Any) -> list[str]:
        r = api.client.get("/api/v1/rectifications", headers=api.as_("cyberspace"), params=params)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert ids() == [c, b, a]  # newest report first
    assert ids(unit="public-security") == [b, a]  # lead or cooperating
    assert ids(unit="fire-rescue") == [a]
    assert ids(school="T002") == [b]
    assert ids(status="closed") == [b]
    assert ids(status="open") == [c, a]
    assert ids(status="reported") == [c]
    assert ids(severity="critical") == [b]
    assert ids(category="food") == [c]
    assert ids(overdue=True) == []
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/api/v1/rectifications", headers=lead(api), params=params).json()
        pages.append([i["id"] for i in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [[c, b], [a]]
    assert api.client.get("/api/v1/rectifications", headers=lead(api), params={"cursor": "bm9wZQ"}).status_code == 400
    assert api.client.get("/api/v1/rectifications", headers=lead(api), params={"status": "lost"}).status_code == 422
    assert api.client.get("/api/v1/rectifications").status_code == 401


def test_overdue_items_show_days_overdue_and_the_escalation_the_scheduler_recorded(
    sqlite_api: Api, sq_schools: list[str], clock: Clock,
) -> None:
    api = sqlite_api
    item = report(api)
    ok(api, item, "assignment", ASSIGNMENT, lead(api))  # deadline 2025-07-20
    clock.now = datetime(2025, 8, 6, 1, tzinfo=UTC)  # 2025-08-06 09:00 county time: 17 days overdue
    d = detail(api, item)
    assert (d["overdue"], d["days_overdue"], d["escalation_level"]) == (True, 17, 0)
    result = LianxiScheduler(api.platform).run_job("overdue-sweep")
    assert (result["overdue"], result["escalations"]) == (1, {"1": 1, "2": 1})
    d = detail(api, item)
    assert (d["escalation_level"], d["escalation_name"], d["max_escalation_level"]) == (2, "通报", 2)
    assert [h["type"] for h in d["history"][-3:]] == [
        "RectificationOverdue", "RectificationEscalated", "RectificationEscalated"]
    page = api.client.get("/api/v1/rectifications", headers=lead(api), params={"overdue": "true"}).json()
    assert [i["id"] for i in page["items"]] == [item]
    # An extension ends the overdue state; the escalations stay in the history.
    ok(api, item, "extension", {**EXTENSION, "new_deadline": "2025-08-30"}, lead(api))
    d = detail(api, item)
    assert (d["overdue"], d["days_overdue"], d["escalation_level"], d["max_escalation_level"]) == (False, 0, 0, 2)


def test_each_unit_sees_its_part_in_its_ledger(sqlite_api: Api, sq_schools: list[str], clock: Clock) -> None:
    api = sqlite_api
    clock.now = datetime(2025, 6, 1, 2, tzinfo=UTC)
    closed_on_time, closed_late, still_open = (report(api, found_on="2025-05-30") for _ in range(3))
    for item in (closed_on_time, closed_late, still_open):
        ok(api, item, "assignment", {**ASSIGNMENT, "deadline": "2025-06-10"}, lead(api))
    clock.now = datetime(2025, 6, 9, 2, tzinfo=UTC)
    ok(api, closed_on_time, "completion", COMPLETION, api.as_("fire-rescue"))
    ok(api, closed_on_time, "verification", {}, lead(api))  # 8 days after assignment
    clock.now = datetime(2025, 6, 15, 2, tzinfo=UTC)
    LianxiScheduler(api.platform).run_job("overdue-sweep")
    ok(api, closed_late, "completion", COMPLETION, api.as_("fire-rescue"))
    clock.now = datetime(2025, 6, 19, 2, tzinfo=UTC)
    ok(api, closed_late, "verification", {}, lead(api))  # 18 days
    clock.now = datetime(2025, 6, 30, 4, tzinfo=UTC)
    api.settle()
    ledger = api.client.get("/api/v1/agencies/fire-rescue/ledger", headers=api.as_("fire-rescue")).json()
    assert ledger["rectifications"] == {
        "open": 1, "overdue": 1, "escalated": 1, "closed": 2, "closed_on_time": 1, "on_time_rate": 0.5,
        "median_days_to_close": 13.0, "cooperating_open": 0, "as_of": "2025-06-30",
    }
    police = api.client.get("/api/v1/agencies/public-security/ledger", headers=lead(api)).json()
    assert police["rectifications"]["cooperating_open"] == 1 and police["rectifications"]["open"] == 0
    # As it stood at the end of 2025-06-12: nothing closed late yet, one closed on time, two overdue.
    asof = api.client.get("/api/v1/agencies/fire-rescue/ledger", headers=lead(api),
                          params={"as_of": "2025-06-12"}).json()
    assert asof["source"] == "as_of"
    assert (asof["rectifications"]["closed"], asof["rectifications"]["overdue"],
            asof["rectifications"]["escalated"]) == (1, 2, 0)
    assert api.client.get("/api/v1/agencies/fire-rescue/ledger", headers=api.as_("public-security")).status_code == 403


# -- the demo year -------------------------------------------------------------------------


def _dump(conn: sa.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: sorted(tuple(r) for r in conn.execute(sa.select(t))) for t in (items, responsible, history)}


def test_demo_year_board_agrees_with_a_full_rebuild_and_with_the_aggregates(tmp_path: Path) -> None:
    platform = make_platform(f"sqlite:///{tmp_path / 'demo.db'}", clock=Clock(datetime(2026, 1, 3, tzinfo=UTC)),
                             projection_batch_size=37)
    try:
        counts = run_demo(platform.app, default_catalogue(), schools=25, year=2025, seed=4, now=platform.clock())
        assert counts["hazards"] == 40
        platform.runner.catch_up()  # incrementally, 37 events a batch
        with platform.read_engine.connect() as conn:
            live = _dump(conn)
        platform.runner.reset("rectification_board")
        platform.runner.batch_size = 100_000
        platform.runner.catch_up("rectification_board")
        with platform.read_engine.connect() as conn:
            rebuilt = _dump(conn)
            rows = [dict(r) for r in conn.execute(sa.select(items)).mappings()]
        assert live == rebuilt
        assert len(rows) >= 40  # other demo parts (inspections, compliance) report hazards too
        for row in rows:
            agg: Rectification = platform.app.rectification(uuid.UUID(row["id"]))
            assert (row["status"], row["deadline"], row["extensions"], row["rejections"]) == (
                agg.status, agg.deadline, agg.extensions, agg.rejections)
            assert row["escalation_level"] == agg.escalation_level()
        ours = {str(derive_id("demo-hazard", "4", "2025", str(n))) for n in range(40)}
        rows = [r for r in rows if r["id"] in ours]
        assert len(rows) == 40
        # A realistic spread: mostly closed on time, some late, escalated, extended, rejected, still open.
        closed = [r for r in rows if r["status"] == "closed"]
        assert sum(r["on_time"] for r in closed) > len(closed) / 2
        assert any(not r["on_time"] for r in closed)
        assert any(r["max_escalation_level"] == 3 for r in rows)
        assert any(r["extensions"] for r in rows) and any(r["rejections"] for r in rows)
        assert any(r["status"] != "closed" for r in rows)
        assert {r["reported_by_kind"] for r in rows} == {"unit", "self-check", "joint-inspection"}
        # The demo ran the daily sweep through the year: as of its last day nothing is left to take.
        steps = default_escalation_rules().domain_steps()
        for r in rows:
            agg = platform.app.rectification(uuid.UUID(r["id"]))
            assert agg.sweep(datetime(2025, 12, 31, 2, tzinfo=UTC), steps) == 0
    finally:
        platform.close()


def test_demo_hazards_are_deterministic(tmp_path: Path) -> None:
    from services.demo.hazards import plan_hazards

    schools = [f"S{i:05d}" for i in range(1, 31)]
    first = plan_hazards(schools, 2025, 7, 40)
    assert [(p.report, p.steps) for p in first] == [(p.report, p.steps) for p in plan_hazards(schools, 2025, 7, 40)]
    assert [p.report for p in first] != [p.report for p in plan_hazards(schools, 2025, 8, 40)]
    assert date(2025, 1, 1) <= min(p.report["found_on"] for p in first)
