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

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

COLUMNS = ("职责", "发生日期", "学校", "情况说明", "发现问题数", "问题描述")
FIRST_DATA_ROW = 3  # row 1 the title, row 2 the headers
MAX_ROWS = 20_000
MAX_TEXT = 2000
SCHOOL_SEPARATORS = ("、", "，", ",", ";", "；")


class ImportFileError(ValueError):
    """The upload is not a readable template (the message is Chinese, for the person)."""


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str

    def text(self) -> str:
        return f"第{self.row}行“{self.column}”：{self.reason}"


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
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # zipfile.BadZipFile, KeyError, InvalidFileException...: all "not a workbook"
        raise ImportFileError(f"文件不是有效的Excel工作簿（.xlsx）：{type(e).__name__}") from None
    try:
        ws = wb.worksheets[0]
        header = next(ws.iter_rows(min_row=2, max_row=2, max_col=len(COLUMNS), values_only=True), ())
        if tuple(str(h or "").strip() for h in header) != COLUMNS:
            raise ImportFileError(f"第2行应为表头：{'、'.join(COLUMNS)}；请使用平台下载的模板")
        rows: list[tuple[int, list[Any]]] = []
        for number, cells in enumerate(ws.iter_rows(min_row=FIRST_DATA_ROW, max_col=len(COLUMNS), values_only=True),
                                       FIRST_DATA_ROW):
            values = list(cells) + [None] * (len(COLUMNS) - len(cells))
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                continue
            rows.append((number, values))
            if len(rows) > MAX_ROWS:
                raise ImportFileError(f"一次最多导入{MAX_ROWS}行")
        return rows
    finally:
        wb.close()


def row_key(unit: str, number: int, values: Sequence[Any]) -> str:
    """The row's idempotency key: unit, row number and the row's content."""
    canonical = "\x1f".join(_canonical(v) for v in values)
    digest = hashlib.sha256(f"{unit}\x1e{number}\x1e{canonical}".encode()).hexdigest()[:40]
    return f"xlsx:{digest}"


def _canonical(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip().replace("/", "-").replace(".", "-")
    if "年" in text:
        text = text.replace("年", "-").replace("月", "-").replace("日", "")
    y, m, d = (int(p) for p in text.split("-"))
    return date(y, m, d)


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
            code = in_force.get(duty_text, "")
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
