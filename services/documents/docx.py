"""The one Word writer (python-docx) for the brief and the review, to GB/T 9704 practice.

- Page: A4, margins top 37, bottom 35, left 28, right 26 mm (a document may ask for others: the
  review is a table report); page numbers "— 1 —" in the footer, odd pages right and even
  pages left, as a PAGE field.
- Masthead: the issuing title in red, and a red rule that is a paragraph border under the
  line with the issuing office on the left and the date on the right (a right tab stop).
- Headings are Word's own Heading 1–3 styles (一、 in 黑体, （一） in 楷体, 1. in bold 仿宋), so the
  navigation pane and a table of contents find them.
- Tables: fixed layout with column widths sized to content (documents/ooxml.py), the header
  row repeated on each page, rows kept whole.
- Language zh-CN everywhere (styles, runs, theme font language); core properties name the
  issuing office, the title and the creation time.
- Every run names its face for every script (w:ascii, w:hAnsi, w:eastAsia, w:cs); faces come
  from documents/fonts.py as a chain (the official face, then the configured family as
  w:altName in the font table).
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.documents import ooxml
from services.documents.fonts import Fonts

GB_T_9704_MARGINS_MM = (37, 35, 28, 26)  # top, bottom, left, right
PAGE_MM = (210, 297)
REF_COLOR = "1F4E79"  # reference marks [n] pointing into the appendix
RED = "C00000"
CELL_MARGIN_TWIPS = 57  # 1 mm each side: the default 1.9 mm eats a tenth of a ten-column table
FOOTER_PT = 14  # 4号
FAMILIES = {"heading": "swiss", "title": "roman", "kai": "script", "body": "roman"}
HEADING_ROLES = {1: "heading", 2: "kai", 3: "body"}
_BREAKS = re.compile(r"(\t|[\r\n])")  # what python-docx turns into w:tab and w:br


def set_fonts(element: Any, font: str) -> None:
    """Name ``font`` for every script on a run, a style or a paragraph mark."""
    ooxml.set_run_fonts(element.get_or_add_rPr(), font)


class Docx:
    """A document under construction: masthead, paragraphs, headings, tables, pictures."""

    def __init__(self, fonts: Fonts, *, margins_mm: tuple[float, float, float, float] = GB_T_9704_MARGINS_MM,
                 size: float = 16, table_size: float = 10.5, indent: bool = True, heading_size: float | None = None,
                 title: str = "", author: str = "", created: datetime | None = None) -> None:
        from docx import Document
        from docx.shared import Mm

        self.fonts = fonts
        self.size, self.table_size, self.indent = size, table_size, indent
        self.heading_size = heading_size or size
        self.title, self.author = title, author
        self.created = created or datetime.now(UTC).replace(microsecond=0)
        # A run's or a table cell's formatting, built once per document and copied (see run, _cell)
        self._run_formats: dict[tuple[Any, ...], Any] = {}
        self._cell_formats: dict[bool, Any] = {}
        self._style_ids: dict[tuple[str, str], str] = {}
        self.doc = Document()
        section = self.doc.sections[0]
        top, bottom, left, right = margins_mm
        section.page_width, section.page_height = Mm(PAGE_MM[0]), Mm(PAGE_MM[1])
        section.top_margin, section.bottom_margin = Mm(top), Mm(bottom)
        section.left_margin, section.right_margin = Mm(left), Mm(right)
        section.footer_distance = Mm(max(bottom - 28, 7))  # the page number sits 7 mm below the text
        self.text_width_mm = PAGE_MM[0] - left - right
        self._styles()
        self._footers()

    # -- set-up ------------------------------------------------------------------------------

    def _styles(self) -> None:
        from docx.shared import Pt, RGBColor

        styles = self.doc.styles
        defaults = styles.element.find(ooxml.w("docDefaults"))
        rpr = defaults.find(ooxml.w("rPrDefault")).find(ooxml.w("rPr"))
        ooxml.set_run_fonts(rpr, self.fonts.face("body"))
        ooxml.set_lang(rpr)
        normal = styles["Normal"]
        set_fonts(normal.element, self.fonts.face("body"))
        ooxml.set_lang(normal.element.get_or_add_rPr())
        normal.font.size = Pt(self.size)
        normal.paragraph_format.space_after = Pt(0)
        for level, role in HEADING_ROLES.items():
            style = styles[f"Heading {level}"]
            set_fonts(style.element, self.fonts.face(role))
            style.font.size = Pt(self.heading_size)
            style.font.bold = level == 3  # 黑体 and 楷体 carry their weight; 三级 is bold 仿宋
            style.font.italic = False
            style.font.color.rgb = RGBColor(0, 0, 0)
            style.paragraph_format.space_before = Pt(self.size * 0.5)
            style.paragraph_format.space_after = Pt(0)
            style.paragraph_format.keep_with_next = True
        settings = self.doc.settings.element
        ooxml.child(settings, "themeFontLang", val="en-US", eastAsia=ooxml.LANG)  # was ja-JP: Japanese faces

    def _footers(self) -> None:
        """"— n —" in 4号: odd pages at the right, even pages at the left, one character in."""
        from docx.enum.text import WD_ALIGN_PARAGRAPH
        from docx.shared import Pt

        self.doc.settings.odd_and_even_pages_header_footer = True
        section = self.doc.sections[0]
        for footer, align in ((section.footer, WD_ALIGN_PARAGRAPH.RIGHT),
                              (section.even_page_footer, WD_ALIGN_PARAGRAPH.LEFT)):
            p = footer.paragraphs[0]
            p.alignment = align
            if align == WD_ALIGN_PARAGRAPH.RIGHT:
                p.paragraph_format.right_indent = Pt(FOOTER_PT)
            else:
                p.paragraph_format.left_indent = Pt(FOOTER_PT)

            def make(par: Any, text: str) -> Any:
                return self.run(par, text, font=self.fonts.face("body"), size=FOOTER_PT)

            make(p, "— ")
            ooxml.field(p, "PAGE", make)
            make(p, " —")

    # -- content -----------------------------------------------------------------------------

    def run(self, paragraph: Any, text: str, *, font: str | None = None, size: float | None = None,
            bold: bool | None = False, color: str | None = None, superscript: bool = False) -> Any:
        r = paragraph.add_run(text)
        key = (font or self.fonts.face("body"), size or self.size, bold, superscript, color)
        formatted = self._run_formats.get(key)
        if formatted is None:
            self._format_run(r, *key)
            self._run_formats[key] = copy.deepcopy(r._element.rPr)
        else:  # the same formatting as an earlier run: copy its w:rPr (python-docx's setters cost ~2 ms a run)
            r._element.insert(0, copy.deepcopy(formatted))
        return r

    def _run_format(self, key: tuple[Any, ...]) -> Any:
        """The w:rPr of a run formatted as ``key`` (see run), made on a detached run the first time."""
        formatted = self._run_formats.get(key)
        if formatted is None:
            from docx.oxml import OxmlElement
            from docx.text.paragraph import Paragraph

            r = Paragraph(OxmlElement("w:p"), self.doc._body).add_run()
            self._format_run(r, *key)
            formatted = self._run_formats[key] = copy.deepcopy(r._element.rPr)
        return formatted

    def _append_run(self, p: Any, text: str, key: tuple[Any, ...]) -> None:
        """A run appended to the w:p element ``p`` as ``run`` makes it, in lxml: its w:rPr, then
        the text as python-docx writes it (a w:tab per tab, a w:br per line break)."""
        r = ooxml.SubElement(p, ooxml.w("r"))
        r.append(copy.deepcopy(self._run_format(key)))
        for i, part in enumerate(_BREAKS.split(text)):
            if i % 2:
                ooxml.SubElement(r, ooxml.w("tab" if part == "\t" else "br"))
            elif part:
                t = ooxml.SubElement(r, ooxml.w("t"))
                t.text = part
                if len(part.strip()) < len(part):
                    t.set(ooxml.XML_SPACE, "preserve")

    def _format_run(self, r: Any, name: str, size: float, bold: bool | None, superscript: bool,
                    color: str | None) -> None:
        from docx.shared import Pt, RGBColor

        r.font.name = name
        set_fonts(r._element, name)
        ooxml.set_lang(r._element.get_or_add_rPr())
        r.font.size = Pt(size)
        if bold is not None:
            r.font.bold = bold
        r.font.superscript = superscript
        if color:
            r.font.color.rgb = RGBColor.from_string(color)

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
        if align != "center":
            p.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
        if text:
            self.run(p, text, font=font, size=size, bold=bold, color=color)
        if ref is not None:
            self.run(p, f"[{ref}]", size=size * 0.6, superscript=True, color=REF_COLOR)
        return p

    def masthead(self, title: str, number: str, issuer: str, date: str) -> None:
        """The 版头: the red title, the issue number, then the issuing office (left) and the
        date (right) on one line with the red rule under it as a paragraph border."""
        from docx.shared import Pt

        self.para(title, font=self.fonts.face("title"), size=36, align="center", color=RED)
        p = self.para(number, size=self.size, align="center")
        p.paragraph_format.space_before = Pt(self.size)
        line = self.para("", indent=False)
        line.paragraph_format.space_after = Pt(self.size)
        ppr = line._p.get_or_add_pPr()
        ooxml.right_tab(ppr, self.text_width_mm)
        ooxml.bottom_border(ppr, RED, 18)  # 2.25 pt
        self.run(line, issuer)
        self.run(line, "\t" + date)

    def heading(self, text: str, level: int = 1, *, bold: bool | None = None) -> Any:
        """A real Word heading (Heading 1–3: navigation pane, outline level); its run takes the
        role's face and the style's size and weight unless ``bold`` says otherwise."""
        level = max(1, min(level, 3))
        p = self.doc.add_paragraph()
        p._p.style = self._style_id(f"Heading {level}", "paragraph")
        self.run(p, text, font=self.fonts.face(HEADING_ROLES[level]), size=self.heading_size, bold=bold)
        return p

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], refs: Sequence[int | None] = (), *,
              size: float | None = None) -> Any:
        """A grid table sized to its content; ``refs[i]`` marks row i's first cell [n]."""
        from docx.shared import Pt

        size = size or self.table_size
        texts = [["" if v is None else str(v) for v in row] for row in rows]
        marked = [[(row[0] + f"[{refs[i]}]" if i < len(refs) and refs[i] is not None else row[0]), *row[1:]]
                  for i, row in enumerate(texts)]
        em_twips = size * 20
        text_twips = self.text_width_mm * ooxml.TWIPS_PER_MM - len(header) * 2 * CELL_MARGIN_TWIPS
        widths_em = ooxml.column_widths(list(header), marked, text_twips / em_twips)
        widths = [round(x * em_twips) + 2 * CELL_MARGIN_TWIPS for x in widths_em]
        numeric = [bool(rows) and all(isinstance(r[j], int | float) or r[j] in (None, "", "—") for r in rows)
                   for j in range(len(header))]
        t = self.doc.add_table(rows=1, cols=len(header))
        t._tbl.tblStyle_val = self._style_id("Table Grid", "table")
        t.autofit = False
        for cell, text, width in zip(t.rows[0].cells, header, widths_em, strict=True):
            p = self._cell(cell, centered=True)
            self.run(p, ooxml.split_header(text, width), font=self.fonts.face("heading"), size=size)
        ooxml.fix_table_layout(t, widths, CELL_MARGIN_TWIPS)
        # The body rows straight in lxml, as python-docx's add_row, _cell and run would make them
        # and fix_table_layout would finish them (its setters and lookups were most of a table's time).
        formats = {centered: self._cell_format(centered) for centered in set(numeric)}
        text_key = (self.fonts.face("body"), size, False, False, None)
        ref_key = (self.fonts.face("body"), size * 0.7, False, True, REF_COLOR)
        tbl = t._tbl
        for i, row in enumerate(texts):
            tr = ooxml.SubElement(tbl, ooxml.w("tr"))
            ooxml.SubElement(ooxml.SubElement(tr, ooxml.w("trPr")), ooxml.w("cantSplit"))
            for j, value in enumerate(row):
                tc = ooxml.SubElement(tr, ooxml.w("tc"))
                ooxml.SubElement(ooxml.SubElement(tc, ooxml.w("tcPr")), ooxml.w("tcW"),
                                 {ooxml.w("type"): "dxa", ooxml.w("w"): str(widths[j])})
                p = ooxml.SubElement(tc, ooxml.w("p"))
                p.append(copy.deepcopy(formats[numeric[j]]))
                self._append_run(p, value, text_key)
                if j == 0 and i < len(refs) and refs[i] is not None:
                    self._append_run(p, f"[{refs[i]}]", ref_key)
        gap = self.doc.add_paragraph()  # a small gap; a document's last table then adds no blank page
        gap.paragraph_format.space_after = Pt(0)
        gap.paragraph_format.line_spacing = Pt(6)
        self.run(gap, "", size=5)
        return t

    def _style_id(self, name: str, kind: str) -> str:
        """A style's id by name, looked up once per document (python-docx's lookup walks every
        style each time: ~4 ms a heading or table)."""
        from docx.enum.style import WD_STYLE_TYPE

        key = (name, kind)
        if key not in self._style_ids:
            kinds = {"paragraph": WD_STYLE_TYPE.PARAGRAPH, "table": WD_STYLE_TYPE.TABLE}
            self._style_ids[key] = self.doc.part.get_style_id(name, kinds[kind])  # type: ignore[no-untyped-call]
        return self._style_ids[key]

    def _cell(self, cell: Any, *, centered: bool) -> Any:
        """A table cell's paragraph, tight, centred or not; its w:pPr built once per document
        and copied into every later cell like it."""
        p = cell.paragraphs[0]
        if p._p.pPr is None:
            p._p.insert(0, copy.deepcopy(self._cell_format(centered)))
        return p

    def _cell_format(self, centered: bool) -> Any:
        """The w:pPr of a table cell's paragraph, made on a detached paragraph the first time."""
        formatted = self._cell_formats.get(centered)
        if formatted is None:
            from docx.enum.text import WD_ALIGN_PARAGRAPH
            from docx.oxml import OxmlElement
            from docx.text.paragraph import Paragraph

            p = Paragraph(OxmlElement("w:p"), self.doc._body)
            self._tight(p)
            if centered:
                p.alignment = WD_ALIGN_PARAGRAPH.CENTER
            formatted = self._cell_formats[centered] = copy.deepcopy(p._p.pPr)
        return formatted

    @staticmethod
    def _tight(paragraph: Any) -> None:
        from docx.shared import Pt

        fmt = paragraph.paragraph_format
        fmt.line_spacing = 1.0
        fmt.space_before = fmt.space_after = Pt(1)
        fmt.first_line_indent = Pt(0)

    def picture(self, png: bytes, width_mm: float = 140) -> None:
        from docx.enum.text import WD_ALIGN_PARAGRAPH
        from docx.shared import Mm

        self.doc.add_picture(io.BytesIO(png), width=Mm(min(width_mm, self.text_width_mm)))
        paragraph = self.doc.paragraphs[-1]
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
        paragraph.paragraph_format.first_line_indent = Mm(0)
        for r in paragraph.runs:  # the picture's run too: every run names its East-Asian font
            set_fonts(r._element, self.fonts.face("body"))

    def pictures(self, images: Sequence[bytes], width_mm: float = 38) -> None:
        """Several small pictures side by side in one paragraph (evidence thumbnails)."""
        from docx.shared import Mm

        paragraph = self.doc.add_paragraph()
        paragraph.paragraph_format.first_line_indent = Mm(0)
        for image in images:
            run = paragraph.add_run()
            run.add_picture(io.BytesIO(image), width=Mm(width_mm))
            run.add_text(" ")
            set_fonts(run._element, self.fonts.face("body"))

    def page_break(self) -> None:
        paragraph = self.doc.add_page_break()  # type: ignore[no-untyped-call]
        for r in paragraph.runs:
            set_fonts(r._element, self.fonts.face("body"))

    # -- output ------------------------------------------------------------------------------

    def _properties(self) -> None:
        props = self.doc.core_properties
        props.author = props.last_modified_by = self.author
        props.title = self.title
        props.language = ooxml.LANG
        created = self.created.astimezone(UTC) if self.created.tzinfo else self.created
        props.created = props.modified = created.replace(tzinfo=None)  # python-docx writes it as UTC
        props.revision = 1
        props.comments = ""
        props.keywords = ""
        props.subject = ""

    def _font_table(self) -> None:
        families = {self.fonts.face(role): FAMILIES[role] for role in FAMILIES}
        for role in FAMILIES:
            families.setdefault(self.fonts.configured(role), FAMILIES[role])
        for part in self.doc.part.package.iter_parts():
            if str(part.partname) == "/word/fontTable.xml":
                part._blob = ooxml.declare_alternate_fonts(part.blob, self.fonts.alternates(), families)

    def to_bytes(self) -> bytes:
        self._properties()
        self._font_table()
        out = io.BytesIO()
        self.doc.save(out)
        return out.getvalue()
