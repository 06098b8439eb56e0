"""Form fields → clean values, with one readable Chinese message per bad field.

The pages check what a person can get wrong before the request model and the domain see it,
so the message names the field in the words on the form. The request models (contracts/)
still validate what is passed on, and a rule only the domain knows comes back as its error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError

from contracts.api import MAX_SCHOOLS_PER_RECORD
from contracts.text import find_control_character

EVIDENCE = re.compile(r"^\S{1,500}$")
EVIDENCE_HINT = "每行填写一个链接或文件哈希，中间不能有空格。"
UUID_TEXT = re.compile(r"^[0-9a-fA-F-]{32,36}$")  # a form's own id, or an id it lists
UNIT_CODE = re.compile(r"^[a-z][a-z0-9-]{0,59}$")


class Form:
    """Reads one submitted form: ``values`` echo back into the re-rendered form, ``errors``
    map a field name to its message."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    @property
    def ok(self) -> bool:
        return not self.errors

    def raw(self, name: str) -> str:
        value = self.data.get(name)
        # a browser sends a textarea's line breaks as CRLF: they are newlines, not controls
        return value.replace("\r\n", "\n").strip() if isinstance(value, str) else ""

    def storable(self, name: str, label: str, value: str) -> None:
        """The API's rule for text (contracts/text.py), said in the form's words."""
        if find_control_character(value) is not None:
            self.fail(name, f"{label}含有不可见的控制字符，请删除后再提交。")

    def many(self, name: str) -> list[str]:
        return [v.strip() for v in self.data.getlist(name) if isinstance(v, str) and v.strip()]

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def text(self, name: str, label: str, *, required: bool = True, max_len: int = 4000) -> str:
        value = self.raw(name)
        self.values[name] = value
        if required and not value:
            self.fail(name, f"请填写{label}。")
        elif len(value) > max_len:
            self.fail(name, f"{label}不能超过 {max_len} 个字（现有 {len(value)} 个）。")
        self.storable(name, label, value)
        return value

    def lines(self, name: str, label: str, *, required: bool = False, max_items: int = 50,
              max_len: int = 1000, pattern: re.Pattern[str] | None = None, pattern_hint: str = "") -> list[str]:
        text = self.data.get(name)
        text = text if isinstance(text, str) else ""
        self.values[name] = text
        self.storable(name, label, text.replace("\r\n", "\n"))
        items = [line.strip() for line in text.splitlines() if line.strip()]
        if required and not items:
            self.fail(name, f"请至少填写一条{label}（每行一条）。")
        elif len(items) > max_items:
            self.fail(name, f"{label}最多 {max_items} 条（现有 {len(items)} 条）。")
        for item in items:
            if len(item) > max_len:
                self.fail(name, f"每条{label}不能超过 {max_len} 个字。")
            elif pattern is not None and not pattern.match(item):
                self.fail(name, f"{label}“{item[:40]}”格式不对：{pattern_hint}")
        return items

    def day(self, name: str, label: str, *, required: bool = True, not_after: date | None = None,
            not_before: date | None = None) -> date | None:
        value = self.raw(name)
        self.values[name] = value
        if not value:
            if required:
                self.fail(name, f"请选择{label}。")
            return None
        try:
            day = date.fromisoformat(value)
        except ValueError:
            self.fail(name, f"{label}不是有效日期，请按“年-月-日”填写，例如 2025-06-30。")
            return None
        if not_after is not None and day > not_after:
            self.fail(name, f"{label}不能晚于今天（{not_after.isoformat()}）。")
        if not_before is not None and day < not_before:
            self.fail(name, f"{label}不能早于 {not_before.isoformat()}。")
        return day

    def integer(self, name: str, label: str, *, low: int, high: int, required: bool = False,
                default: int | None = None) -> int | None:
        value = self.raw(name)
        self.values[name] = value
        if not value:
            if required:
                self.fail(name, f"请填写{label}。")
            return default
        if not re.fullmatch(r"-?\d{1,9}", value):
            self.fail(name, f"{label}须为整数。")
            return default
        number = int(value)
        if not low <= number <= high:
            self.fail(name, f"{label}须在 {low} 到 {high} 之间。")
        return number

    def choice(self, name: str, label: str, allowed: dict[str, str] | set[str], *,
               wrong: str | None = None) -> str:
        value = self.raw(name)
        self.values[name] = value
        if not value:
            self.fail(name, f"请选择{label}。")
        elif value not in allowed:
            self.fail(name, wrong or f"所选{label}无效，请从列表中选择。")
        return value

    def units(self, name: str, label: str, known: dict[str, str], *, required: bool = False) -> list[str]:
        chosen = list(dict.fromkeys(self.many(name)))
        self.values[name] = chosen
        if required and not chosen:
            self.fail(name, f"请至少选择一个{label}。")
        unknown = [u for u in chosen if u not in known]
        if unknown:
            self.fail(name, f"{label}中有未知单位：{'、'.join(unknown[:5])}。")
        return chosen

    def schools(self, name: str, label: str, exists: Callable[[str], bool], *,
                max_items: int = MAX_SCHOOLS_PER_RECORD) -> list[str]:
        chosen = list(dict.fromkeys(self.many(name)))
        self.values[name] = chosen
        if len(chosen) > max_items:
            self.fail(name, f"一条记录最多涉及 {max_items} 所学校。")
            return chosen
        missing = [s for s in chosen if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}", s) or not exists(s)]
        if missing:
            self.fail(name, f"以下学校不存在：{'、'.join(missing[:5])}。")
        return chosen

    def model(self, cls: type[BaseModel], payload: dict[str, Any], field_of: dict[str, str]) -> Any:
        """The request model of the API for this payload; a residual error goes to the field
        it concerns (``field_of`` maps a payload key to a form field)."""
        if not self.ok:
            return None
        try:
            return cls.model_validate(payload)
        except ValidationError as e:
            for err in e.errors():
                key = str(err["loc"][0]) if err.get("loc") else ""
                self.fail(field_of.get(key, "_form"), f"填写内容不符合要求（{key}）。")
            return None
