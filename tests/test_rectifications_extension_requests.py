"""申请延期: a responsible unit requests a later deadline, the lead bureau grants it (the existing
extension, which settles the request) or refuses it with a reason. Pure domain first (given
events -> when command -> then events), then the API (problem+json, other units' tokens, the
board's pending request, rebuild equals live), then the item page's forms."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from events.errors import InvariantViolated, NotPermitted
from projections.rectification_board import items
from tests.conftest import Api, register_schools
from tests.test_rectifications_api import ASSIGNMENT, COMPLETION, EXTENSION, lead, ok, post
from tests.test_rectifications_api import report as report_hazard
from tests.test_rectifications_domain import (
    EDU_LIAISON,
    FIRE,
    LEAD,
    MARKET,
    assigned,
    at,
    completed,
    given,
    replay,
    report,
    then,
    types,
    verified,
)
from tests.test_web_pages import Browser, head

ASK_DAY = date(2025, 4, 1)


def ask(actor: Any = FIRE, new: date = date(2025, 5, 1), reason: str = "设备未到货", limit: int = 2) -> Any:
    return lambda a: a.request_extension(actor=actor, reason=reason, new_deadline=new, max_extensions=limit,
                                         now=at(ASK_DAY))


# -- the domain ------------------------------------------------------------------------------


def test_a_responsible_unit_requests_and_the_lead_grants_which_settles_the_request() -> None:
    agg = given(assigned())  # fire-rescue leads, education cooperates; deadline 2025-04-10
    ask()(agg)
    [e] = then(agg)
    assert (type(e).__name__, e.agency, e.current_deadline, e.requested_deadline, e.reason) == (
        "ExtensionRequested", "fire-rescue", "2025-04-10", "2025-05-01", "设备未到货")
    assert agg.deadline == "2025-04-10"  # a request moves nothing
    assert agg.pending_extension is not None and agg.pending_extension.unit == "fire-rescue"
    with pytest.raises(InvariantViolated, match="still pending"):
        ask(EDU_LIAISON, date(2025, 6, 1))(agg)  # one pending request at a time, whoever asks
    agg.extend(actor=LEAD, reason="同意", new_deadline=date(2025, 5, 1), max_extensions=2, now=at(date(2025, 4, 2)))
    assert types(then(agg)) == ["DeadlineExtended"]
    assert agg.pending_extension is None and agg.deadline == "2025-05-01"
    ask(EDU_LIAISON, date(2025, 5, 20))(agg)  # settled: a cooperating unit may ask again
    assert types(then(agg)) == ["ExtensionRequested"]


def test_the_lead_refuses_with_a_reason_and_the_deadline_stands() -> None:
    agg = given(assigned(), ask())
    with pytest.raises(NotPermitted, match="refuse an extension request"):
        agg.refuse_extension(actor=FIRE, reason="x", now=at(ASK_DAY))
    with pytest.raises(InvariantViolated, match="reason must not be blank"):
        agg.refuse_extension(actor=LEAD, reason="  ", now=at(ASK_DAY))
    agg.refuse_extension(actor=LEAD, reason="期限内可完成", now=at(date(2025, 4, 2)))
    [e] = then(agg)
    assert (type(e).__name__, e.requested_by, e.requested_deadline, e.reason) == (
        "ExtensionRefused", "fire-rescue", "2025-05-01", "期限内可完成")
    assert agg.pending_extension is None and agg.deadline == "2025-04-10"
    with pytest.raises(InvariantViolated, match="no pending extension request"):
        agg.refuse_extension(actor=LEAD, reason="再次", now=at(date(2025, 4, 2)))


def test_replaying_the_log_restores_the_pending_request() -> None:
    agg = report()
    for step in (assigned(), ask()):
        step(agg)
    log = list(agg.collect_events())
    restored = replay(log)
    assert restored.pending_extension == agg.pending_extension
    assert restored.pending_extension is not None and restored.pending_extension.requested_deadline == "2025-05-01"
    agg.refuse_extension(actor=LEAD, reason="不同意", now=at(ASK_DAY))
    assert replay([*log, *agg.collect_events()]).pending_extension is None


@pytest.mark.parametrize(("steps", "actor", "new", "error", "message"), [
    ((), FIRE, date(2025, 5, 1), InvariantViolated, "not assigned yet"),
    ((assigned(),), MARKET, date(2025, 5, 1), NotPermitted, "only a responsible unit"),
    ((assigned(),), FIRE, date(2025, 4, 10), InvariantViolated, "must be later than the current one"),
    ((assigned(deadline=date(2025, 3, 20)),), FIRE, date(2025, 3, 25), InvariantViolated, "already past"),
    ((assigned(), completed()), FIRE, date(2025, 5, 1), InvariantViolated, "nothing to extend"),
    ((assigned(), completed(), verified()), FIRE, date(2025, 5, 1), InvariantViolated, "is closed"),
])
def test_who_and_when_may_request(steps: tuple[Any, ...], actor: Any, new: date, error: type[Exception],
                                  message: str) -> None:
    agg = given(*steps)
    with pytest.raises(error, match=message):
        agg.request_extension(actor=actor, reason="设备未到货", new_deadline=new, max_extensions=2, now=at(ASK_DAY))
    assert then(agg) == []


def test_no_request_beyond_the_extension_limit_or_without_a_reason() -> None:
    agg = given(assigned())
    agg.extend(actor=LEAD, reason="一", new_deadline=date(2025, 4, 20), max_extensions=1, now=at(date(2025, 3, 20)))
    with pytest.raises(InvariantViolated, match=r"most allowed \(1\)"):
        ask(limit=1)(agg)
    with pytest.raises(InvariantViolated, match="reason must not be blank"):
        ask(reason=" ")(given(assigned()))


def test_a_pending_request_lapses_when_completion_is_reported_and_replays_the_same() -> None:
    agg = given(assigned())
    ask()(agg)
    completed(day=date(2025, 4, 3))(agg)
    events = then(agg)
    assert types(events) == ["ExtensionRequested", "RectificationCompleted"]
    assert agg.pending_extension is None
    with pytest.raises(InvariantViolated, match="no pending extension request"):
        agg.refuse_extension(actor=LEAD, reason="x", now=at(date(2025, 4, 3)))


# -- the API ---------------------------------------------------------------------------------


@pytest.fixture
def item(sqlite_api: Api) -> str:
    register_schools(sqlite_api, 3)
    item = report_hazard(sqlite_api)
    ok(sqlite_api, item, "assignment", ASSIGNMENT, lead(sqlite_api))  # fire-rescue leads, public-security helps
    return item


def _detail(api: Api, item: str) -> dict[str, Any]:
    api.settle()
    r = api.client.get(f"/api/v1/rectifications/{item}", headers=api.as_("market-supervision"))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_request_then_grant_through_the_api_and_the_board_shows_the_pending_request(
    sqlite_api: Api, item: str,
) -> None:
    api = sqlite_api
    asked = ok(api, item, "extension-request", EXTENSION, api.as_("public-security"))
    assert (asked["type"], asked["status"]) == ("ExtensionRequested", "assigned")
    d = _detail(api, item)
    assert d["pending_extension"] == {"unit": "public-security", "requested_deadline": "2025-08-10",
                                      "reason": EXTENSION["reason"], "requested_on": "2025-06-30"}
    assert d["deadline"] == "2025-07-20"
    board = api.client.get("/api/v1/rectifications", headers=lead(api)).json()["items"]
    assert [i["pending_extension"]["unit"] for i in board if i["id"] == item] == ["public-security"]
    # A second request while one is pending: problem+json, nothing stored.
    r = post(api, item, "extension-request", {**EXTENSION, "new_deadline": "2025-09-01"}, api.as_("fire-rescue"))
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert "still pending" in r.json()["detail"]
    granted = ok(api, item, "extension", {"reason": "同意延期", "new_deadline": "2025-08-10"}, lead(api))
    assert granted["type"] == "DeadlineExtended"
    d = _detail(api, item)
    assert d["pending_extension"] is None and (d["deadline"], d["extensions"]) == ("2025-08-10", 1)
    assert [h["type"] for h in d["history"]][-2:] == ["ExtensionRequested", "DeadlineExtended"]


def test_request_then_refusal_through_the_api(sqlite_api: Api, item: str) -> None:
    api = sqlite_api
    ok(api, item, "extension-request", EXTENSION, api.as_("fire-rescue"))
    refused = ok(api, item, "extension-refusal", {"reason": "工期充足，不同意延期"}, lead(api))
    assert refused["type"] == "ExtensionRefused"
    d = _detail(api, item)
    assert d["pending_extension"] is None and (d["deadline"], d["extensions"]) == ("2025-07-20", 0)
    assert d["history"][-1]["data"]["reason"] == "工期充足，不同意延期"
    r = post(api, item, "extension-refusal", {"reason": "再次"}, lead(api))
    assert r.status_code == 422 and "no pending extension request" in r.json()["detail"]
    r = post(api, item, "extension-refusal", {"reason": "x", "unit": "fire-rescue"}, lead(api))
    assert r.status_code == 422  # extra fields are refused
    # Completion lapses a pending request.
    ok(api, item, "extension-request", EXTENSION, api.as_("fire-rescue"))
    ok(api, item, "completion", COMPLETION, api.as_("fire-rescue"))
    assert _detail(api, item)["pending_extension"] is None


def test_other_units_auditors_and_no_token_cannot_request_or_refuse(sqlite_api: Api, item: str) -> None:
    api = sqlite_api
    before = head(api)
    for headers, status in ((api.as_("market-supervision"), 403), (api.as_("education", "auditor"), 403),
                            ({}, 401), (lead(api), 403)):  # the lead bureau is not responsible here
        r = post(api, item, "extension-request", EXTENSION, headers)
        assert r.status_code == status, (headers, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    ok(api, item, "extension-request", EXTENSION, api.as_("fire-rescue"))
    for headers, status in ((api.as_("fire-rescue"), 403), (api.as_("public-security"), 403),
                            (api.as_("education", "auditor"), 403), ({}, 401)):
        assert post(api, item, "extension-refusal", {"reason": "不同意"}, headers).status_code == status
    assert post(api, "not-a-uuid", "extension-request", EXTENSION, api.as_("fire-rescue")).status_code == 404
    assert head(api) == before + 1


def test_the_board_with_requests_equals_a_full_rebuild(sqlite_api: Api, item: str) -> None:
    api = sqlite_api
    other = report_hazard(api, description="二号隐患")
    ok(api, other, "assignment", ASSIGNMENT, lead(api))
    ok(api, item, "extension-request", EXTENSION, api.as_("fire-rescue"))
    ok(api, other, "extension-request", EXTENSION, api.as_("public-security"))
    ok(api, other, "extension-refusal", {"reason": "不同意"}, lead(api))
    api.settle()
    runner = api.platform.runner
    with api.platform.read_engine.connect() as conn:
        live = sorted(tuple(r) for r in conn.execute(sa.select(items)))
    runner.reset("rectification_board")
    runner.catch_up("rectification_board")
    with api.platform.read_engine.connect() as conn:
        rebuilt = sorted(tuple(r) for r in conn.execute(sa.select(items)))
    assert live == rebuilt
    pending = {r[0]: r for r in rebuilt}
    assert pending[item][items.c.keys().index("pending_extension_unit")] == "fire-rescue"
    assert pending[other][items.c.keys().index("pending_extension_unit")] is None


# -- the item page ---------------------------------------------------------------------------


def test_the_liaison_requests_on_the_item_page_and_the_lead_refuses_then_grants(sqlite_api: Api, item: str) -> None:
    api = sqlite_api
    api.settle()
    liaison = Browser(api, "fire-rescue")
    page = liaison.client.get(f"/rectifications/{item}")
    assert page.status_code == 200 and "申请延期" in page.text and "提交延期申请" in page.text
    assert f'href="/rectifications/{item}"' in liaison.client.get("/units/fire-rescue/work").text
    action = f"/units/fire-rescue/rectifications/{item}/extension-request"
    start = head(api)
    page_url = f"/rectifications/{item}"
    r = liaison.post(action, {"new_deadline": "2025-07-10", "reason": "设备采购中"}, form_page=page_url)
    assert r.status_code == 422 and "违反业务规则" in r.text and head(api) == start  # not later than 2025-07-20
    r = liaison.post(action, {"new_deadline": "2025-08-05", "reason": ""}, form_page=f"/rectifications/{item}")
    assert r.status_code == 422 and head(api) == start
    form = {"new_deadline": "2025-08-05", "reason": "设备采购中"}
    r = liaison.post(action, form, form_page=f"/rectifications/{item}")
    assert r.status_code == 303 and r.headers["location"].endswith("done=extension-requested"), r.text[:400]
    assert liaison.post(action, form, form_page=f"/rectifications/{item}").status_code == 303  # a replay
    assert head(api) == start + 1
    page = liaison.client.get(f"/rectifications/{item}")
    assert "延期申请待审核" in page.text and "2025-08-05" in page.text and "提交延期申请" not in page.text
    # Another unit's liaison posts for its own unit: the domain refuses, nothing stored.
    other = Browser(api, "market-supervision")
    r = other.post(f"/units/market-supervision/rectifications/{item}/extension-request", form,
                   form_page="/units/market-supervision/work")
    assert r.status_code in (403, 422) and head(api) == start + 1

    chief = Browser(api, "education", "lead")
    page = chief.client.get(f"/rectifications/{item}")
    assert "审核延期申请" in page.text and 'value="2025-08-05"' in page.text and "不同意延期" in page.text
    r = chief.post(f"/rectifications/{item}/refuse-extension", {"reason": "工期充足"},
                   form_page=f"/rectifications/{item}")
    assert r.status_code == 303 and r.headers["location"].endswith("done=extension-refused")
    r = liaison.post(action, {"new_deadline": "2025-08-01", "reason": "再次申请"}, form_page=f"/rectifications/{item}")
    assert r.status_code == 303
    r = chief.post(f"/rectifications/{item}/extend", {"new_deadline": "2025-08-01", "reason": "同意延期"},
                   form_page=f"/rectifications/{item}")
    assert r.status_code == 303 and r.headers["location"].endswith("done=extended")
    d = _detail(api, item)
    assert [h["type"] for h in d["history"]][-4:] == [
        "ExtensionRequested", "ExtensionRefused", "ExtensionRequested", "DeadlineExtended"]
    assert d["deadline"] == "2025-08-01" and d["pending_extension"] is None
    text = chief.client.get(f"/rectifications/{item}").text
    assert "不同意延期" in text and "申请延期" in text  # the history names the events in Chinese
    assert "ExtensionRe" not in text
