"""``unit_stats`` counts the items untouched since its cutoff in SQL and folds only the rest;
it must equal its definition (``unit_stats_folded``: every item folded to the cutoff) for every
unit, period, day and known_by of a demo year, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from contracts.catalogue import default_catalogue
from projections.periods import Period
from projections.rectification_board import end_of_county_day, unit_stats, unit_stats_folded
from services.demo.year import run_demo
from services.platform import Platform
from tests.conftest import PG_BASE, drop_pg_schema, make_platform, require_postgres
from tests.test_as_of_figures import NOW, YEAR, demo  # noqa: F401  (the module's demo year, shared fixture)

UNITS = [u.code for u in default_catalogue().units.units]
PERIODS = ("2024", "2024-Q2", "2024-S2", "2024-07", "2025")
DAYS = (date(2024, 3, 15), date(2024, 6, 30), date(2024, 9, 1), date(2024, 12, 31), date(2025, 2, 20))
KNOWN = (None, end_of_county_day(date(2024, 8, 1)), end_of_county_day(date(2025, 1, 5)))


def compare_all(p: Platform) -> int:
    compared = nonzero = 0
    with p.read_engine.connect() as conn:
        for unit in UNITS:
            for period in map(Period.parse, PERIODS):
                for day in DAYS:
                    for known_by in KNOWN:
                        args: dict[str, Any] = {"today": min(day, period.end), "period_start": period.start,
                                                "period_end": period.end, "known_by": known_by}
                        want = unit_stats_folded(conn, unit, **args)
                        assert unit_stats(conn, unit, **args) == want, (unit, period, day, known_by)
                        compared += 1
                        nonzero += bool(want["open"] or want["closed"] or want["cooperating_open"])
    assert compared == len(UNITS) * len(PERIODS) * len(DAYS) * len(KNOWN)
    return nonzero


def test_the_sql_counts_equal_the_full_fold_for_every_unit(demo) -> None:  # noqa: F811
    p, _ = demo
    assert compare_all(p) >= 100  # real items, not only empty units


@pytest.fixture(scope="module")
def pg_demo() -> Iterator[Platform]:
    require_postgres()
    schema = f"lxt_{uuid.uuid4().hex[:12]}"
    p = make_platform(f"{PG_BASE}?schema={schema}")
    try:
        run_demo(p.app, default_catalogue(), schools=12, year=YEAR, seed=5, now=NOW)
        p.runner.catch_up()
        yield p
    finally:
        p.close()
        drop_pg_schema(schema)


def test_the_sql_counts_equal_the_full_fold_on_postgres(pg_demo: Platform) -> None:
    assert compare_all(pg_demo) >= 50
