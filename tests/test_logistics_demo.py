"""The demo year's logistics: targets, recognitions across the year, compliance records with
realistic gaps (recorded as the missing-record job would), and petitions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from contracts.catalogue import default_catalogue
from projections.targets import logistics_overview
from services.demo.year import run_demo
from services.logistics.jobs import run_compliance_sweep
from services.platform import Platform
from tests.conftest import make_platform

NOW = datetime(2025, 11, 30, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, dict[str, object]]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    p = make_platform(url)
    counts = run_demo(p.app, default_catalogue(), schools=40, year=2025, seed=7, now=NOW)
    p.runner.catch_up()
    yield p, counts
    p.close()


def test_demo_writes_every_part_of_logistics(demo: tuple[Platform, dict[str, object]]) -> None:
    p, counts = demo
    logistics = counts["logistics"]
    assert isinstance(logistics, dict)
    assert logistics["targets"] == 8 + 4  # the catalogue's, and four towns' water-saving quotas
    assert logistics["recognitions"] > 40 and logistics["withdrawals"] == 1
    assert logistics["compliance_records"] > 500 and logistics["missing"] > 0
    assert 18 + 20 <= logistics["petitions"] <= 18 + 26  # last year's, and this year's received by now
    with p.read_engine.connect() as conn:
        months = {r[0][5:7] for r in conn.execute(sa.text(
            "select awarded_on from rm_recognitions where awarded_on >= '2025-01-01'"))}
        assert len(months) >= 6  # awarded across the year
        kinds = {r[0] for r in conn.execute(sa.text("select distinct kind from rm_recognitions"))}
        assert {"green-school", "water-saving-school", "garbage-sorting-demo-school", "bright-kitchen"} <= kinds
        overview = logistics_overview(conn, p.app.calendar, 2025, date(2025, 11, 30),
                                      default_catalogue().targets.targets)
    rates = overview["compliance"]["overall"]
    # realistic gaps: most on time, some late, some missing
    assert rates["on_time_rate"] > 0.8 and rates["late"] > 0 and rates["missing"] > 0
    green = next(t for t in overview["targets"] if t["code"] == "green-school-share")["county"]
    assert 0.5 < green["value"] < 0.85 and green["target"] == 0.7
    # the September withdrawal shows in the trend
    assert green["trend"]["2025-09"] < green["trend"]["2025-08"]
    petitions = overview["petitions"]
    assert petitions["received"] > 0 and petitions["previous_year"]["received"] == 18
    assert petitions["handling_rate"] is not None and petitions["satisfaction_rate"] is not None


def test_demo_gaps_are_exactly_the_jobs(demo: tuple[Platform, dict[str, object]]) -> None:
    """The demo records gaps as the job would: running the job as of the demo's now finds
    nothing left to record."""
    p, _ = demo
    result = run_compliance_sweep(p.job_context(), NOW)
    assert (result.candidates, result.recorded) == (0, 0)


def test_demo_is_deterministic(tmp_path_factory: pytest.TempPathFactory,
                               demo: tuple[Platform, dict[str, object]]) -> None:
    _, counts = demo
    url = f"sqlite:///{tmp_path_factory.mktemp('demo2') / 'demo.db'}"
    q = make_platform(url)
    try:
        again = run_demo(q.app, default_catalogue(), schools=40, year=2025, seed=7, now=NOW)
    finally:
        q.close()
    assert again["logistics"] == counts["logistics"]
