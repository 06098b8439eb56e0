"""The annual review (and the what-if comparison) as JSON, HTML and DOCX.

JSON is the record (byte-identical for the same log, rules and as_of); HTML and DOCX are
readable renderings of the same document, in Chinese, listing each clause's items with the
event ids behind them (long lists are cut, pointing to the JSON). Both take the font map from
the settings (LIANXI_BRIEF_FONT_*) and their names for codes from documents/labels.py.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

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


class People:
    """What a person reads for a code, an id or an instant of the document: unit names, duty
    texts, school names, county-local times (the document names its time zone) and links to
    the event log page at each cited event's position. The JSON keeps the codes and ids."""

    def __init__(self, document: dict[str, Any]) -> None:
        names = document.get("names") or {}
        self.units: dict[str, str] = names.get("units", {})
        self.duties: dict[str, str] = names.get("duties", {})
        self.schools: dict[str, str] = names.get("schools", {})
        self.positions: dict[str, int] = names.get("positions", {})
        self.tz = ZoneInfo(document.get("county_tz") or "Asia/Shanghai")

    def unit(self, code: str) -> str:
        return self.units.get(code, code)

    def time(self, ts: str | None) -> str:
        """An instant as county-local time, without zone suffix (2026-12-04 13:04)."""
        if not ts:
            return "—"
        try:
            moment = datetime.fromisoformat(ts)
        except ValueError:
            return ts
        if moment.tzinfo is None:
            return ts
        return moment.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def label(self, item: dict[str, Any]) -> str:
        detail = item.get("detail") or {}
        text = str(item["label"])
        duty = detail.get("duty")
        if isinstance(duty, str):
            text = f"{self.duties.get(duty, duty)}：{text}"
        school = detail.get("school_id")
        if isinstance(school, str):
            text = f"{text}（{self.schools.get(school, school)}）"
        if detail.get("type"):
            text = f"{labels.name_of(labels.EVENT_TYPES, detail['type'])} {text}"
        return text

    def links(self, item: dict[str, Any], limit: int = 5) -> list[tuple[str, str]]:
        """(text, href) of the first cited events on the event log page."""
        out = []
        for event_id in item["event_ids"][:limit]:
            pos = self.positions.get(event_id)
            if pos is not None:
                out.append((f"第{pos}条", f"/events?before={pos + 1}"))
        return out

    def evidence(self, item: dict[str, Any], limit: int = 5) -> str:
        """Plain text for Word: the log positions of the first events and the total."""
        shown = [text for text, _ in self.links(item, limit)]
        total = item["event_count"]
        if not total:
            return "—"
        return f"日志{'、'.join(shown)}" + (f" 等共 {total} 条" if total > len(shown) else "") if shown \
            else f"共 {total} 条"


def render_html(document: dict[str, Any], settings: Settings | None = None) -> str:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("review.html.j2").render(r=document, fonts=Fonts.of(settings), labels=labels,
                                                     item_limit=HTML_ITEMS, people=People(document))


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _rank(value: int | None) -> str:
    return "—" if value is None else str(value)


def _appeal(status: str) -> str:
    return labels.name_of(labels.APPEAL_STATUS, status)


def _comparison(d: Docx, document: dict[str, Any]) -> None:
    people = People(document)
    d.para(f"考核年度 {document['year']} · 数据截至 {people.time(document['as_of'])} · 现行细则 "
           f"{document['base']['name']} 对比草案 {document['draft']['name']}", size=10, align="center")
    d.heading("一、条款调整", bold=True)
    changes = [[c["clause"], c["change"]] for c in document["rule_changes"]]
    d.table(["条款", "调整"], changes or [["—", "两套细则相同"]])
    d.heading("二、得分与名次对比", bold=True)
    d.table(["单位", "现行得分", "现行名次", "草案得分", "草案名次", "分差", "影响条款"], [
        [u["name"], _score(u["base"]["score"]), _rank(u["base"]["rank"]), _score(u["draft"]["score"]),
         _rank(u["draft"]["rank"]), "—" if u["score_delta"] is None else f"{u['score_delta']:+.2f}",
         "；".join(f"{labels.article(m['clause'])} {m['delta']:+.2f}（{m['change']}）" for m in u["moved_by"])]
        for u in document["units"]])


def _unit_rows(u: dict[str, Any], people: People) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for c in u["clauses"]:
        kind = "加分" if c["kind"] == "credit" else "扣分"
        if not c.get("applicable", True):
            rows.append([c["clause"], kind, f"{c['text']}\n不适用：{c['reason']}", "不适用", ""])
            continue
        rows.append([c["clause"], kind, c["text"], f"{c['points']:.2f} / {c['max_points']:g}", ""])
        for it in c["items"][:DOCX_ITEMS]:
            label = people.label(it)
            if it.get("applicable") is False:
                label = f"（不适用）{label}"
            elif not it["counted"]:
                label = f"（不计）{label}"
            if it.get("appeal"):
                label += f" 申诉：{_appeal(it['appeal']['status'])}"
            rows.append(["", "", label, f"{it['points']:.2f}", people.evidence(it)])
        if len(c["items"]) > DOCX_ITEMS:
            rows.append(["", "", f"另有 {len(c['items']) - DOCX_ITEMS} 项，见 JSON 版本", "", ""])
    return rows


def _method(d: Docx, document: dict[str, Any]) -> None:
    m = document.get("method")
    if not m:
        return
    d.heading(f"考核办法：{m['title']}", bold=True)
    d.para(m["subtitle"], size=9, align="center")
    for paragraph in m["paragraphs"]:
        d.para(paragraph, size=10)
    d.table(["条款", "类别", "分值", "内容"], [[c["heading"], c["kind"], f"{c['points']:g}", c["text"]]
                                         for c in m["clauses"]], size=8)
    d.para(m["formula"], size=10)


def _review(d: Docx, document: dict[str, Any]) -> None:
    people = People(document)
    d.para(f"考核年度 {document['year']} · 数据截至 {people.time(document['as_of'])}"
           f"（日志位置 {document['log']['head_position']}） · 考核细则 {document['rules']['title']}"
           f"({document['rules']['name']})", size=10, align="center")
    if document["rules"].get("note"):
        d.para(document["rules"]["note"], size=10, bold=True, align="center")
    _method(d, document)
    d.heading("一、考核排名", bold=True)
    d.table(["名次", "单位", "得分", "履职得分", "扣分"], [
        [_rank(u["rank"]), u["name"], _score(u["score"]) if u["score"] is not None else "数据不足",
         f"{u['credit']:.2f}", f"{u['deductions']:.2f}"]
        for u in document["units"]])
    d.heading("二、各单位得分明细", bold=True)
    for u in document["units"]:
        head = f"{u['rank']}. {u['name']} {u['score']:.2f} 分" if u["score"] is not None else \
            f"{u['name']}：{u.get('note') or '数据不足，不参与排名'}"
        d.heading(head, 2)
        d.table(["条款", "类别", "事项", "分值", "依据（事件日志位置）"], _unit_rows(u, people), size=8)
    b = document["backdated"]
    d.heading(f"三、补录记录（录入晚于发生日 {b['grace_days']} 天以上）：共 {b['count']} 条", bold=True)
    if b["entries"]:
        d.table(["单位", "类型", "发生日", "录入时间", "迟录天数", "依据"], [
            [people.unit(e[0]), labels.name_of(labels.EVENT_TYPES, e[2]), e[3], people.time(e[4]), e[5],
             people.evidence({"event_ids": [e[1]], "event_count": 1})]
            for e in b["entries"][:DOCX_ITEMS]])
    d.heading("四、申诉", bold=True)
    d.table(["单位", "条款", "事项", "理由", "结果"], [
        [people.unit(a["unit"]), a["clause"], a["item"], a["reason"],
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
    d.para(f"位置 {cp['position']}；链头 {cp['head_hash']}；时间 {People(document).time(cp['time'])}；"
           f"公钥 {cp['public_key']}；"
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
