"""Times of the annual review: recorded times compared as UTC text, as_of parsing, county
days (services/reviews/facts.py uses them in its pass over the log)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from contracts.rules import RuleSet
from events.base import COUNTY_TZ


class ReviewError(Exception):
    """The review cannot be computed (the log fails verification, bad input); one line."""


# -- time ------------------------------------------------------------------------------------


def utc_key(ts: str) -> str:
    """Recorded times as stored (orjson of an aware datetime) are compared as text; anything
    not already UTC is normalised to the same shape first."""
    if ts.endswith("+00:00"):
        return ts
    return datetime.fromisoformat(ts).astimezone(UTC).isoformat()


def parse_as_of(text: str) -> datetime:
    """An instant with a UTC offset, or a date (the end of that day in the county)."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max, tzinfo=COUNTY_TZ)  # no day after 9999-12-31 needed
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReviewError(f"as_of {text!r} is not a date or an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise ReviewError(f"as_of {text!r} needs a UTC offset, e.g. 2024-01-31T18:00:00+08:00")
    try:  # the instant must exist in UTC too (0001-01-01 at +08:00 does not)
        moment.astimezone(UTC)
    except OverflowError:
        raise ReviewError(f"as_of {text!r} is out of range (years 0001-9999)") from None
    return moment


def load_rules_arg(value: str) -> RuleSet:
    """A rules file path, or the name of a rules set in contracts/rules/."""
    from pathlib import Path

    from contracts.rules import load_rules, named_rules

    path = Path(value)
    return load_rules(path) if path.suffix in (".yaml", ".yml") or path.exists() else named_rules(value)


def as_of_key(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ReviewError("as_of must carry a UTC offset")
    return moment.astimezone(UTC).isoformat()


class _Days:
    """Day numbers of ISO dates and of recorded times in the county's time zone, cached
    (a year has few distinct days, the log has millions of events)."""

    def __init__(self) -> None:
        self._dates: dict[str, int] = {}
        self._local: dict[str, int] = {}
        self._offset_h = int((COUNTY_TZ.utcoffset(datetime(2000, 1, 1)) or timedelta()).total_seconds() // 3600)

    def of(self, iso: str) -> int:
        n = self._dates.get(iso)
        if n is None:
            n = self._dates[iso] = date.fromisoformat(iso[:10]).toordinal()
        return n

    def recorded(self, ts_utc: str) -> int:
        key = ts_utc[:13]
        n = self._local.get(key)
        if n is None:  # China has no daylight saving: a fixed offset
            moment = datetime.fromisoformat(ts_utc[:13] + ":00:00+00:00").astimezone(COUNTY_TZ)
            n = self._local[key] = moment.date().toordinal()
        return n


