"""Times as a person in the county reads them: county-local, minutes precision, no zone suffix.

The log and the APIs keep ISO 8601 instants with offsets (UTC); everything rendered for people
(pages, briefs, messages) goes through ``local_time`` with the zone of ``LIANXI_COUNTY_TZ``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from zoneinfo import ZoneInfo

from services.settings import get_settings


@cache
def county_zone(name: str | None = None) -> ZoneInfo:
    return ZoneInfo(name or get_settings().county_tz)


def to_county(value: datetime | str) -> datetime | None:
    """An instant (a datetime, or ISO text as the read models store it) in the county's zone;
    a naive one is UTC, as the log records it. None for text that is no instant."""
    if isinstance(value, str):
        text = value.strip()
        if "T" not in text and " " not in text:
            return None
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(county_zone())


def local_time(value: datetime | date | str | None, *, seconds: bool = False) -> str:
    """``2026-11-16 20:02`` for an instant, in county time; a bare date stays as it is."""
    if value is None or value == "":
        return "—"
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    moment = to_county(value)
    if moment is None:
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def local_day(value: datetime | str | None) -> str:
    """The county's calendar day of an instant."""
    if value is None or value == "":
        return "—"
    moment = to_county(value)
    return moment.date().isoformat() if moment is not None else str(value)[:10]
