"""Every figure true as of its date: the rectification counts of the brief, the ledger (for its
period and as_of) and the dashboard equal a brute-force count over the event log up to that
date (recorded by the end of the county day), for random (unit, date) pairs of a demo year."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
import pytest

from contracts.catalogue import default_catalogue
from events.base import COUNTY_TZ
from events.stored import RUNNING
from projections.base import type_of_topic
from projections.meetings import list_meetings
from projections.rectification_board import unit_stats
from services.demo.year import run_demo
from services.meetings.brief_data import build_brief
from services.platform import Platform
from services.web.pages.dashboard import dashboard_data
from tests.conftest import Api, make_platform

YEAR = 2024
NOW = datetime(2025, 3, 1, tzinfo=UTC)
UNITS = [u.code for u in default_catalogue().units.units]


@dataclass
class Rect:
    status: str = "reported"
    lead: str | None = None
    deadline: str | None = None
    closed_on: str | None = None


def end_of_day(day: date) -> str:
    return (datetime.combine(day + timedelta(days=1), time(0), tzinfo=COUNTY_TZ) - timedelta(microseconds=1)) \
        .astimezone(UTC).isoformat()


def brute_force(log: list[dict[str, Any]], unit: str, day: date, start: date, end: date) -> dict[str, int]:
    """Open/overdue/closed-in-period of the items ``unit`` leads, from the raw log only."""
    cut = end_of_day(day)
    items: dict[str, Rect] = {}
    for e in log:
        if datetime.fromisoformat(e["timestamp"]).astimezone(UTC).isoformat() > cut:
            continue
        t, r = e["type"], items.setdefault(e["oid"], Rect())
        if t == "RectificationAssigned":
            r.status, r.lead, r.deadline = "assigned", e["lead_unit"], e["deadline"]
        elif t == "RectificationProgressReported":
            r.status = "in_progress"
        elif t == "RectificationCompleted":
            r.status = "completed"
        elif t == "RectificationVerified":
            r.status, r.closed_on = "closed", e["occurred_on"]
        elif t == "RectificationRejected":
            r.status, r.deadline, r.closed_on = "reopened", e["new_deadline"], None
        elif t == "DeadlineExtended":
            r.deadline = e["new_deadline"]
    led = [r for r in items.values() if r.lead == unit]
    last = min(end, day).isoformat()
    return {
        "open": sum(1 for r in led if r.status != "closed"),
        "overdue": sum(1 for r in led if r.status in RUNNING and r.deadline is not None
                       and r.deadline < day.isoformat()),
        "closed": sum(1 for r in led if r.status == "closed" and r.closed_on is not None
                      and start.isoformat() <= r.closed_on <= last),
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, list[dict[str, Any]]]]:
    p = make_platform(f"sqlite:///{tmp_path_factory.mktemp('asof') / 'demo.db'}")
    run_demo(p.app, default_catalogue(), schools=30, year=YEAR, seed=5, now=NOW)
    p.runner.catch_up()
    log = []
    for n in p.app.recorder.select_notifications(start=1, limit=10_000_000):
        name = type_of_topic(n.topic)
        if name.startswith(("Rectification", "Hazard", "Deadline")):
            d = orjson.loads(n.state)
            log.append({**d, "type": name, "oid": str(n.originator_id)})
    yield p, log
    p.close()


def test_unit_stats_equal_a_count_over_the_log_for_random_units_and_days(
        demo: tuple[Platform, list[dict[str, Any]]]) -> None:
    p, log = demo
    rng = random.Random(15)
    pairs = [(rng.choice(["education", "fire-rescue", "market-supervision", "public-security", *UNITS]),
              date(YEAR, 1, 1) + timedelta(days=rng.randrange(430))) for _ in range(40)]
    nonzero = 0
    with p.read_engine.connect() as conn:
        for unit, day in pairs:
            start, end = date(day.year, 1, 1), date(day.year, 12, 31)
            got = unit_stats(conn, unit, today=day, period_start=start, period_end=end)
            want = brute_force(log, unit, day, start, end)
            assert {k: got[k] for k in want} == want, (unit, day)
            assert got["as_of"] == day.isoformat()
            nonzero += bool(want["open"] or want["closed"])
    assert nonzero >= 10  # the pairs exercise real items, not only empty units


def test_each_held_meeting_brief_shows_the_counts_of_its_data_date(
        demo: tuple[Platform, list[dict[str, Any]]]) -> None:
    p, log = demo
    with p.read_engine.connect() as conn:
        meetings = [m for m in list_meetings(conn, YEAR) if m["status"] == "held"]
    assert len(meetings) == 4
    seen = set()
    for m in meetings:
        data = build_brief(p.read_engine, p.runner.catch_up, m["meeting_id"], NOW.date())
        assert data is not None
        day = date.fromisoformat(data["as_of"])
        start, end = date.fromisoformat(data["period_start"]), date.fromisoformat(data["period_end"])
        for row in data["units"]:
            want = brute_force(log, row["code"], day, start, end)
            assert (row["rect_open"], row["rect_overdue"]) == (want["open"], want["overdue"]), (m["number"], row)
        seen.add(tuple(r["rect_open"] for r in data["units"]))
    assert len(seen) > 1  # different meetings, different figures


def test_ledger_rectification_block_follows_period_and_as_of(demo: tuple[Platform, list[dict[str, Any]]]) -> None:
    p, log = demo
    api = Api(p)
    lead = api.as_("education", "lead")
    for query, day, start, end in (
        ({"period": str(YEAR - 1)}, date(YEAR - 1, 12, 31), date(YEAR - 1, 1, 1), date(YEAR - 1, 12, 31)),
        ({"period": f"{YEAR}-Q2"}, date(YEAR, 6, 30), date(YEAR, 4, 1), date(YEAR, 6, 30)),
        ({"period": str(YEAR), "as_of": f"{YEAR}-09-15"}, date(YEAR, 9, 15), date(YEAR, 1, 1), date(YEAR, 12, 31)),
        ({"period": str(YEAR)}, date(YEAR, 12, 31), date(YEAR, 1, 1), date(YEAR, 12, 31)),
    ):
        for unit in ("education", "fire-rescue"):
            r = api.client.get(f"/api/v1/agencies/{unit}/ledger", params=query, headers=lead)
            assert r.status_code == 200, r.text
            block = r.json()["rectifications"]
            want = brute_force(log, unit, day, start, end)
            assert {k: block[k] for k in want} == want, (query, unit)
            assert block["as_of"] == day.isoformat()
    empty = api.client.get("/api/v1/agencies/education/ledger", params={"period": str(YEAR - 1)}, headers=lead)
    assert empty.json()["rectifications"]["open"] == 0 == empty.json()["rectifications"]["overdue"]


def test_dashboard_counts_are_as_of_its_day(demo: tuple[Platform, list[dict[str, Any]]]) -> None:
    p, log = demo
    day = date(YEAR, 5, 20)
    with p.read_engine.connect() as conn:
        data = dashboard_data(conn, day, {u: u for u in ("education", "fire-rescue", "public-security")})
    by_code = {u["code"]: u for u in data["unit_rows"]}
    for code, u in by_code.items():
        want = brute_force(log, code, day, date(YEAR, 1, 1), date(YEAR, 12, 31))
        assert (u["rect"]["open"], u["rect"]["overdue"], u["rect"]["closed"]) == \
            (want["open"], want["overdue"], want["closed"])
    assert data["totals"]["open"] == sum(u["rect"]["open"] for u in by_code.values())
