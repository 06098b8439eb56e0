"""Reading a filled import template (Excel in), shared by every register that comes in from a
spreadsheet: the file check, the rows, each row's idempotency key and the cell parsers.

A template has a title in row 1 and its headers in row 2; data starts in row 3. Problems are
reported in Chinese with the row number and the column, for the person who fills the file.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

FIRST_DATA_ROW = 3  # row 1 the title, row 2 the headers
MAX_ROWS = 20_000
YES = ("是", "有", "Y", "YES", "TRUE", "1")
NO = ("否", "无", "N", "NO", "FALSE", "0", "")


class ImportFileError(ValueError):
    """The upload is not a readable template (the message is Chinese, for the person)."""


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str

    def text(self) -> str:
        return f"第{self.row}行“{self.column}”：{self.reason}"


@dataclass
class ImportOutcome:
    """What a register's import use case did with the checked rows."""

    stored: int = 0
    already: int = 0  # rows an earlier upload of the same file stored
    errors: list[RowError] = field(default_factory=list)


def read_rows(data: bytes, columns: Sequence[str]) -> list[tuple[int, list[Any]]]:
    """(row number, cells) for every non-empty data row of the first sheet, whose row 2 must
    be ``columns``."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # zipfile.BadZipFile, KeyError, InvalidFileException...: all "not a workbook"
        raise ImportFileError(f"文件不是有效的Excel工作簿（.xlsx）：{type(e).__name__}") from None
    try:
        ws = wb.worksheets[0]
        n = len(columns)
        header = next(ws.iter_rows(min_row=2, max_row=2, max_col=n, values_only=True), ())
        if tuple(str(h or "").strip() for h in header) != tuple(columns):
            raise ImportFileError(f"第2行应为表头：{'、'.join(columns)}；请使用平台下载的模板")
        rows: list[tuple[int, list[Any]]] = []
        for number, cells in enumerate(ws.iter_rows(min_row=FIRST_DATA_ROW, max_col=n, values_only=True),
                                       FIRST_DATA_ROW):
            values = list(cells) + [None] * (n - len(cells))
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
    canonical = "\x1f".join(canonical_text(v) for v in values)
    digest = hashlib.sha256(f"{unit}\x1e{number}\x1e{canonical}".encode()).hexdigest()[:40]
    return f"xlsx:{digest}"


def canonical_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def parse_date(value: Any) -> date:
    """A date cell, or text like 2024-05-03, 2024/5/3, 2024.5.3 or 2024年5月3日 (ValueError else)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip().replace("/", "-").replace(".", "-")
    if "年" in text:
        text = text.replace("年", "-").replace("月", "-").replace("日", "")
    y, m, d = (int(p) for p in text.split("-"))
    return date(y, m, d)


def parse_yes_no(value: Any) -> bool:
    """是/否 (also Y/N, 1/0, TRUE/FALSE; empty is 否); ValueError else."""
    text = canonical_text(value).upper()
    if text in YES:
        return True
    if text in NO:
        return False
    raise ValueError(text)
