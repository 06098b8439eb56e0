"""The joint-meeting brief (联席会议简报) as HTML, PDF and DOCX, from services/meetings/brief_data.py.

- HTML: Jinja2 template ``templates/brief.html.j2``, charts as inline SVG, every listed item
  linked to the API resource that holds its history and to its event ids;
- PDF: the same template in print mode through WeasyPrint (CJK fonts via fontconfig), the
  event ids in an appendix keyed by reference numbers;
- DOCX: the GB/T 9704 writer (documents/docx.py), charts as PNG drawn with Pillow, the event
  ids in the same appendix.

Fonts come from the settings' font map (LIANXI_BRIEF_FONT_TITLE / _HEADING / _BODY, and the
chart font file LIANXI_BRIEF_CHART_FONT_FILE), defaulting to Debian's fonts-noto-cjk; statuses,
severities and phase states are named from documents/labels.py, as on the pages.
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from projections.collector import collector_paused
from services.documents import labels
from services.documents.docx import Docx
from services.documents.fonts import Fonts
from services.documents.timefmt import local_time
from services.settings import Settings, get_settings

TEMPLATES = Path(__file__).parents[1] / "templates"
FORMATS = ("html", "docx", "pdf")
_name = labels.name_of


# -- charts --------------------------------------------------------------------------------

ROW_H = 22
LABEL_W = 190
BAR_W = 330
VALUE_W = 60
TOP = 34


_QUOTE = {'"': "&quot;"}


def _svg_families(css: str) -> str:
    """A CSS font-family list as an SVG attribute wants it: no space after the commas (WeasyPrint
    strips quotes, not spaces, from each name, so ``, "Noto Sans CJK SC"`` named no face and the
    charts fell back to fontconfig's default, Noto Sans CJK JP with DejaVu digits)."""
    return ",".join(name.strip() for name in css.split(","))


PRINT_ROW_H = 15  # on paper a chart shares its page with text (about 95 mm for 21 units)


def chart_svg(chart: dict[str, Any], font: str, row_h: int = ROW_H) -> str:
    """A horizontal bar chart as inline SVG (server-side, no library). ``font`` is a CSS
    font-family list (documents/fonts.py's chain)."""
    rows = chart["rows"]
    width, height = LABEL_W + BAR_W + VALUE_W, TOP + row_h * len(rows) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(chart["title"])}" '
        f'font-family="{escape(_svg_families(font), _QUOTE)}" font-size="12">',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">'
        f'{escape(chart["title"])}</text>',
        f'<line x1="{LABEL_W}" y1="{TOP - 4}" x2="{LABEL_W}" y2="{height - 6}" stroke="#555" stroke-width="1"/>',
    ]
    top = chart["max"] or 1.0
    for i, (label, value, shown) in enumerate(rows):
        y = TOP + i * row_h
        w = max(0.0, min(1.0, value / top)) * (BAR_W - 10)
        base = y + row_h / 2 + 4  # the text's baseline, centred on the bar
        parts.append(f'<text x="{LABEL_W - 6}" y="{base:g}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{LABEL_W + 1}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                     f'fill="{chart["color"]}"/>')
        parts.append(f'<text x="{LABEL_W + w + 6:.1f}" y="{base:g}">{escape(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


@cache
def _font_file(family: str) -> tuple[str, int] | None:
    if shutil.which("fc-match") is None:
        return None
    try:
        out = subprocess.run(["fc-match", "-f", "%{file}:%{index}", family], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    path, _, index = out.rpartition(":")
    return (path, int(index or 0)) if path else None


def chart_png(chart: dict[str, Any], fonts: Fonts, scale: int = 2) -> bytes:
    """The same chart as PNG for DOCX, drawn with Pillow (no SVG rasteriser needed)."""
    from PIL import Image, ImageDraw, ImageFont

    rows = chart["rows"]
    width, height = LABEL_W + BAR_W + VALUE_W, TOP + ROW_H * len(rows) + 8
    img = Image.new("RGB", (width * scale, height * scale), "white")
    draw = ImageDraw.Draw(img)
    found = ((fonts.chart_font_file, fonts.chart_font_index) if fonts.chart_font_file
             else _font_file(fonts.font_heading))
    font: Any
    title_font: Any
    if found:
        font = ImageFont.truetype(found[0], 12 * scale, index=found[1])
        title_font = ImageFont.truetype(found[0], 14 * scale, index=found[1])
    else:  # no CJK font: labels degrade, the bars stay right
        font = title_font = ImageFont.load_default()
    draw.text((width * scale / 2, 10 * scale), chart["title"], fill="black", font=title_font, anchor="mt")
    draw.line([(LABEL_W * scale, (TOP - 4) * scale), (LABEL_W * scale, (height - 6) * scale)], fill="#555555",
              width=scale)
    top = chart["max"] or 1.0
    for i, (label, value, shown) in enumerate(rows):
        y = (TOP + i * ROW_H) * scale
        w = max(0.0, min(1.0, value / top)) * (BAR_W - 10) * scale
        draw.text(((LABEL_W - 6) * scale, y + 9 * scale), label, fill="black", font=font, anchor="rm")
        if w > 0:
            draw.rectangle([LABEL_W * scale + scale, y + 3 * scale, LABEL_W * scale + scale + w,
                            y + (ROW_H - 5) * scale], fill=chart["color"])
        draw.text((LABEL_W * scale + w + 6 * scale, y + 9 * scale), shown, fill="black", font=font, anchor="lm")
    buf = io.BytesIO()
    img.save(buf, format="PNG")  # optimize=True (zlib level 9) took 4x as long for 2% fewer bytes
    return buf.getvalue()


# -- rendering -----------------------------------------------------------------------------


def _cn_date(iso: str) -> str:
    d = date.fromisoformat(iso)
    return f"{d.year}年{d.month}月{d.day}日"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _minutes(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}分钟" if value < 120 else f"{value / 60:.1f}小时"


@cache
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["cn_date"] = _cn_date
    env.filters["pct"] = _pct
    env.filters["local"] = local_time
    env.filters["minutes"] = _minutes
    env.globals["numeral"] = labels.chinese_number
    env.globals["labels"] = labels
    return env


def render_html(data: dict[str, Any], *, print_mode: bool = False, settings: Settings | None = None) -> str:
    s = settings or get_settings()
    fonts = Fonts.of(s)
    row_h = PRINT_ROW_H if print_mode else ROW_H
    charts = {k: chart_svg(c, fonts.css("heading"), row_h) for k, c in data["charts"].items()}
    # The annex links into the event log: relative on the site; on paper only with the public address.
    site = s.public_url.rstrip("/") if print_mode else ""
    linked = not print_mode or bool(site)
    return _env().get_template("brief.html.j2").render(b=data, charts=charts, fonts=fonts, print_mode=print_mode,
                                                       site=site, linked=linked)


def render_pdf(data: dict[str, Any], settings: Settings | None = None) -> bytes:
    from weasyprint import HTML

    html = render_html(data, print_mode=True, settings=settings)
    with collector_paused():  # see projections/collector.py: a quarter of the PDF's CPU
        pdf: bytes = HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
    return pdf


def render(data: dict[str, Any], fmt: str, settings: Settings | None = None) -> bytes:
    if fmt == "html":
        return render_html(data, settings=settings).encode("utf-8")
    if fmt == "pdf":
        return render_pdf(data, settings)
    if fmt == "docx":
        return render_docx(data, settings)
    raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")


# -- DOCX ----------------------------------------------------------------------------------


def render_docx(data: dict[str, Any], settings: Settings | None = None, *, created: datetime | None = None) -> bytes:
    b = data
    fonts = Fonts.of(settings)
    m = b["meeting"]
    t = b["totals"]
    issue = labels.brief_issue(m["year"], b["number"])
    d = Docx(fonts, title=f"联席会议简报 {issue} {m['title']}", author=b["issuer"], created=created)
    d.masthead("联席会议简报", issue, b["issuer"], _cn_date(b["date"]))
    d.para(m["title"], font=fonts.face("title"), size=22, align="center")

    d.heading("一、会议及本期概况")
    held = (f"于{_cn_date(m['held_on'])}召开。出席单位：{'、'.join(b['attendance'])}"
            + (f"；缺席单位：{'、'.join(b['absent'])}" if b["absent"] else "") + "。"
            if m["status"] == "held" else f"定于{_cn_date(m['scheduled_for'])}召开。")
    d.para(f"本期简报统计期间为{_cn_date(b['period_start'])}至{_cn_date(b['period_end'])}"
           f"（数据截至{_cn_date(b['as_of'])}）。会议由{b['convener']}召集，{held}")
    d.para(f"本期各成员单位共记录履职{t['records']}条，发现问题{t['findings']}处；逾期未完成整改事项"
           f"{t['overdue']}项（其中已升级督办{t['escalated']}项），逾期决议任务{t['overdue_tasks']}项，"
           f"未销号重大隐患{t['critical']}项。")

    d.heading("二、各成员单位履职情况")
    d.table(["单位", "履职记录", "覆盖学校", "发现问题", "未销号整改", "逾期", "升级督办", "按期完成率",
             "预警签收", "责任盲区"],
            [[u["name"], u["records"], u["schools"], u["findings"], u["rect_open"], u["rect_overdue"],
              u["rect_escalated"], _pct(u["on_time_rate"]), f"{u['warnings_acknowledged']}/{u['warnings_received']}",
              u["blind_spots"]] for u in b["units"]])
    for chart in b["charts"].values():
        d.picture(chart_png(chart, fonts), width_mm=min(140, 60 + 6 * len(chart["rows"])))
    if b["blind_spots"]:
        d.heading("（一）责任盲区（本期应有而无履职记录的职责）", 2)
        d.table(["单位", "项数", "职责编号"],
                [[r["name"], r["count"], "、".join(r["duties"])] for r in b["blind_spots"]])

    d.heading("三、逾期及升级督办事项")
    if not b["overdue_groups"]:
        d.para("本期无逾期整改事项。")
    sub = 0
    for sub, g in enumerate(b["overdue_groups"], 1):
        d.heading(f"（{labels.chinese_number(sub)}）{g['name']}：逾期{g['count']}项，已升级{g['escalated']}项", 2)
        d.table(["序号", "学校", "问题", "等级", "整改时限", "逾期天数", "督办层级", "状态"],
                [[j, it.get("school_name", it["school_id"]), it["description"], _name(labels.SEVERITY, it["severity"]),
                  it["deadline"], it["days_overdue"], it["escalation_name"] or "—",
                  _name(labels.RECT_STATUS, it["status"])]
                 for j, it in enumerate(g["items"], 1)],
                refs=[it["ref"] for it in g["items"]])
    if b["overdue_tasks"]:
        sub += 1
        d.heading(f"（{labels.chinese_number(sub)}）逾期决议任务", 2)
        d.table(["单位", "任务", "时限", "逾期天数", "督办层级"],
                [[x["name"], x["description"], x["deadline"], x["days_overdue"], x["escalation_name"] or "—"]
                 for x in b["overdue_tasks"]], refs=[x["ref"] for x in b["overdue_tasks"]])
    if b["critical"]:
        sub += 1
        d.heading(f"（{labels.chinese_number(sub)}）未销号重大隐患", 2)
        d.table(["学校", "隐患", "发现日期", "责任单位", "状态"],
                [[h.get("school_name", h["school_id"]), h["description"], h["found_on"], h["unit_name"],
                  _name(labels.RECT_STATUS, h["status"])] for h in b["critical"]],
                refs=[h["ref"] for h in b["critical"]])

    d.heading("四、专项整治进展")
    if not b["campaigns"]:
        d.para("本年度尚未启动专项整治。")
    rows, refs = [], []
    for c in b["campaigns"]:
        for k, p in enumerate(c["phases"]):
            rows.append([c["name"] if k == 0 else "", c["current_name"] if k == 0 else "",
                         f"{p['name']}（{_name(labels.PHASE_STATE, p['state'])}）", p["deadline"],
                         f"{p['on_time']}/{p['schools']}", p["late"], p["missed"], p["problems"]])
            refs.append(c["ref"] if k == 0 else None)
    if rows:
        d.table(["专项整治", "当前阶段", "阶段", "截止日期", "按期", "逾期完成", "未完成", "发现问题"], rows, refs=refs)
    for c in b["campaigns"]:
        if c["behind_schools"]:
            more = "等" if len(c["behind_schools"]) > 30 else ""
            d.para(f"{c['name']}进度滞后学校{len(c['behind_schools'])}所：{'、'.join(c['behind_schools'][:30])}{more}。")

    d.heading("五、预警响应情况")
    ws = b["warning_summary"]
    d.para(f"本期共发布预警{ws['count']}次，应签收{ws['recipients']}家次，已签收{ws['acknowledged']}家次，"
           f"签收率{_pct(ws['rate'])}，签收用时中位数{_minutes(ws['median_latency_minutes'])}；"
           f"超时签收{ws['slow']}家次，升级报告牵头单位{ws['escalated']}次。")
    if b["warnings"]:
        d.table(["预警", "等级", "发布时间", "签收率", "未签收单位", "未签收学校", "超时签收"],
                [[w["title"], w["level_name"], local_time(w["issued_at"]), _pct(w["rate"]),
                  "、".join(w["unacked_units"]) or "—", "、".join(w["unacked_schools"][:10]) or "—", w["slow_count"]]
                 for w in b["warnings"]], refs=[w["ref"] for w in b["warnings"]])

    d.heading("六、提请会议研究事项")
    if not b["proposals"]:
        d.para("本期无成员单位提请事项。")
    for i, p in enumerate(b["proposals"], 1):
        d.para(f"{i}. {p['title']}（{p['unit_name']}提请）" + (f"：{p['detail']}" if p["detail"] else ""),
               ref=p["ref"])
    if b["decisions"]:
        d.heading("（一）会议议定事项", 2)
        for r in b["decisions"]:
            d.heading(f"{r['seq']}. {r['text']}", 3)
            if r["tasks"]:
                d.table(["责任单位", "任务", "完成时限"],
                        [[x["name"], x["description"], x["deadline"]] for x in r["tasks"]])

    d.heading("七、前次会议决议落实情况")
    fu = b["follow_up"]
    if fu["total"]:
        d.para(f"前次会议决议共交办任务{fu['total']}项，已回告{fu['completed']}项（按期{fu['completed_on_time']}项），"
               f"逾期未完成{fu['overdue']}项。")
        d.table(["责任单位", "任务", "时限", "状态", "回告日期", "逾期天数"],
                [[x["name"], x["description"], x["deadline"], _name(labels.TASK_STATUS, x["status"]),
                  x["completed_on"] or "—", x["days_overdue"] or "—"] for x in fu["items"]],
                refs=[x["ref"] for x in fu["items"]])
    else:
        d.para("无前次会议决议任务。")
    d.para("报送：旗委教育工作领导小组", indent=False)
    d.para("发送：联席会议各成员单位", indent=False)

    d.page_break()
    d.heading("附件：事项与事件对照")
    positioned = any(e["position"] for r in b["refs"] for e in r.get("events") or [])
    if positioned:  # as the PDF: the log position people look up on the event page, the id for machines
        d.para("简报所列每一事项均可追溯至平台事件日志中的事件：“位置”即事件日志页面（/events）所示的位置，"
               "其后为事件编号（event id）。")
        d.table(["编号", "事项", "日志位置与事件编号"],
                [[f"[{r['n']}]", r["label"], "\n".join(f"位置 {e['position'] or '—'}  {e['id']}" for e in r["events"])]
                 for r in b["refs"]], size=8)
    else:
        d.para("简报所列每一事项均可追溯至平台事件日志中的事件（event id）。")
        d.table(["编号", "事项", "事件编号"], [[f"[{r['n']}]", r["label"], "\n".join(r["event_ids"])]
                                           for r in b["refs"]], size=8)
    _evidence_docx(d, b["refs"])
    return d.to_bytes()


def _evidence_docx(d: Docx, refs: list[dict[str, Any]]) -> None:
    """The annex of photos and files, as the HTML and PDF show it."""
    with_files = [r for r in refs if (r.get("evidence") or {}).get("items")]
    if not with_files:
        return
    d.heading("附件：事项佐证材料")
    d.para("下列事项附有上报、整改时上传的照片和文件。照片为缩略图，位置等信息已去除；原件在平台上凭账号查看。")
    for r in with_files:
        files = r["evidence"]["items"]
        d.para(f"[{r['n']}] {r['label']}", indent=False)
        d.pictures([base64.b64decode(e["thumbnail"]) for e in files if e["thumbnail"]])
        d.para("；".join(f"{_name(labels.EVENT_TYPES, e['stage'])}：{e['name']}" for e in files), size=9, indent=False)
        if r["evidence"]["more"]:
            d.para(f"另有{r['evidence']['more']}件未列出。", size=9, indent=False)

