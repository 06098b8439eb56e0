"""Hazards from a spreadsheet (Excel in): a unit that keeps its 隐患排查台账 in Excel uploads it.

Every row is a hazard the uploading unit found (reported_by kind ``unit``); the row's key
(unit, row number, content) is the report's idempotency key, so the same file stores nothing
twice. The file is checked row by row before anything is stored (services/documents/sheet_rows.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.documents.sheet_rows import RowError, parse_date, row_key

COLUMNS = ("学校", "问题类别", "等级", "问题描述", "发现日期")
MAX_TEXT = 4000


@dataclass(frozen=True)
class HazardRow:
    row: int
    key: str
    school_id: str
    category: str
    severity: str
    description: str
    found_on: date


@dataclass
class CheckedHazards:
    rows: list[HazardRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def check_hazard_rows(
    raw: Sequence[tuple[int, list[Any]]], *, unit: str, schools: dict[str, str], categories: dict[str, str],
    severities: dict[str, str], today: date,
) -> CheckedHazards:
    """Each row to a HazardRow, or its errors. The lookups map names (and codes) to codes."""
    out = CheckedHazards()
    for number, values in raw:
        errors: list[RowError] = []
        school_cell, category_cell, severity_cell, text_cell, day_cell = values[:len(COLUMNS)]
        found: dict[str, str] = {}
        for column, cell, lookup, hint in (("学校", school_cell, schools, "在册学校"),
                                           ("问题类别", category_cell, categories, "问题类别"),
                                           ("等级", severity_cell, severities, "等级")):
            text = str(cell or "").strip()
            if not text:
                errors.append(RowError(number, column, "不能为空"))
            elif text not in lookup:
                errors.append(RowError(number, column, f"“{text[:40]}”不是{hint}，请从下拉列表选择"))
            else:
                found[column] = lookup[text]
        description = str(text_cell or "").strip()
        if not description:
            errors.append(RowError(number, "问题描述", "不能为空"))
        elif len(description) > MAX_TEXT:
            errors.append(RowError(number, "问题描述", f"超过{MAX_TEXT}字"))
        found_on: date | None = None
        if day_cell is None or str(day_cell).strip() == "":
            errors.append(RowError(number, "发现日期", "不能为空"))
        else:
            try:
                found_on = parse_date(day_cell)
            except (ValueError, TypeError):
                errors.append(RowError(number, "发现日期", f"“{day_cell}”不是日期（例：2024-05-03）"))
            if found_on is not None and found_on > today:
                errors.append(RowError(number, "发现日期", f"{found_on.isoformat()}晚于今天"))
        if errors or found_on is None:
            out.errors.extend(errors)
            continue
        out.rows.append(HazardRow(number, row_key(unit, number, values), found["学校"], found["问题类别"],
                                  found["等级"], description, found_on))
    return out
