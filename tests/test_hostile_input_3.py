"""Issue 17, class 10 (smaller mismatches), the last items, on SQLite and PostgreSQL where a
store is involved:

- meetings: the number is the platform's (the next of the year), a meeting is not held before
  it was convened, and "the latest meeting" is the one with the latest scheduled date;
- the duty-log page takes as many schools as the API (500);
- the schema of a trimmed text says that blanks are refused;
- inbound CloudEvents in Kafka binary content mode (see also tests/test_kafka_ingest.py);
- ``lianxi init`` then ``lianxi demo`` (see tests/test_cli.py).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from events.errors import Conflict, InvariantViolated
from events.meetings import Meeting
from projections.meetings import latest_meeting
from tests.conftest import Api, Clock

LEAD_ROLE = ("education", "lead")


def schedule(api: Api, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    r = api.client.post("/api/v1/meetings", json=body, headers=api.as_(*LEAD_ROLE))
    return r.status_code, r.json()


def numbers(api: Api, year: int = 2025) -> list[int]:
    api.settle()
    r = api.client.get(f"/api/v1/meetings?year={year}", headers=api.as_(*LEAD_ROLE))
    return sorted(m["number"] for m in r.json())


# -- meetings: numbering, holding, "latest" ---------------------------------------------------------


def test_the_domain_takes_only_the_next_number() -> None:
    now = datetime(2025, 6, 30, 4, tzinfo=UTC)

    def convene(number: int, following: int) -> Meeting:
        return Meeting.schedule(lead="education", is_lead=True, year=2025, number=number, next_number=following,
                                title="会议", scheduled_for=date(2025, 7, 10), place="", now=now)

    assert convene(3, 3).number == 3
    with pytest.raises(InvariantViolated, match="not the next of 2025: the next is 3"):
        convene(4, 3)
    with pytest.raises(InvariantViolated, match="the next is 1"):
        convene(999, 1)
    with pytest.raises(Conflict, match="already scheduled"):
        convene(2, 3)


def test_the_platform_numbers_meetings_and_refuses_a_chosen_number_out_of_sequence(api: Api) -> None:
    head = api.platform.app.recorder.max_notification_id()
    status, body = schedule(api, {"scheduled_for": "2025-07-10", "number": 999})
    assert status == 422 and "the next is 1" in str(body["detail"])
    status, _ = schedule(api, {"scheduled_for": "2025-07-10", "number": 2})
    assert status == 422
    assert api.platform.app.recorder.max_notification_id() == head  # nothing stored

    assert schedule(api, {"scheduled_for": "2025-07-10"})[0] == 201  # assigned: 1
    assert schedule(api, {"scheduled_for": "2025-07-10", "number": 1})[0] == 409  # taken
    assert schedule(api, {"scheduled_for": "2025-08-10", "number": 2})[0] == 201  # the next: accepted
    assert schedule(api, {"scheduled_for": "2025-09-10", "number": 4})[0] == 422  # skips 3
    assert schedule(api, {"scheduled_for": "2025-09-10"})[0] == 201
    assert numbers(api) == [1, 2, 3]
    # Another year starts again at 1.
    status, _ = schedule(api, {"scheduled_for": "2026-01-10", "number": 2})
    assert status == 422
    assert schedule(api, {"scheduled_for": "2026-01-10"})[0] == 201
    assert numbers(api, 2026) == [1]


def test_meetings_convened_at_once_get_consecutive_numbers(api: Api) -> None:
    answers: list[int] = []

    def convene() -> None:
        answers.append(schedule(api, {"scheduled_for": "2025-07-10"})[0])

    threads = [threading.Thread(target=convene) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # A loser of the race is decided again with the next number; after three losses, 409.
    assert answers.count(201) >= 2 and set(answers) <= {201, 409}
    assert numbers(api) == list(range(1, answers.count(201) + 1))


def test_the_latest_meeting_is_the_one_with_the_latest_date_not_the_highest_number(api: Api) -> None:
    assert schedule(api, {"scheduled_for": "2025-12-01"})[0] == 201  # number 1, in December
    assert schedule(api, {"scheduled_for": "2025-08-01"})[0] == 201  # number 2, in August
    api.settle()
    with api.platform.read_engine.connect() as conn:
        latest = latest_meeting(conn)
    assert latest is not None and (latest["number"], latest["scheduled_for"]) == (1, "2025-12-01")
    assert schedule(api, {"scheduled_for": "2025-12-01"})[0] == 201  # number 3, the same day as 1
    api.settle()
    with api.platform.read_engine.connect() as conn:
        latest = latest_meeting(conn)
    assert latest is not None and latest["number"] == 3


def test_a_meeting_is_not_held_before_it_was_convened(api: Api, clock: Clock) -> None:
    status, body = schedule(api, {"scheduled_for": "2025-07-10"})  # convened on 2025-06-30
    assert status == 201
    mid = body["id"]
    clock.now = clock.now + timedelta(days=15)
    lead = api.as_(*LEAD_ROLE)

    def hold(day: str) -> tuple[int, str]:
        r = api.client.post(f"/api/v1/meetings/{mid}/held", headers=lead, json={
            "held_on": day, "attendance": ["education"], "minutes": "纪要"})
        return r.status_code, r.text

    for day in ("2025-06-29", "2025-01-01"):
        status, text = hold(day)
        assert status == 422 and "before the meeting was convened (2025-06-30)" in text, text
    assert hold("2025-06-30")[0] == 200  # the day it was convened is fine (an urgent meeting)
