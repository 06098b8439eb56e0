"""Logistics API: targets and their progress, recognitions, compliance records and the matrix,
petitions and their rates; every write endpoint against no token, another unit and an auditor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from tests.conftest import Api, register_schools

LEAD = ("education", "lead")


def lead(api: Api) -> dict[str, str]:
    return api.as_(*LEAD)


def _recognition(api: Api, school: str = "T001", kind: str = "green-school", day: str = "2025-06-01",
                 level: str = "province") -> dict[str, Any]:
    r = api.client.post("/api/v1/recognitions", headers=lead(api), json={
        "school_id": school, "kind": kind, "level": level, "awarded_on": day, "awarding_body": "四川省教育厅",
        "evidence": ["sha256:aa"]})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _petition(api: Api, ref: str = "XF2025-0001", received: str = "2025-05-01") -> str:
    r = api.client.post("/api/v1/petitions", headers=api.as_("petitions"), json={
        "reference": ref, "channel": "letter", "topic": "canteen", "school_id": "T001",
        "summary": "反映学校食堂饭菜价格偏高", "handling_unit": "market-supervision", "received_on": received})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _answered(api: Api) -> str:
    pid = _petition(api)
    r = api.client.post(f"/api/v1/petitions/{pid}/answer", headers=api.as_("market-supervision"),
                        json={"answered_on": "2025-05-20", "answer": "已核查价格并督促公示"})
    assert r.status_code == 200, r.text
    return pid


@pytest.fixture
def county(api: Api) -> Api:
    register_schools(api, 3)
    return api


def test_targets_from_catalogue_and_progress(county: Api) -> None:
    api = county
    r = api.client.post("/api/v1/targets/from-catalogue", headers=lead(api), json={"year": 2025})
    assert r.status_code == 201 and len(r.json()) == 8
    again = api.client.post("/api/v1/targets/from-catalogue", headers=lead(api), json={"year": 2025}).json()
    assert all(w["replayed"] for w in again)  # setting the same values again records nothing
    # revising a value needs a reason
    r = api.client.post("/api/v1/targets", headers=lead(api),
                        json={"code": "water-saving-schools", "year": 2025, "value": 5})
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    r = api.client.post("/api/v1/targets", headers=lead(api),
                        json={"code": "water-saving-schools", "year": 2025, "value": 2, "reason": "县里调整"})
    assert r.status_code == 201
    r = api.client.post("/api/v1/targets", headers=lead(api),
                        json={"code": "water-saving-schools", "year": 2025, "scope": "town:满都拉图镇", "value": 1})
    assert r.status_code == 201
    assert api.client.post("/api/v1/targets", headers=lead(api),
                           json={"code": "no-such-target", "year": 2025}).status_code == 422
    _recognition(api, "T001", "green-school", "2025-03-01")
    _recognition(api, "T002", "green-school", "2024-06-01")  # recognised last year, still held
    _recognition(api, "T002", "water-saving-school", "2025-05-10", "city")
    api.settle()
    body = api.client.get("/api/v1/targets?year=2025", headers=api.as_("fire-rescue")).json()
    by_code = {t["code"]: t for t in body["targets"]}
    green = by_code["green-school-share"]["county"]
    assert (green["value"], green["target"], green["numerator"], green["denominator"]) == (0.6667, 0.7, 2, 3)
    assert green["gap"] == round(0.7 - 0.6667, 4) and green["met"] is False
    # the schools were registered on 2025-06-30: no share before then
    assert green["trend"]["2025-05"] is None and green["trend"]["2025-06"] == 0.6667
    water = by_code["water-saving-schools"]
    assert (water["county"]["value"], water["county"]["target"], water["county"]["gap"]) == (1.0, 2.0, 1.0)
    town = next(t for t in water["towns"] if t["town"] == "满都拉图镇")
    assert (town["target"], town["target_set_for_town"], town["met"]) == (1.0, True, True)
    assert by_code["green-school-share"]["towns"][0]["target"] == 0.7  # a share target holds per town
    assert by_code["petition-handling-rates"]["measured_by"] == {"petitions": "handling_rate"}


def test_recognitions_list_withdraw_and_rules(county: Api) -> None:
    api = county
    rec = _recognition(api)
    again = api.client.post("/api/v1/recognitions", headers=lead(api), json={
        "school_id": "T001", "kind": "green-school", "level": "province", "awarded_on": "2025-06-01",
        "awarding_body": "四川省教育厅", "evidence": ["sha256:aa"]})
    assert again.status_code == 201 and again.json()["replayed"] is True and again.json()["id"] == rec["id"]
    differs = api.client.post("/api/v1/recognitions", headers=lead(api), json={
        "school_id": "T001", "kind": "green-school", "level": "province", "awarded_on": "2025-06-01",
        "awarding_body": "别的单位"})
    assert differs.status_code == 409
    # T002 has no canteen (register_schools: odd ones do), so it cannot hold a canteen award
    r = api.client.post("/api/v1/recognitions", headers=lead(api), json={
        "school_id": "T002", "kind": "healthy-canteen", "level": "province", "awarded_on": "2025-06-01"})
    assert r.status_code == 422 and "facility" in r.json()["detail"]
    r = api.client.post(f"/api/v1/recognitions/{rec['id']}/withdraw", headers=lead(api),
                        json={"withdrawn_on": "2025-06-20", "reason": "复审未通过"})
    assert r.status_code == 200
    api.settle()
    listed = api.client.get("/api/v1/recognitions?school=T001", headers=api.as_("fire-rescue")).json()["items"]
    assert listed[0]["withdrawn_on"] == "2025-06-20"
    assert api.client.get("/api/v1/recognitions?active_on=2025-06-25", headers=lead(api)).json()["items"] == []


def test_compliance_record_and_matrix(county: Api) -> None:
    api = county
    body = {"school_id": "T001", "kind": "drinking-water-test-report", "period": "2025-Q2",
            "occurred_on": "2025-06-20", "evidence": ["https://docs.example/report-0620.pdf"]}
    r = api.client.post("/api/v1/compliance-records", headers={**api.as_("housing-construction"),
                                                               "Idempotency-Key": "r-1"}, json=body)
    assert r.status_code == 201, r.text
    replay = api.client.post("/api/v1/compliance-records", headers={**api.as_("housing-construction"),
                                                                    "Idempotency-Key": "r-1"}, json=body)
    assert replay.json()["id"] == r.json()["id"] and replay.json()["replayed"] is True
    clash = api.client.post("/api/v1/compliance-records", headers={**api.as_("housing-construction"),
                                                                   "Idempotency-Key": "r-1"},
                            json={**body, "school_id": "T002"})
    assert clash.status_code == 409
    bad = api.client.post("/api/v1/compliance-records", headers=lead(api), json={**body, "period": "2025-06"})
    assert bad.status_code == 422 and "does not fit" in bad.json()["detail"]
    extra = api.client.post("/api/v1/compliance-records", headers=lead(api), json={**body, "agency": "x"})
    assert extra.status_code == 422
    api.settle()
    m = api.client.get("/api/v1/compliance?kind=drinking-water-test-report&period=2025-Q2", headers=lead(api)).json()
    cells = {c["school_id"]: c for c in m["items"]}
    assert cells["T001"]["status"] == "on_time"
    # registered on the due day itself: a new school owes nothing for this quarter, but the next
    assert "T002" not in cells
    q3 = api.client.get("/api/v1/compliance?kind=drinking-water-test-report&period=2025-Q3", headers=lead(api)).json()
    assert {c["school_id"]: c["status"] for c in q3["items"]} == {"T001": "pending", "T002": "pending",
                                                                  "T003": "pending"}
    assert m["rates"]["overall"]["on_time"] == 1
    # liaisons see the kinds their unit logs or answers for
    r = api.client.get("/api/v1/compliance?kind=dormitory-safety-check", headers=api.as_("housing-construction"))
    assert r.status_code == 403
    mine = api.client.get("/api/v1/compliance", headers=api.as_("housing-construction")).json()
    assert {c["kind"] for c in mine["items"]} == {"drinking-water-test-report"}
    cal = api.client.get("/api/v1/compliance/calendar", headers=api.as_("fire-rescue")).json()
    assert any(k["code"] == "micro-fire-station" for k in cal["kinds"])


def test_compliance_matrix_pages(county: Api) -> None:
    api = county
    api.settle()
    seen: list[str] = []
    cursor = None
    total = None
    while True:
        url = "/api/v1/compliance?year=2025&limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = api.client.get(url, headers=lead(api)).json()
        total = total or page["total"]
        seen += [f"{c['school_id']}|{c['kind']}|{c['period']}" for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == total > 7


def test_petitions_flow_and_rates(county: Api) -> None:
    api = county
    pid = _answered(api)
    r = api.client.post(f"/api/v1/petitions/{pid}/close", headers=api.as_("petitions"),
                        json={"closed_on": "2025-05-25", "satisfaction": "satisfied"})
    assert r.status_code == 200
    other = _petition(api, "XF2025-0002", "2025-06-01")
    r = api.client.post("/api/v1/petitions", headers=api.as_("petitions"), json={
        "reference": "XF2025-0003", "channel": "phone", "topic": "fees", "summary": "来电人 13800138000 反映收费",
        "received_on": "2025-06-01"})
    assert r.status_code == 422 and "phone or ID" in r.json()["detail"]
    api.settle()
    rates = api.client.get("/api/v1/petitions/rates?year=2025", headers=lead(api)).json()
    assert (rates["received"], rates["closed"], rates["handling_rate"], rates["satisfaction_rate"]) == (2, 1, 0.5, 1.0)
    assert rates["by_month"]["2025-05"]["handling_rate"] == 1.0
    # the handling unit sees its petitions; an uninvolved liaison sees none
    mine = api.client.get("/api/v1/petitions", headers=api.as_("market-supervision")).json()["items"]
    assert {p["id"] for p in mine} == {pid, other}
    assert api.client.get("/api/v1/petitions", headers=api.as_("fire-rescue")).json()["items"] == []
    assert api.client.get(f"/api/v1/petitions/{pid}", headers=api.as_("fire-rescue")).status_code == 404
    assert api.client.get(f"/api/v1/petitions/{pid}", headers=api.as_("education", "auditor")).json()["status"] == \
        "closed"


# -- every write endpoint: no token, another unit, an auditor ---------------------------------------


def _none(api: Api) -> str:
    return ""


def _rec_id(api: Api) -> str:
    return str(_recognition(api)["id"])


def _notification(api: Api) -> str:
    """A notification for market-supervision (a petition assigned to it)."""
    _petition(api, "XF2025-0100")
    api.settle()
    items = api.client.get("/api/v1/inbox", headers=api.as_("market-supervision")).json()["items"]
    return str(items[0]["id"])


COMPLIANCE = {"school_id": "T001", "kind": "micro-fire-station", "period": "2025", "occurred_on": "2025-06-01",
              "evidence": ["sha256:ff"]}
PETITION = {"reference": "XF2025-0009", "channel": "visit", "topic": "dormitory", "summary": "反映宿舍热水不足",
            "handling_unit": "education", "received_on": "2025-06-01"}

# method, path (with {id}), body, setup giving {id}, allowed (agency, role), another unit (agency, role)
WRITES: list[tuple[str, str, str, dict[str, Any], Callable[[Api], str], tuple[str, str], tuple[str, str]]] = [
    ("target", "POST", "/api/v1/targets", {"code": "green-school-share", "year": 2025}, _none, LEAD,
     ("fire-rescue", "liaison")),
    ("targets-from-catalogue", "POST", "/api/v1/targets/from-catalogue", {"year": 2025}, _none, LEAD,
     ("education", "liaison")),
    ("recognition", "POST", "/api/v1/recognitions",
     {"school_id": "T001", "kind": "green-school", "level": "city", "awarded_on": "2025-05-01"}, _none, LEAD,
     ("market-supervision", "liaison")),
    ("withdrawal", "POST", "/api/v1/recognitions/{id}/withdraw", {"withdrawn_on": "2025-06-20", "reason": "复审"},
     _rec_id, LEAD, ("education", "liaison")),
    ("compliance-record", "POST", "/api/v1/compliance-records", COMPLIANCE, _none, ("fire-rescue", "liaison"),
     ("peoples-bank", "liaison")),
    ("petition", "POST", "/api/v1/petitions", PETITION, _none, ("petitions", "liaison"), ("fire-rescue", "liaison")),
    ("petition-answer", "POST", "/api/v1/petitions/{id}/answer", {"answered_on": "2025-06-10", "answer": "已处理"},
     _petition, ("market-supervision", "liaison"), ("fire-rescue", "liaison")),
    ("petition-close", "POST", "/api/v1/petitions/{id}/close", {"closed_on": "2025-06-11", "satisfaction": "satisfied"},
     _answered, ("petitions", "liaison"), ("fire-rescue", "liaison")),
    ("inbox-read", "POST", "/api/v1/inbox/read", {"ids": ["{id}"]}, _notification, ("market-supervision", "liaison"),
     ("fire-rescue", "liaison")),
    ("inbox-read-one", "POST", "/api/v1/inbox/{id}/read", {}, _notification, ("market-supervision", "liaison"),
     ("education", "lead")),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "setup", "allowed", "other"), WRITES,
                         ids=[w[0] for w in WRITES])
def test_write_endpoints_refuse_no_token_another_unit_and_auditors(
    sqlite_api: Api, name: str, method: str, path: str, body: dict[str, Any], setup: Callable[[Api], str],
    allowed: tuple[str, str], other: tuple[str, str],
) -> None:
    api = sqlite_api
    register_schools(api, 3)
    ident = setup(api)
    url = path.replace("{id}", ident)
    payload = {k: ([ident] if v == ["{id}"] else v) for k, v in body.items()}
    head = api.platform.app.recorder.max_notification_id()

    def call(headers: dict[str, str]) -> Any:
        return api.client.request(method, url, json=payload, headers=headers)

    assert call({}).status_code == 401
    r = call(api.as_(*other))
    assert r.status_code == 403, r.text
    assert r.json()["type"] == "urn:lianxi:problem:forbidden"
    assert call(api.as_("education", "auditor")).status_code == 403
    assert call(api.as_(other[0], "auditor")).status_code == 403
    assert api.platform.app.recorder.max_notification_id() == head  # refusals append nothing
    ok = call(api.as_(*allowed))
    assert ok.status_code in (200, 201), ok.text


def test_write_endpoints_on_postgres_too(api: Api) -> None:
    """The same flow end to end on both stores (the parametrised fixture)."""
    register_schools(api, 2)
    _recognition(api)
    _answered(api)
    r = api.client.post("/api/v1/compliance-records", headers=api.as_("fire-rescue"), json=COMPLIANCE)
    assert r.status_code == 201
    api.settle()
    assert api.client.get("/api/v1/petitions/rates?year=2025", headers=lead(api)).json()["answered"] == 1
    assert api.client.get("/api/v1/recognitions", headers=lead(api)).json()["items"][0]["school_id"] == "T001"


def test_dates_are_county_dates(sqlite_api: Api) -> None:
    """Recording at 23:30 UTC on the 30th is the 1st in the county: a record for the next day
    is not in the future, a record dated the day after is."""
    api = sqlite_api
    register_schools(api, 1)
    api.platform.clock = lambda: datetime(2025, 6, 30, 23, 30, tzinfo=UTC)
    ok = api.client.post("/api/v1/compliance-records", headers=lead(api),
                         json={**COMPLIANCE, "occurred_on": "2025-07-01"})
    assert ok.status_code == 201
    late = api.client.post("/api/v1/compliance-records", headers=lead(api),
                           json={**COMPLIANCE, "occurred_on": date(2025, 7, 2).isoformat()})
    assert late.status_code == 422
