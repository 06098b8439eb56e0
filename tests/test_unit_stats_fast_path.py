"""``unit_stats`` counts the items untouched since its cutoff in SQL and folds only the rest;
it must equal its definition (``unit_stats_folded``: every item folded to the cutoff) for every
unit, period, day and known_by of a demo year."""

from __future__ import annotations

from datetime import date

from contracts.catalogue import default_catalogue
from projections.periods import Period
from projections.rectification_board import end_of_county_day, unit_stats, unit_stats_folded
from tests.test_as_of_figures import demo  # noqa: F401  (the module's demo year, shared fixture)

UNITS = [u.code for u in default_catalogue().units.units]


def test_the_sql_counts_equal_the_full_fold_for_every_unit(demo) -> None:  # noqa: F811
    p, _ = demo
    periods = [Period.parse(s) for s in ("2024", "2024-Q2", "2024-S2", "2024-07", "2025")]
    days = [date(2024, 3, 15), date(2024, 6, 30), date(2024, 9, 1), date(2024, 12, 31), date(2025, 2, 20)]
    known = [None, end_of_county_day(date(2024, 8, 1)), end_of_county_day(date(2025, 1, 5))]
    compared = folded_some = 0
    with p.read_engine.connect() as conn:
        for unit in UNITS:
            for period in periods:
                for day in days:
                    for known_by in known:
                        args = {"today": min(day, period.end), "period_start": period.start,
                                "period_end": period.end, "known_by": known_by}
                        want = unit_stats_folded(conn, unit, **args)
                        assert unit_stats(conn, unit, **args) == want, (unit, period, day, known_by)
                        compared += 1
                        folded_some += bool(want["open"] or want["closed"] or want["cooperating_open"])
    assert compared == len(UNITS) * len(periods) * len(days) * len(known)
    assert folded_some >= 100  # real items, not only empty units
