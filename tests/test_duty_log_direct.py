"""POST /duty-logs skips FastAPI's dependency solving (services/api/routes/duty_log.py
``DutyLogRoute``). Every answer must be the one the solved route gives: the same endpoint is
mounted a second time as a plain APIRoute and both get the same requests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts.api import Created
from services.api.routes.duty_log import log_duty
from tests.conftest import Api, register_schools

REFERENCE = "/api/v1/reference/duty-logs"
GOOD = {"duty_code": "fire-rescue.inspection", "school_ids": ["T001"], "occurred_on": "2025-06-01",
        "summary": "消防安全检查"}


@pytest.fixture
def county(sqlite_api: Api) -> Api:
    register_schools(sqlite_api, 2)
    # The solved route: FastAPI's own parameter handling for the same endpoint.
    sqlite_api.client.app.router.add_api_route(  # type: ignore[attr-defined]
        REFERENCE, log_duty, methods=["POST"], status_code=201, response_model=Created)
    return sqlite_api


def both(api: Api, content: bytes, headers: dict[str, str]) -> tuple[Any, Any]:
    answers = []
    for path in ("/api/v1/duty-logs", REFERENCE):
        r = api.client.post(path, content=content, headers=headers)
        body = r.json()
        body.pop("instance", None)  # names the path asked
        answers.append((r.status_code, r.headers["content-type"], r.headers.get("www-authenticate"), body))
    return answers[0], answers[1]


def test_bad_input_is_answered_as_the_solved_route_answers_it(county: Api) -> None:
    token = county.as_("fire-rescue")
    as_json = {**token, "Content-Type": "application/json"}
    good = json.dumps(GOOD, ensure_ascii=False).encode()
    cases: list[tuple[bytes, dict[str, str], int]] = [
        (good, {"Content-Type": "application/json"}, 401),  # no token
        (good, {"Authorization": "Basic abc", "Content-Type": "application/json"}, 401),
        (good, {"Authorization": "Bearer lx_nope", "Content-Type": "application/json"}, 401),
        (good, {"Authorization": "Bearer", "Content-Type": "application/json"}, 401),
        (b'{"duty_code": ', as_json, 422),  # malformed JSON
        (b'{"duty_code": ', {"Content-Type": "application/json"}, 422),  # ... refused before authentication
        (b"", as_json, 422),
        (b"null", as_json, 422),
        (b"\x91\xfa{}", as_json, 400),  # not Unicode text at all (found by schemathesis)
        (b"[1, 2]", as_json, 422),
        (good, {**token, "Content-Type": "text/plain"}, 422),
        (good, token, 422),  # no Content-Type: not read as JSON
        (json.dumps({**GOOD, "agency": "education"}).encode(), as_json, 422),
        (json.dumps({**GOOD, "school_ids": ["T999"]}).encode(), as_json, 422),  # a broken rule
        (json.dumps({**GOOD, "occurred_on": "2025-13-01"}).encode(), {**as_json, "Idempotency-Key": ""}, 422),
        (good, {**as_json, "Idempotency-Key": "k" * 201}, 422),
        (good, {**county.as_("education", "auditor"), "Content-Type": "application/json"}, 403),
    ]
    for content, headers, status in cases:
        direct, solved = both(county, content, headers)
        assert direct == solved, (content, headers)
        assert direct[0] == status, (content, headers, direct)
        assert direct[1].startswith("application/problem+json")


def test_a_write_and_its_replay_match_the_solved_route(county: Api) -> None:
    headers = {**county.as_("fire-rescue"), "Content-Type": "application/vnd.lianxi+json", "Idempotency-Key": "k1"}
    content = json.dumps(GOOD, ensure_ascii=False).encode()
    first = county.client.post("/api/v1/duty-logs", content=content, headers=headers)
    assert first.status_code == 201 and first.headers["content-type"] == "application/json"
    replay = county.client.post(REFERENCE, content=content, headers=headers)
    assert replay.status_code == 201
    assert replay.json() == {**first.json(), "replayed": True}
    assert first.json()["replayed"] is False and first.json()["position"] > 0
    again = county.client.post("/api/v1/duty-logs", content=content, headers=headers)
    assert again.json() == replay.json()
