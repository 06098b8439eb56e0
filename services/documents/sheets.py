"""Spreadsheets people keep (XLSX, with openpyxl) and CSV for machines, from plain rows.

Every workbook opens the way a 台账 does in Excel or WPS: a title row naming the county, the
table and the data date; Chinese headers in row 2, frozen with the title; columns sized to
their content; dates as real dates and numbers as numbers (a rate is a number formatted as a
percentage), so filters, sums and sorting work. One sheet per logical table. CSV is one table,
UTF-8 with a byte-order mark so Excel reads the Chinese correctly.

Import templates are workbooks too: the same title and header rows, and drop-down lists
(data validation over a hidden 选项 sheet: a list written inline is limited to 255 characters).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

KINDS = ("text", "int", "float", "percent", "date", "datetime")
FORMATS = {"int": "0", "float": "0.00", "percent": "0.0%", "date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm"}
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
HEADER_ROW = 2  # row 1 is the title
FIRST_DATA_ROW = 3
MAX_WIDTH = 60
OPTIONS_SHEET = "选项"


@dataclass(frozen=True)
class Column:
    header: str
    kind: str = "text"
    choices: Sequence[str] = ()  # a drop-down list (templates)
    note: str = ""  # a hint on the header cell (templates)


@dataclass(frozen=True)
class Table:
    """One logical table: a sheet of its own."""

    sheet: str
    title: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[Any]] = field(default_factory=list)


def cell_value(value: Any, kind: str) -> Any:
    """The typed value a cell holds: ISO text becomes a date or datetime, numbers stay numbers;
    text loses the control characters a worksheet cannot hold."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and kind not in ("date", "datetime"):
        return _clean(value)
    if kind == "date" and isinstance(value, str):
        return date.fromisoformat(value[:10])
    if kind == "datetime" and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=None)  # Excel has no zones; callers pass county-local times
    if kind == "int" and not isinstance(value, bool):
        return int(value)
    if kind in ("float", "percent"):
        return float(value)
    return value


def _clean(text: str) -> str:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return str(ILLEGAL_CHARACTERS_RE.sub("", text))


def _display_width(value: Any) -> float:
    if isinstance(value, datetime):
        return 16
    if isinstance(value, date):
        return 10
    text = str(value)
    longest = max(text.split("\n"), key=len) if text else ""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1.1 for c in longest)


def title_line(county: str, table: Table, data_date: str) -> str:
    return f"{county} {table.title}（数据截至{data_date}）"


def _sheet_name(name: str) -> str:
    for bad in "[]:*?/\\":
        name = name.replace(bad, "")
    return name[:31] or "Sheet"


def _write_table(ws: Any, table: Table, county: str, data_date: str) -> None:
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    n = max(len(table.columns), 1)
    ws.append([_clean(title_line(county, table, data_date))])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=n)
    ws.cell(1, 1).font = Font(bold=True, size=14)
    ws.cell(1, 1).alignment = Alignment(horizontal="center", vertical="center")
    ws.row_dimensions[1].height = 24
    ws.append([_clean(c.header) for c in table.columns])
    thin = Side(style="thin", color="999999")
    for j in range(1, n + 1):
        cell = ws.cell(HEADER_ROW, j)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = Border(top=thin, bottom=thin, left=thin, right=thin)
    widths = [_display_width(c.header) for c in table.columns]
    for row in table.rows:
        values = [cell_value(v, c.kind) for v, c in zip(row, table.columns, strict=True)]
        ws.append(values)
        r = ws.max_row
        for j, (value, col) in enumerate(zip(values, table.columns, strict=True)):
            if col.kind in FORMATS:
                ws.cell(r, j + 1).number_format = FORMATS[col.kind]
            if value is not None:
                widths[j] = max(widths[j], _display_width(value))
            if isinstance(value, str) and "\n" in value:
                ws.cell(r, j + 1).alignment = Alignment(wrap_text=True, vertical="top")
    for j, width in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(j)].width = min(width + 2, MAX_WIDTH)
    ws.freeze_panes = ws.cell(FIRST_DATA_ROW, 1)
    if table.rows:
        ws.auto_filter.ref = f"A{HEADER_ROW}:{get_column_letter(n)}{ws.max_row}"


def _add_choices(wb: Any, ws: Any, table: Table, rows: int) -> None:
    """Drop-down lists for the columns that have choices, over a hidden options sheet."""
    from openpyxl.comments import Comment
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    options = wb[OPTIONS_SHEET] if OPTIONS_SHEET in wb.sheetnames else wb.create_sheet(OPTIONS_SHEET)
    options.sheet_state = "hidden"
    for j, col in enumerate(table.columns, 1):
        if col.note:
            ws.cell(HEADER_ROW, j).comment = Comment(col.note, "联席平台")
        if not col.choices:
            continue
        k = options.max_column + 1 if options.max_row > 1 or options.cell(1, 1).value else 1
        letter = get_column_letter(k)
        options.cell(1, k, col.header)
        for i, choice in enumerate(col.choices, 2):
            options.cell(i, k, _clean(choice))
        dv = DataValidation(type="list", formula1=f"'{OPTIONS_SHEET}'!${letter}$2:${letter}${len(col.choices) + 1}",
                            allow_blank=True, showErrorMessage=True, errorTitle="不在可选范围",
                            error=f"请从下拉列表中选择{col.header}")
        ws.add_data_validation(dv)
        target = get_column_letter(j)
        dv.add(f"{target}{FIRST_DATA_ROW}:{target}{FIRST_DATA_ROW + rows - 1}")


def xlsx(tables: Sequence[Table], *, county: str, data_date: str, template_rows: int = 0) -> bytes:
    """A workbook, one sheet per table. ``template_rows`` > 0 makes it an import template:
    drop-down lists over that many empty rows."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for table in tables:
        ws = wb.create_sheet(_sheet_name(table.sheet))
        _write_table(ws, table, county, data_date)
        if template_rows:
            _add_choices(wb, ws, table, template_rows)
    if OPTIONS_SHEET in wb.sheetnames:  # the hidden sheet goes last; the first sheet is the one shown
        wb.move_sheet(OPTIONS_SHEET, offset=len(wb.sheetnames))
    wb.properties.creator = county
    wb.properties.language = "zh-CN"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def csv_bytes(table: Table) -> bytes:
    """One table as CSV: UTF-8 with BOM, header row only (machines want no title row), ISO dates."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.header for c in table.columns])
    for row in table.rows:
        writer.writerow(["" if v is None else v for v in
                         (cell_value(v, c.kind) for v, c in zip(row, table.columns, strict=True))])
    return "\ufeff".encode() + out.getvalue().encode("utf-8")
