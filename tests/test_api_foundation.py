"""API v1 of the foundation: duty log, agencies, ledger, schools, event feed, health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.catalogue import default_catalogue
from tests.conftest import Api, make_platform, register_schools


def duty(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"duty_code": "fire-rescue.inspection", "school_ids": ["T001"],
                            "occurred_on": "2025-06-01", "summary": "消防安全检查"}
    body.update(over)
    return body


@pytest.fixture
def county(api: Api) -> Api:
    register_schools(api, 3)
    return api


def test_a_liaison_logs_a_duty_and_sees_it_in_the_ledger(county: Api) -> None:
    r = county.client.post("/api/v1/duty-logs", json=duty(findings={"count": 2, "text": "通道堵塞"},
                                                           evidence=["https://files.example/a.jpg"]),
                           headers=county.as_("fire-rescue"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] and body["position"] > 0
    county.settle()
    ledger = county.client.get("/api/v1/agencies/fire-rescue/ledger?period=2025",
                               headers=county.as_("fire-rescue")).json()
    row = next(d for d in ledger["duties"] if d["duty_code"] == "fire-rescue.inspection")
    assert row["performed_count"] == 1
    assert row["schools_covered"] == 1 and row["schools_applicable"] == 3
    assert row["coverage_ratio"] == pytest.approx(1 / 3, abs=1e-3)
    assert row["last_performed_on"] == "2025-06-01"
    assert row["by_month"] == {"2025-06": 1} and row["by_quarter"] == {"2025-Q2": 1}
    assert row["by_semester"] == {"2025-S1": 1} and row["findings_count"] == 2
    assert "fire-rescue.inspection" not in ledger["blind_spots"]
    assert len(ledger["blind_spots"]) == len(ledger["duties"]) - 1


def test_the_unit_comes_from_the_token_and_extra_fields_are_refused(county: Api) -> None:
    r = county.client.post("/api/v1/duty-logs", json=duty(agency="education"), headers=county.as_("fire-rescue"))
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["loc"] == ["body", "agency"]
    for field in ("logged_by", "recorded_at", "id", "event_id"):
        assert county.client.post("/api/v1/duty-logs", json=duty(**{field: "x"}),
                                  headers=county.as_("fire-rescue")).status_code == 422


def test_rule_violations_are_clear_problems(county: Api) -> None:
    h = county.as_("fire-rescue")
    cases = [
        (duty(duty_code="market-supervision.food-sampling"), "not among the duties"),
        (duty(school_ids=["T999"]), "unknown school"),
        (duty(occurred_on="2025-07-01"), "in the future"),
    ]
    for body, phrase in cases:
        r = county.client.post("/api/v1/duty-logs", json=body, headers=h)
        assert r.status_code == 422, body
        problem = r.json()
        assert phrase in problem["detail"] and problem["title"] == "违反业务规则"
    r = county.client.post("/api/v1/duty-logs", json=duty(occurred_on="2025-13-01"), headers=h)
    assert r.status_code == 422 and r.json()["title"] == "请求内容不符合要求"
    county.settle()
    # Nothing was written by the refusals.
    feed = county.client.get("/api/v1/events?limit=500", headers=county.as_("education", "auditor")).json()
    assert [e for e in feed["items"] if e["type"] == "DutyPerformed"] == []


def test_idempotency_key_replays_and_conflicts(county: Api) -> None:
    h = {**county.as_("fire-rescue"), "Idempotency-Key": "visit-42"}
    first = county.client.post("/api/v1/duty-logs", json=duty(), headers=h)
    again = county.client.post("/api/v1/duty-logs", json=duty(), headers=h)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and first.json()["position"] == again.json()["position"]
    assert first.json()["replayed"] is False and again.json()["replayed"] is True
    changed = county.client.post("/api/v1/duty-logs", json=duty(summary="另一次"), headers=h)
    assert changed.status_code == 409
    # Another unit using the same key is a different record.
    other_h = {**county.as_("public-security"), "Idempotency-Key": "visit-42"}
    other = county.client.post("/api/v1/duty-logs", headers=other_h,
                               json=duty(duty_code="public-security.campus-protection"))
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    county.settle()
    ledger = county.client.get("/api/v1/agencies/fire-rescue/ledger", headers=county.as_("fire-rescue")).json()
    assert next(d for d in ledger["duties"] if d["duty_code"] == "fire-rescue.inspection")["performed_count"] == 1


def test_write_endpoints_refuse_missing_foreign_and_read_only_tokens(county: Api) -> None:
    c = county.client
    assert c.post("/api/v1/duty-logs", json=duty()).status_code == 401
    assert c.post("/api/v1/duty-logs", json=duty(), headers={"Authorization": "Bearer lx_nope"}).status_code == 401
    assert c.post("/api/v1/duty-logs", json=duty(), headers=county.as_("education", "auditor")).status_code == 403
    # Another unit's liaison cannot log this unit's duty: the unit is theirs, not the body's.
    r = c.post("/api/v1/duty-logs", json=duty(), headers=county.as_("public-security"))
    assert r.status_code == 422 and "public-security" in r.json()["detail"]

    school = {"id": "X1", "name": "新学校", "town": "满都拉图镇", "kind": "primary"}
    assert c.post("/api/v1/schools", json=school).status_code == 401
    assert c.post("/api/v1/schools", json=school, headers=county.as_("fire-rescue")).status_code == 403
    assert c.post("/api/v1/schools", json=school, headers=county.as_("education")).status_code == 403
    assert c.post("/api/v1/schools", json=school, headers=county.as_("education", "auditor")).status_code == 403
    assert c.post("/api/v1/schools", json=school, headers=county.as_("education", "lead")).status_code == 201
    assert c.post("/api/v1/schools", json=school, headers=county.as_("education", "lead")).status_code == 409


def test_read_permissions(county: Api) -> None:
    c = county.client
    assert c.get("/api/v1/agencies/education/ledger", headers=county.as_("fire-rescue")).status_code == 403
    assert c.get("/api/v1/agencies/fire-rescue/ledger", headers=county.as_("education", "lead")).status_code == 200
    assert c.get("/api/v1/agencies/fire-rescue/ledger", headers=county.as_("education", "auditor")).status_code == 200
    assert c.get("/api/v1/events", headers=county.as_("fire-rescue")).status_code == 403
    assert c.get("/api/v1/events", headers=county.as_("education", "auditor")).status_code == 200
    assert c.get("/api/v1/agencies").status_code == 401
    assert c.get("/api/v1/agencies/nope", headers=county.as_("fire-rescue")).status_code == 404


def test_agency_shape(county: Api) -> None:
    r = county.client.get("/api/v1/agencies/fire-rescue", headers=county.as_("fire-rescue"))
    body = r.json()
    assert set(body) >= {"code", "name", "name_en", "lead", "duties"}
    assert body["code"] == "fire-rescue" and body["lead"] is False and body["name"] == "旗消防大队"
    assert {"code", "text"} <= set(body["duties"][0])
    everyone = county.client.get("/api/v1/agencies", headers=county.as_("fire-rescue")).json()
    assert len(everyone) == 21 and everyone[0]["code"] == "education" and everyone[0]["lead"] is True


def test_schools_and_events_paginate_with_cursors(county: Api) -> None:
    h = county.as_("fire-rescue")
    page = county.client.get("/api/v1/schools?limit=2", headers=h).json()
    assert [s["id"] for s in page["items"]] == ["T001", "T002"] and page["next_cursor"]
    rest = county.client.get(f"/api/v1/schools?limit=2&cursor={page['next_cursor']}", headers=h).json()
    assert [s["id"] for s in rest["items"]] == ["T003"] and rest["next_cursor"] is None
    assert county.client.get("/api/v1/schools?limit=100000", headers=h).status_code == 422
    assert county.client.get("/api/v1/schools?cursor=%%%", headers=h).status_code == 400

    lead = county.as_("education", "lead")
    seen = []
    cursor = None
    while True:
        url = "/api/v1/events?limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = county.client.get(url, headers=lead).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    positions = [e["position"] for e in seen]
    assert positions == sorted(positions) and len(positions) == len(set(positions))
    assert {e["type"] for e in seen} == {"AgencyRegistered", "SchoolRegistered"}
    item = seen[-1]
    assert set(item) == {"position", "id", "type", "agency", "occurred_on", "recorded_at", "data"}
    after = county.client.get(f"/api/v1/events?after={positions[-2]}", headers=lead).json()
    assert [e["position"] for e in after["items"]] == positions[-1:]


def test_ledger_rejects_bad_periods_and_future_as_of(county: Api) -> None:
    h = county.as_("fire-rescue")
    assert county.client.get("/api/v1/agencies/fire-rescue/ledger?period=2025-Q5", headers=h).status_code == 422
    assert county.client.get("/api/v1/agencies/fire-rescue/ledger?as_of=2030-01-01", headers=h).status_code == 422
    r = county.client.get("/api/v1/agencies/fire-rescue/ledger?period=2025-S1&as_of=2025-06-29", headers=h)
    assert r.status_code == 200 and r.json()["source"] == "as_of"


def test_health(county: Api) -> None:
    assert county.client.get("/healthz").json() == {"status": "ok"}
    county.settle()
    ready = county.client.get("/readyz")
    assert ready.status_code == 200 and set(ready.json()["projection_lag"]) >= {"ledger", "catalogue"}


def test_idempotency_key_through_group_commit(database_url: str) -> None:
    """As `lianxi serve` runs: a reused key is found by the failed commit (the record id is
    taken), not by a read first, and answers as a replay or a conflict."""
    platform = make_platform(database_url, group_commit=True)
    try:
        platform.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
        api = Api(platform)
        register_schools(api, 2)
        h = {**api.as_("fire-rescue"), "Idempotency-Key": "visit-7"}
        first = api.client.post("/api/v1/duty-logs", json=duty(), headers=h)
        again = api.client.post("/api/v1/duty-logs", json=duty(), headers=h)
        assert first.status_code == again.status_code == 201, again.text
        assert again.json() == {**first.json(), "replayed": True}
        assert api.client.post("/api/v1/duty-logs", json=duty(summary="另一次"), headers=h).status_code == 409
        stored = [n for n in platform.app.recorder.select_notifications(start=1, limit=10_000)
                  if n.topic.endswith("DutyPerformed")]
        assert len(stored) == 1
    finally:
        platform.close()
