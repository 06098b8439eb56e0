"""Low-level WordprocessingML the GB/T 9704 writer (documents/docx.py) needs and python-docx
has no API for: language, paragraph borders, tab stops, fields, table grid widths, repeating
header rows, rows kept whole, and the font table's alternate names."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from lxml import etree

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
SubElement = etree.SubElement
LANG = "zh-CN"
TWIPS_PER_MM = 1440 / 25.4
GB2312_CHARSET = "86"


def w(tag: str) -> str:
    return f"{{{W_NS}}}{tag}"


def child(parent: Any, tag: str, **attrs: str) -> Any:
    """The first ``w:tag`` child of ``parent`` (created, appended, when missing), attributes set."""
    el = parent.find(w(tag))
    if el is None:
        el = etree.SubElement(parent, w(tag))
    for k, v in attrs.items():
        el.set(w(k), v)
    return el


def set_lang(rpr: Any) -> None:
    """zh-CN for Latin, East-Asian and complex script: spell-check, line breaking, font fallback."""
    child(rpr, "lang", val=LANG, eastAsia=LANG, bidi="ar-SA")


def set_run_fonts(rpr: Any, face: str) -> None:
    """Name ``face`` for every script and drop any theme font that would override it."""
    fonts = child(rpr, "rFonts")
    for attr in ("asciiTheme", "hAnsiTheme", "eastAsiaTheme", "cstheme"):
        fonts.attrib.pop(w(attr), None)
    for attr in ("ascii", "hAnsi", "eastAsia", "cs"):
        fonts.set(w(attr), face)
    fonts.set(w("hint"), "eastAsia")


def bottom_border(ppr: Any, color: str, eighths_pt: int) -> None:
    """A rule under the paragraph (the red rule of a 公文 masthead is a border, not characters)."""
    bdr = child(ppr, "pBdr")
    child(bdr, "bottom", val="single", sz=str(eighths_pt), space="4", color=color)


def right_tab(ppr: Any, position_mm: float) -> None:
    tabs = child(ppr, "tabs")
    etree.SubElement(tabs, w("tab"), {w("val"): "right", w("pos"): str(round(position_mm * TWIPS_PER_MM))})


def field(paragraph: Any, instruction: str, make_run: Any) -> None:
    """A complex field (PAGE, NUMPAGES) whose result the reader computes; ``make_run`` makes a
    formatted run in ``paragraph`` for each part so the number takes the run's font."""
    for kind in ("begin", "instr", "separate", "text", "end"):
        r = make_run(paragraph, "1" if kind == "text" else "")
        if kind == "instr":
            instr = etree.SubElement(r._element, w("instrText"))
            instr.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
            instr.text = f" {instruction} "
        elif kind != "text":
            etree.SubElement(r._element, w("fldChar"), {w("fldCharType"): kind})


LATIN_EM = 0.6  # digits and Latin letters in a CJK face, with a little room
SHORT_EM = 5.0  # a cell this narrow ("纳入考核", "2024-04-29") never wraps
SLACK_EM = 0.4  # borders and rounding
# Header words a two-line header breaks before, so "按期完成率" becomes 按期/完成率, not 按期完/成率.
HEADER_TAILS = ("完成率", "签收率", "得分", "天数", "日期", "时间", "时限", "单位", "学校", "问题", "整改",
                "督办", "层级", "状态", "记录", "盲区", "名次", "分差", "编号", "位置", "签收", "完成", "数量")


def text_em(text: str) -> float:
    """Printed width in ems: a CJK (wide) character is one em, anything else about half."""
    return sum(1.0 if unicodedata.east_asian_width(c) in "WF" else LATIN_EM for c in text)


def longest_unbreakable_em(text: str) -> float:
    """The widest piece a line cannot break inside (a date, a number, a Latin word)."""
    widest = run = 0.0
    for c in text:
        if c.isspace() or unicodedata.east_asian_width(c) in "WF":
            widest, run = max(widest, run), 0.0
            if not c.isspace():
                widest = max(widest, 1.0)
        else:
            run += LATIN_EM
    return max(widest, run)


def _scaled(widths: list[float], total: float) -> list[float]:
    return [x * total / sum(widths) for x in widths]


def _grown(base: list[float], target: list[float], total: float) -> list[float]:
    """``base`` plus the room left, shared in proportion to how far each is from ``target``."""
    extra = [max(t - b, 0.0) for b, t in zip(base, target, strict=True)]
    spare = total - sum(base)
    if sum(extra) <= 0:
        return _scaled(base, total)
    return [b + spare * e / sum(extra) for b, e in zip(base, extra, strict=True)]


def column_widths(header: Sequence[str], rows: Sequence[Sequence[str]], total_em: float,
                  cap_em: float = 24.0) -> list[float]:
    """Column widths (ems) sized to content and summing to ``total_em``.

    Three tiers: what a column *needs* (its longest unbreakable piece, its short cells whole,
    half its header: a header wraps into two lines at most, never as "履职记/录"); what its
    *body* wants (its widest cell, capped so one long text wraps instead of starving the
    others); and what it *wants* with its header on one line. The most generous tier that fits
    is taken and grown to the width; otherwise room beyond the needs goes to the columns whose
    cells want more, in proportion."""
    n = len(header)
    head = [text_em(h) for h in header]
    cells = [[line for r in rows for line in r[j].split("\n")] for j in range(n)]
    widest = [max([text_em(x) for x in cells[j]] + [0.0]) for j in range(n)]
    need = [max(-(-head[j] // 2) if head[j] > 2 else head[j], widest[j] if widest[j] <= SHORT_EM else 0.0,
                *(longest_unbreakable_em(x) for x in cells[j]), 1.0) + SLACK_EM for j in range(n)]
    body = [max(need[j], min(widest[j], cap_em) + SLACK_EM) for j in range(n)]
    want = [max(body[j], min(head[j], cap_em) + SLACK_EM) for j in range(n)]
    if sum(want) <= total_em:
        return _scaled(want, total_em)
    if sum(body) <= total_em:
        return _grown(body, want, total_em)
    if sum(need) >= total_em:
        return _scaled(need, total_em)
    return _grown(need, body, total_em)


def split_header(text: str, width_em: float) -> str:
    """A header wider than its column breaks once: at a space, before a known tail word
    (按期/完成率), or at its middle."""
    if text_em(text) <= width_em - SLACK_EM + 0.01 or "\n" in text:
        return text
    if " " in text:
        left, _, right = text.partition(" ")
        return f"{left}\n{right}"
    for tail in HEADER_TAILS:
        if text.endswith(tail) and len(text) - len(tail) >= 2:
            return f"{text[:-len(tail)]}\n{tail}"
    middle = len(text) // 2
    return f"{text[:middle]}\n{text[middle:]}"


def fix_table_layout(table: Any, widths_twips: Sequence[int], cell_margin_twips: int) -> None:
    """A fixed layout with explicit grid widths (Word and LibreOffice otherwise split the page
    evenly), narrow cell margins, the first row repeated on every page, and no row split."""
    tbl = table._tbl
    tblpr = tbl.tblPr
    child(tblpr, "tblW", w=str(sum(widths_twips)), type="dxa")
    child(tblpr, "tblLayout", type="fixed")
    mar = child(tblpr, "tblCellMar")
    for side in ("left", "right"):
        child(mar, side, w=str(cell_margin_twips), type="dxa")
    grid = tbl.tblGrid
    for col, width in zip(grid.findall(w("gridCol")), widths_twips, strict=True):
        col.set(w("w"), str(width))
    for i, row in enumerate(table.rows):
        trpr = row._tr.get_or_add_trPr()
        child(trpr, "cantSplit")
        if i == 0:
            child(trpr, "tblHeader")
        for cell, width in zip(row.cells, widths_twips, strict=True):
            child(cell._tc.get_or_add_tcPr(), "tcW", w=str(width), type="dxa")


def declare_alternate_fonts(font_table_xml: bytes, alternates: dict[str, str], families: dict[str, str]) -> bytes:
    """Add (or complete) a w:font entry per face: GB2312 charset, family, and w:altName naming
    the fallback, so a reader without the face substitutes a Chinese one."""
    root = etree.fromstring(font_table_xml)
    existing = {f.get(w("name")): f for f in root.findall(w("font"))}
    names = dict.fromkeys([*alternates, *alternates.values(), *families])
    for name in names:
        if name is None:
            continue
        font = existing.get(name)
        if font is None:
            font = etree.SubElement(root, w("font"), {w("name"): name})
        for el in list(font):
            font.remove(el)
        if name in alternates:
            etree.SubElement(font, w("altName"), {w("val"): alternates[name]})
        etree.SubElement(font, w("charset"), {w("val"): GB2312_CHARSET})
        etree.SubElement(font, w("family"), {w("val"): families.get(name, "roman")})
        etree.SubElement(font, w("pitch"), {w("val"): "variable"})
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
    return out
