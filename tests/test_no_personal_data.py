"""No test, fixture or demo file carries what could be a real person's mobile number, resident ID
number or name (issue 20: "no test or fixture stores a real person's name or phone number").

- Mobile numbers come from the placeholder range everyone knows is nobody's (13800000000 and
  1380013xxxx), however they are written (+86, hyphens, spaces).
- An 18-digit resident ID number only appears with a wrong check digit (it cannot be anyone's).
- People's display names (``display_name``/``display`` arguments and keys, and name claims) carry
  a marker: 测试 in tests, 演示 in the demo; the demo's people are 演示·….
- A name next to a word that introduces a person (联系人、负责人…, …同志、…老师) is one of the
  Chinese "John Doe" placeholders 张三、李四、王五.
The detectors are checked first on made-up input built at run time (so this file carries none)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.demo.accounts import DEMO_ACCOUNTS

ROOT = Path(__file__).resolve().parents[1]
SCANNED = (ROOT / "tests", ROOT / "services" / "demo")
SUFFIXES = {".py", ".mjs", ".js", ".json", ".csv", ".txt", ".yaml", ".yml", ".j2", ".md", ".html"}
SKIPPED_DIRS = {"node_modules", "__pycache__"}

FAKE_MOBILE = re.compile(r"13800000000|1380013\d{4}")
# a run of digits as people write a number: +86, hyphens, spaces
_NUMBERISH = re.compile(r"(?<![\d.])(?:\+?86[ -]?)?\d[\d -]{9,16}\d(?!\d)")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_ID18 = re.compile(r"(?<!\d)\d{6}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?!\d)")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

MARKERS = ("测试", "演示")
PLACEHOLDER_NAMES = {"张三", "李四", "王五"}
NAME_FIELDS = {"display_name", "display", "given_name", "family_name", "full_name", "nickname", "contact_name"}
_SURNAMES = ("张王李赵刘陈杨黄吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁"
             "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔汤")
_NAME = rf"[{_SURNAMES}][\u4e00-\u9fff]{{1,2}}"
_CUED_NAMES = re.compile(
    rf"(?:姓名|联系人|负责人|经办人|来电人|签字人|记录人|检查人|联络员|家长)[：:为是\s]*(?P<a>{_NAME})(?![\u4e00-\u9fff])"
    rf"|(?<![\u4e00-\u9fff])(?P<b>{_NAME})(?:同志|老师|先生|女士)")
_NAME_VALUE = re.compile(rf"[\"']?\b(?:{'|'.join(sorted(NAME_FIELDS))})[\"']?\s*[:=]\s*[\"']([^\"'\n]*)[\"']")


def mobiles(text: str) -> list[str]:
    """Mainland mobile numbers in ``text`` that are not placeholders, as written."""
    found = []
    for m in _NUMBERISH.finditer(text):
        digits = re.sub(r"[ -]", "", m.group(0)).removeprefix("+")
        if len(digits) == 13 and digits.startswith("86"):
            digits = digits[2:]
        if _MOBILE.fullmatch(digits) and not FAKE_MOBILE.fullmatch(digits):
            found.append(m.group(0))
    return found


def resident_ids(text: str) -> list[str]:
    """18-digit resident ID numbers whose check digit is right (so could be someone's)."""
    def valid(n: str) -> bool:
        check = "10X98765432"[sum(int(d) * w for d, w in zip(n, _ID_WEIGHTS, strict=False)) % 11]
        return n[-1].upper() == check
    return [m.group(0) for m in _ID18.finditer(text) if valid(m.group(0))]


def unmarked_names(text: str) -> list[str]:
    """Values of name fields without a test/demo marker, and cued names that are no placeholder."""
    out = [v for v in _NAME_VALUE.findall(text) if re.search(r"[\u4e00-\u9fff]", v)
           and not any(k in v for k in MARKERS)]
    out += [n for m in _CUED_NAMES.finditer(text) if (n := m.group("a") or m.group("b")) not in PLACEHOLDER_NAMES]
    return out


def _constants(tree: ast.Module) -> dict[str, str]:
    """A module's top-level string constants (``A = "…"`` and ``A, B = "…", "…"``)."""
    out: dict[str, str] = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pairs = (zip(target.elts, node.value.elts, strict=False)
                     if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple) else [(target, node.value)])
            for t, v in pairs:
                if isinstance(t, ast.Name) and isinstance(v, ast.Constant) and isinstance(v.value, str):
                    out[t.id] = v.value
    return out


def display_names(source: str) -> list[str]:
    """Every string a Python file passes as a person's name (keyword or dict key in NAME_FIELDS),
    module constants resolved."""
    tree = ast.parse(source)
    constants = _constants(tree)
    values: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in NAME_FIELDS:
            values.append(node.value)
        elif isinstance(node, ast.Dict):
            values += [v for k, v in zip(node.keys, node.values, strict=False)
                       if isinstance(k, ast.Constant) and k.value in NAME_FIELDS]
    names = []
    for v in values:
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            names.append(v.value)
        elif isinstance(v, ast.Name) and v.id in constants:
            names.append(constants[v.id])
    return names


def scanned_files() -> Iterator[Path]:
    for base in SCANNED:
        for path in sorted(base.rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and not SKIPPED_DIRS & set(path.relative_to(ROOT).parts):
                yield path


# -- the detectors, on made-up input ----------------------------------------------------------


def test_the_detectors_find_what_they_are_for() -> None:
    real_looking = "139" + "8765" + "4321"
    assert mobiles(f"电话 {real_looking}，备用 +86-{real_looking[:3]}-{real_looking[3:7]}-{real_looking[7:]}") == [
        real_looking, f"+86-{real_looking[:3]}-{real_looking[3:7]}-{real_looking[7:]}"]
    assert mobiles("13800138000 13800000000 2025-06-01 20250701 110101190001011234") == []
    body = "11010519491231002"
    right = body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=False)) % 11]
    wrong = body + ("0" if right[-1] != "0" else "1")
    assert resident_ids(f"身份证 {right}；{wrong}") == [right]
    someone = "刘" + "建国"
    assert unmarked_names(f"联系人：{someone}；{someone}同志；联系人：张三；校长进校园") == [someone, someone]
    assert unmarked_names(f'"display_name": "{someone}", display_name="测试·{someone}"') == [someone]
    source = f'N = "{someone}"\nf(display_name=N, display="演示·x")\nd = {{"display_name": "y"}}'
    assert sorted(display_names(source)) == sorted([someone, "演示·x", "y"])


# -- the scan ---------------------------------------------------------------------------------


def test_no_file_in_tests_or_the_demo_carries_a_real_looking_number_or_name() -> None:
    found: dict[str, list[str]] = {}
    files = list(scanned_files())
    assert any(p.name == "test_accounts.py" for p in files) and any(p.parent.name == "demo" for p in files)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        hits = [*mobiles(text), *resident_ids(text), *unmarked_names(text)]
        if path.suffix == ".py":
            hits += [n for n in display_names(text) if not any(k in n for k in MARKERS)]
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    assert found == {}


@pytest.mark.parametrize(("account", "display", "unit", "role"), DEMO_ACCOUNTS)
def test_the_demos_people_are_marked_as_demo_data(account: str, display: str, unit: str, role: str) -> None:
    assert display.startswith("演示·") and account.startswith("demo.")
