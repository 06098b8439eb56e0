"""Duty logs from a spreadsheet (Excel in): a unit that keeps its 台账 in Excel uploads it
instead of retyping it.

The file is the unit's template (职责 and 学校 as drop-down lists; row 1 a title, row 2 the
headers, data from row 3). Every row is checked before anything is stored, and each problem is
reported in Chinese with its row number and column. Nothing is stored unless every row is
valid, unless the caller asks for ``partial``: then the valid rows are stored and the rest come
back to be fixed.

Each row's idempotency key derives from the unit, the row's number in the file and its
content, so uploading the same file again stores nothing twice, and a file whose bad rows were
fixed stores only those rows the second time (the good rows keep their number and content).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from contracts.typography import official_text
from services.documents import sheet_rows
from services.documents.sheet_rows import FIRST_DATA_ROW, ImportFileError, RowError, row_key
from services.documents.sheet_rows import parse_date as _date

__all__ = ["COLUMNS", "FIRST_DATA_ROW", "Checked", "DutyRow", "ImportFileError", "RowError", "check_rows",
           "read_rows", "row_key"]
COLUMNS = ("职责", "发生日期", "学校", "情况说明", "发现问题数", "问题描述")
MAX_TEXT = 2000
SCHOOL_SEPARATORS = ("、", "，", ",", ";", "；")


@dataclass(frozen=True)
class DutyRow:
    row: int
    key: str
    duty_code: str
    school_ids: list[str]
    occurred_on: date
    summary: str
    findings_count: int
    findings_text: str


@dataclass
class Checked:
    rows: list[DutyRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    bad_rows: dict[int, list[Any]] = field(default_factory=dict)  # row number → its cells, to fix


def read_rows(data: bytes) -> list[tuple[int, list[Any]]]:
    """(row number, cells) for every non-empty data row of the first sheet."""
    return sheet_rows.read_rows(data, COLUMNS)


def check_rows(
    raw: Sequence[tuple[int, list[Any]]], *, unit: str, duties: Callable[[date], dict[str, str]],
    schools: dict[str, str], today: date,
) -> Checked:
    """Each row to a DutyRow, or its errors (every bad column of every bad row).

    ``duties(day)`` gives the unit's duties in force that day as text → code (codes are
    accepted too); ``schools`` maps school names (and ids) to ids."""
    out = Checked()
    for number, values in raw:
        errors: list[RowError] = []

        def bad(column: str, reason: str, number: int = number, errors: list[RowError] = errors) -> None:
            errors.append(RowError(number, column, reason))

        duty_cell, day_cell, school_cell, summary_cell, count_cell, text_cell = values[:len(COLUMNS)]
        occurred: date | None = None
        if day_cell is None or str(day_cell).strip() == "":
            bad("发生日期", "不能为空")
        else:
            try:
                occurred = _date(day_cell)
            except (ValueError, TypeError):
                bad("发生日期", f"“{day_cell}”不是日期（例：2024-05-03）")
        if occurred is not None and occurred > today:
            bad("发生日期", f"{occurred.isoformat()}晚于今天")
        code = ""
        duty_text = str(duty_cell or "").strip()
        if not duty_text:
            bad("职责", "不能为空")
        else:
            in_force = duties(occurred or today)
            # A template filled before `lianxi init` normalised the texts (or after, for a day
            # before the revision) still names its duty: compare the texts as people read them.
            code = in_force.get(duty_text) or {official_text(t): c for t, c in in_force.items()}.get(
                official_text(duty_text), "")
            if not code:
                bad("职责", f"“{duty_text[:40]}”不是本单位{'当日' if occurred else ''}在册职责，请从下拉列表选择")
        school_ids: list[str] = []
        names = str(school_cell or "").strip()
        for sep in SCHOOL_SEPARATORS[1:]:
            names = names.replace(sep, SCHOOL_SEPARATORS[0])
        for name in filter(None, (n.strip() for n in names.split(SCHOOL_SEPARATORS[0]))):
            school_id = schools.get(name)
            if school_id is None:
                bad("学校", f"“{name[:40]}”不是在册学校，请从下拉列表选择")
            else:
                school_ids.append(school_id)
        summary = str(summary_cell or "").strip()
        if not summary:
            bad("情况说明", "不能为空")
        elif len(summary) > MAX_TEXT:
            bad("情况说明", f"超过{MAX_TEXT}字")
        count = 0
        if count_cell is not None and str(count_cell).strip() != "":
            try:
                as_float = float(count_cell)
                if not as_float.is_integer() or as_float < 0:
                    raise ValueError
                count = int(as_float)
            except (ValueError, TypeError):
                bad("发现问题数", f"“{count_cell}”不是非负整数")
        findings_text = str(text_cell or "").strip()
        if len(findings_text) > MAX_TEXT:
            bad("问题描述", f"超过{MAX_TEXT}字")
        if errors or occurred is None:
            out.errors.extend(errors)
            out.bad_rows[number] = values
            continue
        out.rows.append(DutyRow(number, row_key(unit, number, values), code, school_ids, occurred, summary, count,
                                findings_text))
    return out
