"""What free text and dates may be, wherever they enter (API bodies, the pages' forms, the
Kafka ingest, the CLI): one definition, so the edge refuses what the store cannot hold.

- Text carries no control characters except tab and newline: PostgreSQL's ``text`` cannot
  hold NUL, and the other C0/C1 controls and lone surrogates are never meant in a form or a
  report (a carriage return is refused too: the pages turn a browser's CRLF into LF first).
- A date is an ISO ``YYYY-MM-DD`` string (or a date): never a number, and its year has four
  digits (0001-9999), zero-padded.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, WithJsonSchema

_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DECIMAL = re.compile(r"^-?\d{1,15}(\.\d{1,6})?$")
_ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
TEXT_RULE = "no control characters except tab and newline"


class ControlCharacter(ValueError):
    def __init__(self, char: str, where: str = "") -> None:
        self.char = char
        self.where = where
        place = f" in {where}" if where else ""
        super().__init__(f"text{place} must not contain control character U+{ord(char):04X} ({TEXT_RULE})")


def refuse_control_characters(text: str) -> str:
    found = _FORBIDDEN.search(text)
    if found:
        raise ControlCharacter(found.group())
    return text


def find_control_character(value: Any, where: str = "") -> ControlCharacter | None:
    """The first forbidden character anywhere in a JSON-like value (keys included), or None."""
    if isinstance(value, str):
        found = _FORBIDDEN.search(value)
        return ControlCharacter(found.group(), where) if found else None
    if isinstance(value, dict):
        for k, v in value.items():
            problem = find_control_character(k, where) or find_control_character(v, f"{where}.{k}" if where else str(k))
            if problem:
                return problem
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            problem = find_control_character(v, f"{where}[{i}]")
            if problem:
                return problem
    return None


def parse_day(value: Any) -> Any:
    """An ISO date string becomes a date; anything else is left for strict validation to
    refuse (a number never becomes a date)."""
    if isinstance(value, str):
        text = value.strip()
        if not _ISO_DAY.match(text):
            raise ValueError("a date is written YYYY-MM-DD (four-digit year, 0001-9999)")
        return date.fromisoformat(text)
    return value


CleanText = Annotated[str, AfterValidator(refuse_control_characters)]
Day = Annotated[date, BeforeValidator(parse_day), WithJsonSchema({
    "type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$",
    "description": "YYYY-MM-DD, year 0001-9999"})]


def parse_moment(value: Any) -> Any:
    """An ISO date-time string becomes a datetime (its zone is then required); a number never."""
    if isinstance(value, str):
        text = value.strip()
        if not _ISO_MOMENT.match(text):
            raise ValueError("a time is written YYYY-MM-DDTHH:MM[:SS][+08:00] (four-digit year)")
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value


def number_to_decimal(value: Any) -> Any:
    """An amount is a JSON number or a plain decimal string ("12000.00", as money is often
    sent for exactness); a boolean or any other string is refused."""
    if isinstance(value, bool):
        raise ValueError("an amount is a number, not a boolean")
    if isinstance(value, str):
        if not _DECIMAL.match(value.strip()):
            raise ValueError("an amount is a number or a decimal string such as \"12000.00\"")
        return Decimal(value.strip())
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(parse_moment)]
Amount = Annotated[Decimal, BeforeValidator(number_to_decimal)]
