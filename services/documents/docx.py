"""The one Word writer (python-docx) for the brief and the review.

Every run names its font for every script (w:ascii, w:hAnsi, w:eastAsia, w:cs): Word picks
the East-Asian face from w:eastAsia, and a run without it falls back to a Western font for
Chinese text. The page defaults to GB/T 9704 (党政机关公文格式): A4, margins top 37, bottom 35,
left 28, right 26 mm, body paragraphs indented two characters; a document may ask for other
margins, sizes and no indent (the review is a table report, not a 公文).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from services.documents.fonts import Fonts

GB_T_9704_MARGINS_MM = (37, 35, 28, 26)  # top, bottom, left, right
REF_COLOR = "1F4E79"  # reference marks [n] pointing into the appendix


def set_fonts(element: Any, font: str) -> None:
    """Name ``font`` for every script on a run, a style or a paragraph mark."""
    from docx.oxml.ns import qn

    fonts = element.get_or_add_rPr().get_or_add_rFonts()
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attr), font)


class Docx:
    """A document under construction: paragraphs, headings, tables, pictures, page breaks."""

    def __init__(self, fonts: Fonts, *, margins_mm: tuple[float, float, float, float] = GB_T_9704_MARGINS_MM,
                 size: float = 12, table_size: float = 9, indent: bool = True) -> None:
        from docx import Document
        from docx.shared import Mm

        self.fonts = fonts
        self.size, self.table_size, self.indent = size, table_size, indent
        self.doc = Document()
        section = self.doc.sections[0]
        top, bottom, left, right = margins_mm
        section.page_width, section.page_height = Mm(210), Mm(297)
        section.top_margin, section.bottom_margin = Mm(top), Mm(bottom)
        section.left_margin, section.right_margin = Mm(left), Mm(right)
        set_fonts(self.doc.styles["Normal"].element, fonts.font_body)

    def run(self, paragraph: Any, text: str, *, font: str | None = None, size: float | None = None,
            bold: bool = False, color: str | None = None, superscript: bool = False) -> Any:
        from docx.shared import Pt, RGBColor

        r = paragraph.add_run(text)
        name = font or self.fonts.font_body
        r.font.name = name
        set_fonts(r._element, name)
        r.font.size = Pt(size or self.size)
        r.font.bold = bold
        r.font.superscript = superscript
        if color:
            r.font.color.rgb = RGBColor.from_string(color)
        return r

    def para(self, text: str = "", *, font: str | None = None, size: float | None = None, bold: bool = False,
             align: str | None = None, color: str | None = None, indent: bool | None = None,
             ref: int | None = None) -> Any:
        """A paragraph; ``ref`` appends a superscript reference mark [n]."""
        from docx.enum.text import WD_ALIGN_PARAGRAPH
        from docx.shared import Pt

        size = size or self.size
        p = self.doc.add_paragraph()
        if align == "center":
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        elif self.indent if indent is None else indent:
            p.paragraph_format.first_line_indent = Pt(size * 2)
        if text:
            self.run(p, text, font=font, size=size, bold=bold, color=color)
        if ref is not None:
            self.run(p, f"[{ref}]", size=size * 0.7, superscript=True, color=REF_COLOR)
        return p

    def heading(self, text: str, level: int = 1, *, bold: bool | None = None) -> None:
        """Level 1 at 14 pt, below that 12 pt, in the heading family; by default only the
        lower levels are bold (a 公文's first-level heading is 黑体, not bold)."""
        self.para(text, font=self.fonts.font_heading, size=14 if level == 1 else 12,
                  bold=level > 1 if bold is None else bold, indent=False)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], refs: Sequence[int | None] = (), *,
              size: float | None = None) -> None:
        """A grid table; ``refs[i]`` puts a reference mark after row i's first cell."""
        size = size or self.table_size
        t = self.doc.add_table(rows=1, cols=len(header))
        t.style = "Table Grid"
        for cell, text in zip(t.rows[0].cells, header, strict=True):
            self.run(cell.paragraphs[0], text, font=self.fonts.font_heading, size=size, bold=True)
        for i, row in enumerate(rows):
            cells = t.add_row().cells
            for j, (cell, value) in enumerate(zip(cells, row, strict=True)):
                self.run(cell.paragraphs[0], "" if value is None else str(value), size=size)
                if j == 0 and i < len(refs) and refs[i] is not None:
                    self.run(cell.paragraphs[0], f"[{refs[i]}]", size=7, superscript=True, color=REF_COLOR)
        self.doc.add_paragraph()

    def picture(self, png: bytes, width_mm: float = 150) -> None:
        from docx.enum.text import WD_ALIGN_PARAGRAPH
        from docx.shared import Mm

        self.doc.add_picture(io.BytesIO(png), width=Mm(width_mm))
        paragraph = self.doc.paragraphs[-1]
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
        for r in paragraph.runs:  # the picture's run too: every run names its East-Asian font
            set_fonts(r._element, self.fonts.font_body)

    def page_break(self) -> None:
        paragraph = self.doc.add_page_break()  # type: ignore[no-untyped-call]
        for r in paragraph.runs:
            set_fonts(r._element, self.fonts.font_body)

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        self.doc.save(out)
        return out.getvalue()
