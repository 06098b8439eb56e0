"""School registers from a spreadsheet (Excel in): the lead bureau uploads its 学校名册.

A school's code is its key: a row whose school is already registered with the same details
stores nothing (so re-uploading the file stores nothing twice); with other details it is an
error to look at, never a silent overwrite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from events.schools import SCHOOL_ID_PATTERN
from services.documents.sheet_rows import RowError, parse_yes_no

COLUMNS = ("学校代码", "学校名称", "乡镇", "学段", "寄宿", "食堂", "校车")
KIND_NAMES = {"kindergarten": "幼儿园", "primary": "小学", "junior": "初中", "senior": "高中", "vocational": "职业学校"}
MAX_NAME = 200
MAX_TOWN = 100


@dataclass(frozen=True)
class SchoolRow:
    row: int
    school_id: str
    name: str
    town: str
    kind: str
    boarding: bool
    canteen: bool
    school_bus: bool

    def details(self) -> tuple[str, str, str, bool, bool, bool]:
        return self.name, self.town, self.kind, self.boarding, self.canteen, self.school_bus


@dataclass
class CheckedSchools:
    rows: list[SchoolRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def check_school_rows(raw: Sequence[tuple[int, list[Any]]]) -> CheckedSchools:
    """Each row to a SchoolRow, or its errors; a code twice in the file is an error on the second."""
    out = CheckedSchools()
    kinds = {**{v: k for k, v in KIND_NAMES.items()}, **{k: k for k in KIND_NAMES}}
    seen: dict[str, int] = {}
    for number, values in raw:
        errors: list[RowError] = []
        id_cell, name_cell, town_cell, kind_cell, *flags = values[:len(COLUMNS)]
        school_id = str(id_cell if id_cell is not None else "").strip()
        if isinstance(id_cell, float) and id_cell.is_integer():
            school_id = str(int(id_cell))
        if not school_id:
            errors.append(RowError(number, "学校代码", "不能为空"))
        elif not SCHOOL_ID_PATTERN.match(school_id):
            errors.append(RowError(number, "学校代码", f"“{school_id[:40]}”只能由字母、数字、“-”“_”组成，最多40位"))
        elif school_id in seen:
            errors.append(RowError(number, "学校代码", f"与第{seen[school_id]}行重复"))
        else:
            seen[school_id] = number
        name, town = str(name_cell or "").strip(), str(town_cell or "").strip()
        for column, text, limit in (("学校名称", name, MAX_NAME), ("乡镇", town, MAX_TOWN)):
            if not text:
                errors.append(RowError(number, column, "不能为空"))
            elif len(text) > limit:
                errors.append(RowError(number, column, f"超过{limit}字"))
        kind = kinds.get(str(kind_cell or "").strip(), "")
        if not kind:
            choices = "、".join(KIND_NAMES.values())
            errors.append(RowError(number, "学段", f"“{str(kind_cell or '')[:20]}”不是{choices}之一"))
        parsed: list[bool] = []
        for column, cell in zip(COLUMNS[4:], flags, strict=True):
            try:
                parsed.append(parse_yes_no(cell))
            except ValueError:
                errors.append(RowError(number, column, f"“{str(cell)[:20]}”应填“是”或“否”"))
        if errors:
            out.errors.extend(errors)
            continue
        out.rows.append(SchoolRow(number, school_id, name, town, kind, *parsed))
    return out
