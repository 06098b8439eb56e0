"""The audit trail (等保 2.0): who, when, what, outcome — for writes, refusals, raw-log reads
and reads of another unit's data; append-only; read by auditors through GET /api/v1/audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from contracts.catalogue import default_catalogue
from services.accounts.service import SignInFailed
from services.api.deps import PrincipalDep
from services.kernel.principal import REVIEW_GROUP, Principal
from services.security.audit import audit_log
from tests.conftest import Api, register_schools

DUTY = {"duty_code": "fire-rescue.inspection", "school_ids": ["T001"], "occurred_on": "2025-06-01",
        "summary": "消防安全检查"}


def trail(api: Api, **query: Any) -> list[dict[str, Any]]:
    """Every row, through the API, following cursors."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 3, **query, **({"cursor": cursor} if cursor else {})}
        r = api.client.get("/api/v1/audit", params=params, headers=api.as_("education", "auditor"))
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return [i for i in items if i["action"] != "GET /api/v1/audit"]


def rows(api: Api) -> list[dict[str, Any]]:
    return api.platform.audit.page(limit=10_000)


@pytest.fixture
def county(sqlite_api: Api) -> Api:
    register_schools(sqlite_api, 2)
    return sqlite_api


def test_a_write_is_recorded_with_who_when_what_and_outcome(county: Api) -> None:
    r = county.client.post("/api/v1/duty-logs", json=DUTY, headers=county.as_("fire-rescue"))
    assert r.status_code == 201
    row = [x for x in trail(county) if x["action"] == "POST /api/v1/duty-logs"][-1]
    principal = county.platform.tokens.authenticate(county.token("fire-rescue"))
    assert principal is not None
    assert row["actor"] == principal.actor and row["token_id"] == principal.token_id
    assert row["role"] == "liaison" and row["unit"] == "fire-rescue"
    assert row["at"] == "2025-06-30T04:00:00.000000Z"  # the platform clock
    assert row["target"] == "/api/v1/duty-logs" and row["status"] == 201 and row["outcome"] == "ok"
    assert row["resource_id"] == r.json()["id"]
    # The lead's school registrations (the fixture) are writes too.
    assert sum(x["action"] == "POST /api/v1/schools" and x["unit"] == "education" for x in trail(county)) == 2


def test_refusals_are_recorded(county: Api) -> None:
    c = county.client
    assert c.post("/api/v1/duty-logs", json=DUTY).status_code == 401
    assert c.get("/api/v1/agencies", headers={"Authorization": "Bearer lx_guess"}).status_code == 401
    assert c.get("/api/v1/agencies/fire-rescue/ledger", headers=county.as_("public-security")).status_code == 403
    assert c.post("/api/v1/duty-logs", json=DUTY, headers=county.as_("education", "auditor")).status_code == 403
    got = [(x["actor"].split(":")[0], x["action"], x["status"], x["outcome"]) for x in trail(county, outcome="refused")]
    assert got == [
        ("anonymous", "POST /api/v1/duty-logs", 401, "refused"),
        ("token", "GET /api/v1/agencies", 401, "refused"),
        ("liaison", "GET /api/v1/agencies/{code}/ledger", 403, "refused"),
        ("auditor", "POST /api/v1/duty-logs", 403, "refused"),
    ]
    forbidden = trail(county, outcome="refused")[2]
    assert forbidden["unit"] == "public-security" and forbidden["target_unit"] == "fire-rescue"
    assert "may not read" in forbidden["detail"]


def test_reads_of_another_units_data_and_of_the_raw_log_are_recorded_own_reads_are_not(county: Api) -> None:
    c = county.client
    before = len(rows(county))
    assert c.get("/api/v1/agencies/fire-rescue/ledger", headers=county.as_("fire-rescue")).status_code == 200
    assert c.get("/api/v1/agencies", headers=county.as_("fire-rescue")).status_code == 200
    assert c.get("/api/v1/schools", headers=county.as_("fire-rescue")).status_code == 200
    assert len(rows(county)) == before  # own unit and shared catalogue: not audited
    assert c.get("/api/v1/agencies/fire-rescue/ledger", headers=county.as_("education", "lead")).status_code == 200
    assert c.get("/api/v1/events", headers=county.as_("education", "auditor")).status_code == 200
    new = rows(county)[before:]
    assert [(x["role"], x["action"], x["target_unit"], x["outcome"]) for x in new] == [
        ("lead", "GET /api/v1/agencies/{code}/ledger", "fire-rescue", "ok"),
        ("auditor", "GET /api/v1/events", "*", "ok"),
    ]


def test_only_auditors_read_the_trail_and_filters_and_cursors_work(county: Api) -> None:
    for agency, role in (("fire-rescue", "liaison"), ("education", "lead")):
        r = county.client.get("/api/v1/audit", headers=county.as_(agency, role))
        assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert county.client.get("/api/v1/audit").status_code == 401
    everything = trail(county)
    ids = [x["id"] for x in everything]
    assert ids == sorted(set(ids))  # no repeats, oldest first, across pages of 3
    assert {x["unit"] for x in trail(county, unit="education")} == {"education"}
    assert trail(county, since="2025-07-01") == []
    assert len(trail(county, since="2025-06-30", until="2025-07-01")) == len(everything)
    r = county.client.get("/api/v1/audit?cursor=bm90LW91cnM", headers=county.as_("education", "auditor"))
    assert r.status_code == 400
    # Reading the trail is itself recorded.
    assert any(x["action"] == "GET /api/v1/audit" and x["role"] == "auditor" for x in rows(county))


def test_the_trail_has_no_write_path_in_the_api(county: Api) -> None:
    h = county.as_("education", "auditor")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert county.client.request(method, "/api/v1/audit", headers=h).status_code == 405
        assert county.client.request(method, "/api/v1/audit/1", headers=h).status_code in (404, 405)


def test_the_table_refuses_update_and_delete(api: Api) -> None:
    """On both backends: even a direct SQL client cannot alter the trail."""
    assert api.client.get("/api/v1/agencies").status_code == 401
    engine = api.platform.write_engine
    before = rows(api)
    assert before
    for stmt in (audit_log.update().values(outcome="ok"), audit_log.delete()):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(stmt)
    if engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE audit_log"))
    assert rows(api) == before


def test_rebuilding_read_models_keeps_the_trail(county: Api) -> None:
    county.client.post("/api/v1/duty-logs", json=DUTY, headers=county.as_("fire-rescue"))
    before = rows(county)
    for name in county.platform.runner.projections:
        county.platform.runner.reset(name)
    county.platform.runner.catch_up()
    assert rows(county) == before


def test_limit_refusals_name_the_credential(sqlite_url: str) -> None:
    from contracts.catalogue import default_catalogue
    from tests.conftest import FIXED_NOW, make_platform

    p = make_platform(sqlite_url, max_body_bytes=100, rate_limit_per_minute=1)
    p.app.register_catalogue(default_catalogue(), now=FIXED_NOW.replace(year=2024))
    p.runner.catch_up()
    api = Api(p)
    try:
        h = api.as_("fire-rescue")
        assert api.client.post("/api/v1/duty-logs", json=DUTY, headers=h).status_code == 413
        assert api.client.post("/api/v1/duty-logs", json=DUTY, headers=h).status_code == 429
        got = [(x["unit"], x["action"], x["status"]) for x in rows(api)]
        assert got == [("fire-rescue", "POST /api/v1/duty-logs", 413), ("fire-rescue", "POST /api/v1/duty-logs", 429)]
    finally:
        p.close()


def unguarded(unit: str, principal: PrincipalDep) -> dict[str, str]:
    return {"unit": unit}


def test_a_unit_named_in_the_path_counts_as_whose_data_is_read(county: Api) -> None:
    """A new route that forgets the read guard is still audited when it names another unit."""
    from fastapi.testclient import TestClient

    from services.api.main import create_app

    app = create_app(county.platform)
    app.add_api_route("/api/v1/_units/{unit}/things", unguarded, methods=["GET"])
    client = TestClient(app)
    before = len(rows(county))
    h = county.as_("fire-rescue")
    assert client.get("/api/v1/_units/fire-rescue/things", headers=h).status_code == 200
    assert len(rows(county)) == before  # its own unit
    assert client.get("/api/v1/_units/market-supervision/things", headers=h).status_code == 200
    [row] = rows(county)[before:]
    assert (row["unit"], row["target_unit"], row["action"]) == (
        "fire-rescue", "market-supervision", "GET /api/v1/_units/{unit}/things")


def test_pages_are_audited_like_the_api(county: Api) -> None:
    """A signed-in page of another unit, and the event-log page, leave a row; one's own unit's page does not."""
    from services.web.session import SESSION_COOKIE, sessions_for

    def cookie(agency: str, role: str) -> dict[str, str]:
        principal = county.platform.tokens.authenticate(county.token(agency, role))
        assert principal is not None
        session_id, _ = sessions_for(county.platform).start(principal, county.platform.clock())
        return {"Cookie": f"{SESSION_COOKIE}={session_id}"}

    c = county.client
    before = len(rows(county))
    assert c.get("/units/fire-rescue", headers=cookie("fire-rescue", "liaison")).status_code == 200
    assert len(rows(county)) == before
    assert c.get("/units/fire-rescue", headers=cookie("education", "lead")).status_code == 200
    assert c.get("/events", headers=cookie("education", "auditor")).status_code == 200
    got = [(x["role"], x["action"], x["target_unit"]) for x in rows(county)[before:]]
    assert got == [("lead", "GET /units/{code}", "fire-rescue"), ("auditor", "GET /events", "*")]


def test_an_audit_row_commits_in_the_same_transaction_as_events(database_url: str) -> None:
    """The group commit's transaction carries audit rows (services/store/database.py SideRowsInTransaction):
    they land with the events, and a batch whose events fail leaves no row behind."""
    from eventsourcing.persistence import IntegrityError

    from events.schools import School
    from services.security.audit import AUDIT_COLUMNS
    from tests.conftest import make_platform

    platform = make_platform(database_url)
    try:
        def row(action: str) -> tuple[str, tuple[str, ...], list[tuple[Any, ...]]]:
            values = {c: None for c in AUDIT_COLUMNS} | {
                "at": "2025-06-30T04:00:00.000000Z", "actor": "test", "action": action, "target": "/x",
                "status": 201, "outcome": "ok"}
            return ("audit_log", AUDIT_COLUMNS, [tuple(values[c] for c in AUDIT_COLUMNS)])

        def school(sid: str) -> School:
            return School.register(by_agency="education", by_lead=True, school_id=sid, name="学校", town="镇",
                                   kind="primary", boarding=False, canteen=False, school_bus=False,
                                   now=platform.clock())

        platform.app.save(school("A1"), side_rows=[row("with A1")])
        with pytest.raises(IntegrityError):
            platform.app.save(school("A2"), school("A1"), side_rows=[row("with a conflict")])
        actions = [r["action"] for r in platform.audit.page(limit=100)]
        assert actions == ["with A1"]
        assert platform.app.school_exists("A1") and not platform.app.school_exists("A2")
    finally:
        platform.close()


def test_writes_through_group_commit_are_audited(database_url: str) -> None:
    """`lianxi serve` runs with group commit on: the rows ride the events' transactions."""
    from tests.conftest import make_platform

    platform = make_platform(database_url, group_commit=True)
    try:
        platform.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
        api = Api(platform)
        register_schools(api, 1)
        r = api.client.post("/api/v1/duty-logs", json=DUTY, headers=api.as_("fire-rescue"))
        assert r.status_code == 201, r.text
        refused = api.client.post("/api/v1/duty-logs", json=DUTY, headers=api.as_("fire-rescue", "auditor"))
        assert refused.status_code == 403
        by_action = [(x["action"], x["status"], x["resource_id"]) for x in rows(api)]
        assert ("POST /api/v1/duty-logs", 201, r.json()["id"]) in by_action
        assert ("POST /api/v1/duty-logs", 403, None) in by_action
        assert sum(a == "POST /api/v1/schools" for a, _, _ in by_action) == 1
    finally:
        platform.close()


def test_the_trail_names_people_beside_account_ids_to_the_lead_and_auditors_only(county: Api) -> None:
    """The rows hold account ids; the API adds the person's name for its readers (auditors), and
    the one rule behind it gives names to the lead and auditors and ids only to anyone else."""
    platform = county.platform
    account, initial = platform.accounts.create(
        "test", account_name="fire.liaison", display_name="测试·消防联络员", unit="fire-rescue", role="liaison",
        phone=None, known_units=platform.known_agencies(), now=platform.clock())
    _, token = platform.tokens.issue(agency="fire-rescue", role="liaison", label="test-personal",
                                     known_agencies=platform.known_agencies(), account_id=account.account_id)
    assert county.client.post("/api/v1/duty-logs", headers={"Authorization": f"Bearer {token}"},
                              json=DUTY).status_code == 201
    with pytest.raises(SignInFailed):  # a wrong password is audited against the account
        platform.accounts.sign_in("fire.liaison", initial + "x", None, platform.clock())
    everything = trail(county)
    acted = [x for x in everything if x["token_id"] == account.account_id]
    assert acted and all(x["actor_name"] == "测试·消防联络员" for x in acted)
    failed = [x for x in everything if x["resource_id"] == account.account_id and x["token_id"] is None]
    assert failed and all(x["resource_name"] == "测试·消防联络员" for x in failed)
    assert all(x["actor_name"] is None for x in everything if x["token_id"] != account.account_id)
    # the rule, for every role: names for the lead and auditors, account ids alone for a liaison
    lead, auditor, liaison = (Principal(token_id="t", agency=u, role=r, label="test") for u, r in
                              (("education", "lead"), (REVIEW_GROUP, "auditor"), ("fire-rescue", "liaison")))
    assert platform.accounts.names_for(lead) == platform.accounts.names_for(auditor) == {
        account.account_id: "测试·消防联络员"}
    assert platform.accounts.names_for(liaison) == {}
    with platform.read_engine.connect() as conn:  # the names are added on reading, never stored
        assert "测试·" not in " ".join(str(v) for row in conn.execute(sa.select(audit_log)).all() for v in row)
