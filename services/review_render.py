"""The annual review (and the what-if comparison) as JSON, HTML and DOCX.

JSON is the record (byte-identical for the same log, rules and as_of); HTML and DOCX are
readable renderings of the same document, in Chinese, listing each clause's items with the
event ids behind them (long lists are cut, pointing to the JSON). DOCX sets the East-Asian
font on every run (w:eastAsia) from the brief's font map (LIANXI_BRIEF_FONT_*).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.review import COMPARE_FORMAT, to_json

FORMATS = ("json", "html", "docx")
MEDIA_TYPES = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
TEMPLATES = Path(__file__).parent / "templates"
HTML_ITEMS = 200  # items shown per clause in HTML
DOCX_ITEMS = 30
APPEAL_STATUS = {"pending": "待裁定", "upheld": "申诉成立,不予扣分", "rejected": "申诉驳回"}


def _fonts() -> Any:
    from services.brief import BriefSettings

    return BriefSettings()


def render_html(document: dict[str, Any]) -> str:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("review.html.j2").render(r=document, fonts=_fonts(), item_limit=HTML_ITEMS)


class _Docx:
    def __init__(self) -> None:
        from docx import Document
        from docx.shared import Mm

        self.fonts = _fonts()
        self.doc = Document()
        section = self.doc.sections[0]
        section.page_width, section.page_height = Mm(210), Mm(297)
        section.top_margin, section.bottom_margin = Mm(30), Mm(28)
        section.left_margin, section.right_margin = Mm(26), Mm(24)
        self._east_asian(self.doc.styles["Normal"].element, self.fonts.font_body)

    @staticmethod
    def _east_asian(element: Any, font: str) -> None:
        from docx.oxml.ns import qn

        fonts = element.get_or_add_rPr().get_or_add_rFonts()
        for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
            fonts.set(qn(attr), font)

    def run(self, paragraph: Any, text: str, *, font: str | None = None, size: float = 11, bold: bool = False) -> None:
        from docx.shared import Pt

        r = paragraph.add_run(text)
        name = font or self.fonts.font_body
        r.font.name = name
        self._east_asian(r._element, name)
        r.font.size = Pt(size)
        r.font.bold = bold

    def para(self, text: str, *, font: str | None = None, size: float = 11, bold: bool = False,
             center: bool = False) -> None:
        from docx.enum.text import WD_ALIGN_PARAGRAPH

        p = self.doc.add_paragraph()
        if center:
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        self.run(p, text, font=font, size=size, bold=bold)

    def heading(self, text: str, size: float = 14) -> None:
        self.para(text, font=self.fonts.font_heading, size=size, bold=True)

    def table(self, header: list[str], rows: list[list[Any]], size: float = 8.5) -> None:
        t = self.doc.add_table(rows=1, cols=len(header))
        t.style = "Table Grid"
        for cell, text in zip(t.rows[0].cells, header, strict=True):
            self.run(cell.paragraphs[0], text, font=self.fonts.font_heading, size=size, bold=True)
        for row in rows:
            for cell, value in zip(t.add_row().cells, row, strict=True):
                self.run(cell.paragraphs[0], "" if value is None else str(value), size=size)
        self.doc.add_paragraph()

    def bytes(self) -> bytes:
        out = io.BytesIO()
        self.doc.save(out)
        return out.getvalue()


def _ids(item: dict[str, Any]) -> str:
    ids = " ".join(item["event_ids"][:5])
    more = item["event_count"] - min(5, len(item["event_ids"]))
    return ids + (f" …另 {more} 条" if more > 0 else "")


def render_docx(document: dict[str, Any]) -> bytes:
    d = _Docx()
    d.para(document["title"], font=d.fonts.font_title, size=20, bold=True, center=True)
    cp = document["checkpoint"]
    if document["format"] == COMPARE_FORMAT:
        d.para(f"考核年度 {document['year']} · 数据截至 {document['as_of']} · 现行细则 {document['base']['name']} "
               f"对比草案 {document['draft']['name']}", size=10, center=True)
        d.heading("一、条款调整")
        changes = [[c["clause"], c["change"]] for c in document["rule_changes"]]
        d.table(["条款", "调整"], changes or [["—", "两套细则相同"]])
        d.heading("二、得分与名次对比")
        d.table(["单位", "现行得分", "现行名次", "草案得分", "草案名次", "分差", "影响条款"], [
            [u["name"], f"{u['base']['score']:.2f}", u["base"]["rank"], f"{u['draft']['score']:.2f}",
             u["draft"]["rank"], f"{u['score_delta']:+.2f}",
             ";".join(f"第{m['clause']}条 {m['delta']:+.2f}({m['change']})" for m in u["moved_by"])]
            for u in document["units"]])
    else:
        d.para(f"考核年度 {document['year']} · 数据截至 {document['as_of']} · 考核细则 {document['rules']['title']}"
               f"({document['rules']['name']})", size=10, center=True)
        d.heading("一、考核排名")
        d.table(["名次", "单位", "得分", "履职得分", "扣分"], [
            [u["rank"], u["name"], f"{u['score']:.2f}", f"{u['credit']:.2f}", f"{u['deductions']:.2f}"]
            for u in document["units"]])
        d.heading("二、各单位得分明细")
        for u in document["units"]:
            d.heading(f"{u['rank']}. {u['name']} {u['score']:.2f} 分", size=12)
            rows: list[list[Any]] = []
            for c in u["clauses"]:
                kind = "加分" if c["kind"] == "credit" else "扣分"
                rows.append([c["clause"], kind, c["text"], f"{c['points']:.2f} / {c['max_points']:g}", ""])
                for it in c["items"][:DOCX_ITEMS]:
                    label = it["label"] if it["counted"] else f"(不计){it['label']}"
                    if it.get("appeal"):
                        label += f" 申诉:{APPEAL_STATUS[it['appeal']['status']]}"
                    rows.append(["", "", label, f"{it['points']:.2f}", _ids(it)])
                if len(c["items"]) > DOCX_ITEMS:
                    rows.append(["", "", f"另有 {len(c['items']) - DOCX_ITEMS} 项,见 JSON 版本", "", ""])
            d.table(["条款", "类别", "事项", "分值", "依据事件"], rows, size=8)
        b = document["backdated"]
        d.heading(f"三、补录记录(录入晚于发生日 {b['grace_days']} 天以上):共 {b['count']} 条")
        if b["entries"]:
            d.table(["单位", "类型", "发生日", "录入时间", "迟录天数", "事件"], [
                [e[0], e[2], e[3], e[4], e[5], e[1]] for e in b["entries"][:DOCX_ITEMS]])
        d.heading("四、申诉")
        d.table(["单位", "条款", "事项", "理由", "结果"], [
            [a["unit"], a["clause"], a["item"], a["reason"],
             APPEAL_STATUS[a["status"]] + (f":{a['decision_reason']}" if a.get("decision_reason") else "")]
            for a in document["appeals"]] or [["—", "", "", "", "无"]])
    d.heading("日志检查点")
    d.para(f"位置 {cp['position']};链头 {cp['head_hash']};时间 {cp['time']};公钥 {cp['public_key']};"
           f"签名 {cp['signature']}", size=8)
    return d.bytes()


def render(document: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return to_json(document)
    if fmt == "html":
        return render_html(document).encode("utf-8")
    if fmt == "docx":
        return render_docx(document)
    raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
