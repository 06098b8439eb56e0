"""Reporting periods: a year, a semester (S1 = Jan-Jun spring, S2 = Jul-Dec autumn),
a quarter or a month."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_PATTERN = re.compile(r"^(?P<y>\d{4})(?:-(?:(?P<m>0[1-9]|1[0-2])|Q(?P<q>[1-4])|S(?P<s>[12])))?$")


@dataclass(frozen=True)
class Period:
    label: str
    start: date
    end: date  # inclusive

    @classmethod
    def parse(cls, text: str) -> Period:
        m = _PATTERN.match(text)
        if not m:
            raise ValueError(
                f"period {text!r} must be YYYY, YYYY-S1|S2 (semester), YYYY-Q1..Q4 or YYYY-MM"
            )
        year = int(m["y"])
        if m["m"]:
            first, last = int(m["m"]), int(m["m"])
        elif m["q"]:
            first = 3 * int(m["q"]) - 2
            last = first + 2
        elif m["s"]:
            first = 1 if m["s"] == "1" else 7
            last = first + 5
        else:
            first, last = 1, 12
        start = date(year, first, 1)
        end = (date(year + 1, 1, 1) if last == 12 else date(year, last + 1, 1)) - timedelta(days=1)
        return cls(text, start, end)

    @classmethod
    def year_of(cls, day: date) -> Period:
        return cls.parse(str(day.year))

    def months(self) -> list[str]:
        out = []
        y, m = self.start.year, self.start.month
        while (y, m) <= (self.end.year, self.end.month):
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


def quarter_of(month: str) -> str:
    return f"{month[:4]}-Q{(int(month[5:7]) - 1) // 3 + 1}"


def semester_of(month: str) -> str:
    return f"{month[:4]}-S{1 if int(month[5:7]) <= 6 else 2}"
