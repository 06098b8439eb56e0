"""Issue 17, hostile input round two, the remaining classes, each on SQLite and PostgreSQL:

6. a write's audit row commits in the write's own transaction (group commit included);
7. assignments only by the lead, whatever path creates a rectification;
8. every create with an Idempotency-Key replays the first answer for the same body;
9. pinned checkpoint trust;
10. the smaller mismatches.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from contracts.catalogue import default_catalogue
from services.security.audit import audit_log
from services.web.session import SIGNIN_COOKIE
from tests.conftest import Api, Clock, make_platform, register_schools

DUTY = {"duty_code": "fire-rescue.inspection", "school_ids": ["T001"], "occurred_on": "2025-06-01",
        "summary": "消防安全检查"}
HAZARD = {"reported_by": {"kind": "unit", "units": []}, "school_id": "T001", "category": "fire",
          "severity": "general", "description": "灭火器过期", "found_on": "2025-06-01"}


@pytest.fixture(params=["direct", "group-commit"])
def county(request: pytest.FixtureRequest, database_url: str, clock: Clock) -> Iterator[Api]:
    """An API over a platform with two schools; with and without the group commit."""
    p = make_platform(database_url, clock=clock, group_commit=request.param == "group-commit")
    p.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    p.runner.catch_up()
    api = Api(p)
    register_schools(api, 2)
    yield api
    p.close()


def audit_rows(api: Api) -> list[dict[str, Any]]:
    with api.platform.write_engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.id)).mappings()]


# -- 6. the audit row in the write's transaction ----------------------------------------------------


def lose_the_middlewares_own_rows(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The middleware's own commit (after the answer is known) never happens, as when the
    process dies right after the write's commit. Returns the rows it would have written."""
    lost: list[dict[str, Any]] = []

    async def dies(row: dict[str, Any]) -> None:
        lost.append(row)
        raise RuntimeError("killed before the audit commit")

    monkeypatch.setattr(api.platform.audit, "append_async", dies)
    return lost


def test_every_kind_of_write_commits_its_audit_row_with_the_write(county: Api,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    c = county.client
    fire = county.as_("fire-rescue")
    county.token("fire-rescue")  # issued before the middleware's commits are cut off
    lost = lose_the_middlewares_own_rows(county, monkeypatch)
    before = len(audit_rows(county))
    duty = c.post("/api/v1/duty-logs", json=DUTY, headers=fire)  # async route, awaits the commit
    hazard = c.post("/api/v1/hazards", json=HAZARD, headers=fire)  # sync route, decide/commit
    email = c.put("/api/v1/inbox/channels/webhook", json={"url": "https://hooks.example.org/lx"}, headers=fire)
    marked = c.post("/api/v1/inbox/read", json={"all": True}, headers=fire)  # a table write, no event
    assert [r.status_code for r in (duty, hazard, email, marked)] == [201, 201, 200, 200], [
        r.text for r in (duty, hazard, email, marked)]
    rows = audit_rows(county)[before:]
    got = [(r["action"], r["status"], r["outcome"], r["unit"]) for r in rows]
    assert got == [
        ("POST /api/v1/duty-logs", 201, "ok", "fire-rescue"),
        ("POST /api/v1/hazards", 201, "ok", "fire-rescue"),
        ("PUT /api/v1/inbox/channels/webhook", 200, "ok", "fire-rescue"),
        ("POST /api/v1/inbox/read", 200, "ok", "fire-rescue"),
    ]
    assert rows[0]["resource_id"] == duty.json()["id"] and rows[1]["resource_id"] == hazard.json()["id"]
    assert not lost  # nothing was left for the middleware to write


def test_requests_that_wrote_nothing_still_get_the_middlewares_row(county: Api) -> None:
    c = county.client
    fire = county.as_("fire-rescue")
    first = c.post("/api/v1/duty-logs", json=DUTY, headers={**fire, "Idempotency-Key": "k1"})
    replay = c.post("/api/v1/duty-logs", json=DUTY, headers={**fire, "Idempotency-Key": "k1"})
    refused = c.post("/api/v1/duty-logs", json=DUTY, headers=county.as_("education", "auditor"))
    wrong = c.post("/api/v1/duty-logs", json={**DUTY, "school_ids": ["NOPE"]}, headers=fire)
    assert (first.status_code, replay.status_code, refused.status_code, wrong.status_code) == (201, 201, 403, 422)
    rows = [r for r in audit_rows(county) if r["action"] == "POST /api/v1/duty-logs"]
    # one row per request: the write's (carried by its commit), the replay's, the refusal's, the rejection's
    assert [(r["status"], r["outcome"]) for r in rows] == [(201, "ok"), (201, "ok"), (403, "refused"),
                                                           (422, "rejected")]
    assert rows[0]["resource_id"] == rows[1]["resource_id"] == first.json()["id"]


def test_a_commit_that_fails_leaves_no_row_and_the_refusal_is_recorded(county: Api) -> None:
    """A write whose commit is refused (here: the same school registered twice) leaves no
    carried row behind; the middleware records the failure instead."""
    lead = county.as_("education", "lead")
    school = {"id": "T001", "name": "重名学校", "town": "满都拉图镇", "kind": "primary"}
    again = county.client.post("/api/v1/schools", json=school, headers=lead)
    assert again.status_code == 409, again.text
    rows = [r for r in audit_rows(county) if r["action"] == "POST /api/v1/schools"]
    assert [(r["status"], r["outcome"]) for r in rows][-1] == (409, "rejected")
    assert sum(r["outcome"] == "ok" for r in rows) == 2  # the fixture's two schools, one row each


def test_a_page_form_write_carries_its_row(county: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page's POST (sign-in creates a session, a table write) carries its row too; its
    status is the page's redirect."""
    token = county.token("fire-rescue")
    lose_the_middlewares_own_rows(county, monkeypatch)
    county.client.get("/signin")
    csrf = county.client.cookies.get(SIGNIN_COOKIE) or ""
    signed = county.client.post("/signin", data={"token": token, "csrf_token": csrf}, follow_redirects=False)
    assert signed.status_code == 303, signed.text[:300]
    row = [r for r in audit_rows(county) if r["action"] == "POST /signin"][-1]
    assert (row["status"], row["outcome"]) == (303, "ok")
