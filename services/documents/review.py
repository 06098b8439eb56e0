"""The annual review (and the what-if comparison) as JSON, HTML and DOCX.

JSON is the record (byte-identical for the same log, rules and as_of); HTML and DOCX are
readable renderings of the same document, in Chinese, listing each clause's items with the
event ids behind them (long lists are cut, pointing to the JSON). Both take the font map from
the settings (LIANXI_BRIEF_FONT_*) and their names for codes from documents/labels.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.documents import labels
from services.documents.docx import Docx
from services.documents.fonts import Fonts
from services.settings import Settings

FORMATS = ("json", "html", "docx")
MEDIA_TYPES = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
TEMPLATES = Path(__file__).parents[1] / "templates"
HTML_ITEMS = 200  # items shown per clause in HTML
DOCX_ITEMS = 30
# The review's own format (services/reviews/document.py writes it); the other is the comparison.
REVIEW_FORMAT = "lianxi-review/1"


def to_json(document: dict[str, Any]) -> bytes:
    """Byte-identical for the same document: sorted keys, fixed float rendering. Compact (a
    province year's review is large; HTML is the readable form)."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def render_html(document: dict[str, Any], settings: Settings | None = None) -> str:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("review.html.j2").render(r=document, fonts=Fonts.of(settings), labels=labels,
                                                     item_limit=HTML_ITEMS)


def _ids(item: dict[str, Any]) -> str:
    ids = " ".join(item["event_ids"][:5])
    more = item["event_count"] - min(5, len(item["event_ids"]))
    return ids + (f" …另 {more} 条" if more > 0 else "")


def _appeal(status: str) -> str:
    return labels.name_of(labels.APPEAL_STATUS, status)


def _comparison(d: Docx, document: dict[str, Any]) -> None:
    d.para(f"考核年度 {document['year']} · 数据截至 {document['as_of']} · 现行细则 {document['base']['name']} "
           f"对比草案 {document['draft']['name']}", size=10, align="center")
    d.heading("一、条款调整", bold=True)
    changes = [[c["clause"], c["change"]] for c in document["rule_changes"]]
    d.table(["条款", "调整"], changes or [["—", "两套细则相同"]])
    d.heading("二、得分与名次对比", bold=True)
    d.table(["单位", "现行得分", "现行名次", "草案得分", "草案名次", "分差", "影响条款"], [
        [u["name"], f"{u['base']['score']:.2f}", u["base"]["rank"], f"{u['draft']['score']:.2f}",
         u["draft"]["rank"], f"{u['score_delta']:+.2f}",
         ";".join(f"第{m['clause']}条 {m['delta']:+.2f}({m['change']})" for m in u["moved_by"])]
        for u in document["units"]])


def _unit_rows(u: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for c in u["clauses"]:
        kind = "加分" if c["kind"] == "credit" else "扣分"
        rows.append([c["clause"], kind, c["text"], f"{c['points']:.2f} / {c['max_points']:g}", ""])
        for it in c["items"][:DOCX_ITEMS]:
            label = it["label"] if it["counted"] else f"(不计){it['label']}"
            if it.get("appeal"):
                label += f" 申诉:{_appeal(it['appeal']['status'])}"
            rows.append(["", "", label, f"{it['points']:.2f}", _ids(it)])
        if len(c["items"]) > DOCX_ITEMS:
            rows.append(["", "", f"另有 {len(c['items']) - DOCX_ITEMS} 项,见 JSON 版本", "", ""])
    return rows


def _review(d: Docx, document: dict[str, Any]) -> None:
    d.para(f"考核年度 {document['year']} · 数据截至 {document['as_of']} · 考核细则 {document['rules']['title']}"
           f"({document['rules']['name']})", size=10, align="center")
    d.heading("一、考核排名", bold=True)
    d.table(["名次", "单位", "得分", "履职得分", "扣分"], [
        [u["rank"], u["name"], f"{u['score']:.2f}", f"{u['credit']:.2f}", f"{u['deductions']:.2f}"]
        for u in document["units"]])
    d.heading("二、各单位得分明细", bold=True)
    for u in document["units"]:
        d.heading(f"{u['rank']}. {u['name']} {u['score']:.2f} 分", 2)
        d.table(["条款", "类别", "事项", "分值", "依据事件"], _unit_rows(u), size=8)
    b = document["backdated"]
    d.heading(f"三、补录记录(录入晚于发生日 {b['grace_days']} 天以上):共 {b['count']} 条", bold=True)
    if b["entries"]:
        d.table(["单位", "类型", "发生日", "录入时间", "迟录天数", "事件"], [
            [e[0], labels.name_of(labels.EVENT_TYPES, e[2]), e[3], e[4], e[5], e[1]]
            for e in b["entries"][:DOCX_ITEMS]])
    d.heading("四、申诉", bold=True)
    d.table(["单位", "条款", "事项", "理由", "结果"], [
        [a["unit"], a["clause"], a["item"], a["reason"],
         _appeal(a["status"]) + (f":{a['decision_reason']}" if a.get("decision_reason") else "")]
        for a in document["appeals"]] or [["—", "", "", "", "无"]])


def render_docx(document: dict[str, Any], settings: Settings | None = None) -> bytes:
    # A table report, not a 公文: narrower margins, smaller type, no first-line indent, bold headings.
    d = Docx(Fonts.of(settings), margins_mm=(30, 28, 26, 24), size=11, table_size=8.5, indent=False)
    d.para(document["title"], font=d.fonts.font_title, size=20, bold=True, align="center")
    if document["format"] == REVIEW_FORMAT:
        _review(d, document)
    else:
        _comparison(d, document)
    cp = document["checkpoint"]
    d.heading("日志检查点", bold=True)
    d.para(f"位置 {cp['position']};链头 {cp['head_hash']};时间 {cp['time']};公钥 {cp['public_key']};"
           f"签名 {cp['signature']}", size=8)
    return d.to_bytes()


def render(document: dict[str, Any], fmt: str, settings: Settings | None = None) -> bytes:
    if fmt == "json":
        return to_json(document)
    if fmt == "html":
        return render_html(document, settings).encode("utf-8")
    if fmt == "docx":
        return render_docx(document, settings)
    raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
