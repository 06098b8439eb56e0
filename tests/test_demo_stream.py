"""The demo's shortcuts agree with what they stand in for (services/demo/created.py, year.py)."""

from __future__ import annotations

import random
from bisect import bisect
from datetime import UTC, datetime

import pytest

from events.base import derive_id
from events.duty_log import DutyRecord
from services.demo.created import Created, derived_ids
from services.demo.year import FINDINGS_CUM, FINDINGS_TOTAL, FINDINGS_WEIGHTS


def test_derived_ids_are_derive_id() -> None:
    ids = derived_ids("demo", "7", "2024")
    assert [ids(str(n)) for n in range(200)] == [derive_id("demo", "7", "2024", str(n)) for n in range(200)]


def test_the_planners_draws_are_randoms_own() -> None:
    """plan_year draws randint and choices as CPython's Random does, in fewer calls."""
    ours, theirs = random.Random(3), random.Random(3)

    def below(n: int) -> int:
        k = n.bit_length()
        r = ours.getrandbits(k)
        while r >= n:
            r = ours.getrandbits(k)
        return r

    for n in (1, 2, 11, 51, 60, 92):
        assert [below(n) for _ in range(300)] == [theirs.randrange(n) for _ in range(300)]
    assert ([bisect(FINDINGS_CUM, ours.random() * FINDINGS_TOTAL, 0, 3) for _ in range(300)]
            == [theirs.choices((0, 1, 2, 3), FINDINGS_WEIGHTS)[0] for _ in range(300)])


def test_a_built_event_that_differs_from_the_domains_stops_the_demo() -> None:
    made = Created(DutyRecord, DutyRecord.DutyPerformed)
    rid = derive_id("t", "1")
    now = datetime(2024, 3, 1, 2, tzinfo=UTC)
    fields = dict(agency="education", occurred_on="2024-03-01", duty_code="d", school_ids=["S00001"],
                  summary="s", findings={"count": 0, "text": ""}, evidence=[], logged_by="x", request_digest="")
    domain = DutyRecord._create(DutyRecord.DutyPerformed, id=rid, timestamp=now, event_id=str(rid), **fields)
    assert made.unchecked("k")
    made.compare("k", made(rid, now, **fields), domain)
    assert not made.unchecked("k")
    other = DutyRecord._create(DutyRecord.DutyPerformed, id=rid, timestamp=now, event_id=str(rid),
                               **{**fields, "summary": "t"})
    with pytest.raises(RuntimeError, match="differs from the domain"):
        made.compare("j", made(rid, now, **fields), other)
