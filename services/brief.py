"""The joint-meeting brief (联席会议简报) as HTML, DOCX and PDF.

One data model (``build_brief``, from the read models) feeds three renderers:
- HTML: Jinja2 template ``templates/brief.html.j2``, charts as inline SVG, every listed item
  linked to the API resource that holds its history and to its event ids;
- PDF: the same template in print mode through WeasyPrint (CJK fonts via fontconfig), the
  event ids in an appendix keyed by reference numbers;
- DOCX: python-docx, the East-Asian font set on every run (w:eastAsia), charts as PNG drawn
  with Pillow, the event ids in the same appendix.

Fonts come from a font map (LIANXI_BRIEF_FONT_TITLE / _HEADING / _BODY, and the chart
font file LIANXI_BRIEF_CHART_FONT_FILE), defaulting to Debian's fonts-noto-cjk, so a bureau
with the official 公文 fonts installed (方正小标宋简体, 黑体, 仿宋_GB2312) can use them.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Sequence
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import sqlalchemy as sa
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic_settings import BaseSettings, SettingsConfigDict

from projections import ledger
from projections.catalogue_view import list_agencies
from projections.meetings import assemble_agenda, list_resolutions, task_stats
from projections.rectification_board import unit_stats
from projections.warning_response import response_by_recipient, warnings_between

if TYPE_CHECKING:
    from services.platform import Platform

TEMPLATES = Path(__file__).parent / "templates"
FORMATS = ("html", "docx", "pdf")
ISSUER = "旗校园安全局际联席会议办公室"
NUMERALS = "一二三四五六七八九十"
STATUS_NAMES = {"assigned": "已交办", "in_progress": "整改中", "reopened": "重新整改", "reported": "待交办",
                "completed": "已回告", "verified": "已核验", "closed": "已销号"}
SEVERITY_NAMES = {"general": "一般", "major": "较大", "critical": "重大"}
PHASE_STATE_NAMES = {"closed": "已截止", "open": "进行中", "not-started": "未开始"}


class BriefSettings(BaseSettings):
    """The font map. Family names go to CSS (PDF, via fontconfig) and to Word (DOCX); the
    chart font is a font file Pillow draws PNG charts with (``index`` picks a face in a .ttc)."""

    model_config = SettingsConfigDict(env_prefix="LIANXI_BRIEF_", extra="ignore")
    font_title: str = "Noto Serif CJK SC"
    font_heading: str = "Noto Sans CJK SC"
    font_body: str = "Noto Serif CJK SC"
    chart_font_file: str | None = None
    chart_font_index: int = 0


# -- data ----------------------------------------------------------------------------------


class _Refs:
    """Reference numbers for listed items and the event ids behind each."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, label: str, event_ids: Sequence[str], href: str | None = None) -> int:
        self.items.append({"n": len(self.items) + 1, "label": label, "event_ids": list(event_ids), "href": href})
        return len(self.items)


def build_brief(platform: Platform, meeting_id: str, today: date) -> dict[str, Any] | None:
    platform.runner.catch_up()
    with platform.read_engine.connect() as conn:
        return brief_data(conn, meeting_id, today)


def brief_data(conn: sa.Connection, meeting_id: str, today: date) -> dict[str, Any] | None:
    agenda = assemble_agenda(conn, meeting_id, today)
    if agenda is None:
        return None
    m = agenda["meeting"]
    units: dict[str, str] = agenda["units"]
    start, end = date.fromisoformat(agenda["period_start"]), date.fromisoformat(agenda["period_end"])
    as_of = date.fromisoformat(agenda["as_of"])
    refs = _Refs()
    name = units.get

    activity = ledger.activity(conn, start, min(end, as_of))
    unit_acks = {r["recipient"]: r for r in response_by_recipient(conn, "unit", start.isoformat(), end.isoformat())}
    blind = {b["unit"]: b["count"] for b in agenda["blind_spots"]}
    # Overdue and escalated per unit as in section 三 (the board as of the brief's day), so the
    # table and the list agree even for a brief rendered after the meeting.
    late = {g["unit"]: (g["count"], g["escalated"]) for g in agenda["overdue_rectifications"]}
    unit_rows = []
    for a in list_agencies(conn):
        code = a["code"]
        rect = unit_stats(conn, code, today=as_of, period_start=start, period_end=end)
        tasks = task_stats(conn, code, as_of, start, end)
        act = activity.get(code, {"records": 0, "findings": 0, "schools": 0})
        closed = rect["closed"] + tasks["completed"]
        on_time = rect["closed_on_time"] + tasks["completed_on_time"]
        ack = unit_acks.get(code)
        unit_rows.append({
            "code": code, "name": a["name"], **act,
            "rect_open": rect["open"], "rect_overdue": late.get(code, (0, 0))[0],
            "rect_escalated": late.get(code, (0, 0))[1],
            "rect_closed": rect["closed"], "tasks_open": tasks["open"], "tasks_overdue": tasks["overdue"],
            "closed_total": closed, "on_time_rate": round(on_time / closed, 4) if closed else None,
            "warnings_received": ack["received"] if ack else 0,
            "warnings_acknowledged": ack["acknowledged"] if ack else 0,
            "blind_spots": blind.get(code, 0),
        })

    overdue_groups = []
    for g in agenda["overdue_rectifications"]:
        items = []
        for it in g["items"]:
            ref = refs.add(f"整改事项 {it['id'][:8]}", it["event_ids"], f"/api/v1/rectifications/{it['id']}")
            items.append({**it, "ref": ref, "severity_name": SEVERITY_NAMES.get(it["severity"], it["severity"]),
                          "status_name": STATUS_NAMES.get(it["status"], it["status"])})
        overdue_groups.append({**g, "name": name(g["unit"], g["unit"] or "未交办"), "items": items})
    overdue_tasks = []
    for t in agenda["follow_up"]["items"]:
        if t["overdue"]:
            ref = refs.add(f"决议任务 {t['task_id'][:8]}", t["event_ids"], f"/api/v1/tasks/{t['task_id']}")
            overdue_tasks.append({**t, "ref": ref, "name": name(t["unit"], t["unit"])})
    overdue_tasks.sort(key=lambda t: (-t["days_overdue"], t["task_id"]))
    critical = []
    for h in agenda["critical_hazards"]:
        ref = refs.add(f"重大隐患 {h['id'][:8]}", h["event_ids"], f"/api/v1/rectifications/{h['id']}")
        critical.append({**h, "ref": ref, "unit_name": name(h["lead_unit"] or "", "待交办"),
                         "status_name": STATUS_NAMES.get(h["status"], h["status"])})

    campaigns = []
    for c in agenda["campaigns"]:
        ref = refs.add(f"专项整治 {c['name']}", c["event_ids"], f"/api/v1/campaigns/{c['campaign_id']}")
        phases = [{**p, "state_name": PHASE_STATE_NAMES.get(p["state"], p["state"]),
                   "problems": sum(p["problems_by_aspect"].values())} for p in c["phases"]]
        current = next((p["name"] for p in phases if p["code"] == c["current_phase"]), "—")
        campaigns.append({**c, "ref": ref, "phases": phases, "current_name": current})

    all_warnings = warnings_between(conn, start.isoformat(), end.isoformat())
    flagged = []
    for w in agenda["warnings"]:
        ref = refs.add(f"预警 {w['title']}", w["event_ids"] + [s["event_id"] for s in w["slow"]],
                       f"/api/v1/warnings/{w['warning_id']}")
        flagged.append({**w, "ref": ref,
                        "unacked_units": [name(u["recipient"], u["recipient"]) for u in w["unacknowledged"]
                                          if u["kind"] == "unit"],
                        "unacked_schools": [u["recipient"] for u in w["unacknowledged"] if u["kind"] == "school"],
                        "slow_count": len(w["slow"])})
    recipients = sum(w["recipients"] for w in all_warnings)
    acked = sum(w["acknowledged"] for w in all_warnings)
    latencies = [w["median_latency_minutes"] for w in all_warnings if w["median_latency_minutes"] is not None]
    warning_summary = {
        "count": len(all_warnings), "recipients": recipients, "acknowledged": acked,
        "rate": round(acked / recipients, 4) if recipients else None,
        "median_latency_minutes": sorted(latencies)[len(latencies) // 2] if latencies else None,
        "escalated": sum(1 for w in all_warnings if w["escalated"]),
        "slow": sum(len(w["slow"]) for w in all_warnings),
    }

    proposals = []
    for p in agenda["proposals"]:
        ref = refs.add(f"提请事项 {p['title']}", [p["item_id"], *p["related_event_ids"]])
        proposals.append({**p, "ref": ref, "unit_name": name(p["proposed_by"], p["proposed_by"])})
    decisions = []
    for r in list_resolutions(conn, meeting_id):
        ref = refs.add(f"议定事项 第{r['seq']}项", [r["resolution_id"], *[t["task_id"] for t in r["tasks"]]])
        decisions.append({**r, "ref": ref, "tasks": [{**t, "name": name(t["unit"], t["unit"])} for t in r["tasks"]]})

    fu = agenda["follow_up"]
    follow = []
    for t in fu["items"]:
        ref = refs.add(f"决议任务 {t['task_id'][:8]}", t["event_ids"], f"/api/v1/tasks/{t['task_id']}")
        follow.append({**t, "ref": ref, "name": name(t["unit"], t["unit"]),
                       "status_name": STATUS_NAMES.get(t["status"], t["status"])})

    blind_rows = [{"name": name(b["unit"], b["unit"]), "count": b["count"],
                   "duties": [d["duty_code"] for d in b["duties"]]} for b in agenda["blind_spots"]]
    overdue_count = sum(g["count"] for g in agenda["overdue_rectifications"])
    return {
        "issuer": ISSUER,
        "meeting": m,
        "convener": name(m["convened_by"], m["convened_by"]),
        "number": m["number"],
        "date": m["held_on"] or m["scheduled_for"],
        "period_start": agenda["period_start"], "period_end": agenda["period_end"], "as_of": agenda["as_of"],
        "attendance": [name(u, u) for u in m["attendance"]], "absent": [name(u, u) for u in m["absent"]],
        "units": unit_rows,
        "totals": {
            "records": sum(u["records"] for u in unit_rows),
            "findings": sum(u["findings"] for u in unit_rows),
            "overdue": overdue_count,
            "escalated": sum(g["escalated"] for g in agenda["overdue_rectifications"]),
            "overdue_tasks": len(overdue_tasks),
            "critical": len(critical),
        },
        "overdue_groups": overdue_groups,
        "overdue_tasks": overdue_tasks,
        "critical": critical,
        "campaigns": campaigns,
        "warning_summary": warning_summary,
        "warnings": flagged,
        "blind_spots": blind_rows,
        "proposals": proposals,
        "decisions": decisions,
        "follow_up": {**fu, "items": follow},
        "refs": refs.items,
        "charts": {
            "activity": {"title": "各成员单位本期履职记录数", "unit": "条",
                         "rows": [(u["name"], float(u["records"]), str(u["records"])) for u in unit_rows],
                         "max": float(max([u["records"] for u in unit_rows] + [1])), "color": "#b22222"},
            "on_time": {"title": "各成员单位整改及决议任务按期完成率", "unit": "%",
                        "rows": [(u["name"], (u["on_time_rate"] or 0.0) * 100,
                                  "—" if u["on_time_rate"] is None else f"{u['on_time_rate'] * 100:.0f}%")
                                 for u in unit_rows],
                        "max": 100.0, "color": "#1f4e79"},
        },
    }


# -- charts --------------------------------------------------------------------------------

ROW_H = 22
LABEL_W = 190
BAR_W = 330
VALUE_W = 60
TOP = 34


def chart_svg(chart: dict[str, Any], font: str) -> str:
    """A horizontal bar chart as inline SVG (server-side, no library)."""
    rows = chart["rows"]
    width, height = LABEL_W + BAR_W + VALUE_W, TOP + ROW_H * len(rows) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(chart["title"])}" '
        f'font-family="{escape(font)}, sans-serif" font-size="12">',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">'
        f'{escape(chart["title"])}</text>',
        f'<line x1="{LABEL_W}" y1="{TOP - 4}" x2="{LABEL_W}" y2="{height - 6}" stroke="#555" stroke-width="1"/>',
    ]
    top = chart["max"] or 1.0
    for i, (label, value, shown) in enumerate(rows):
        y = TOP + i * ROW_H
        w = max(0.0, min(1.0, value / top)) * (BAR_W - 10)
        parts.append(f'<text x="{LABEL_W - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{LABEL_W + 1}" y="{y + 3}" width="{w:.1f}" height="{ROW_H - 8}" '
                     f'fill="{chart["color"]}"/>')
        parts.append(f'<text x="{LABEL_W + w + 6:.1f}" y="{y + 14}">{escape(shown)}</text>')
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


def chart_png(chart: dict[str, Any], settings: BriefSettings, scale: int = 2) -> bytes:
    """The same chart as PNG for DOCX, drawn with Pillow (no SVG rasteriser needed)."""
    from PIL import Image, ImageDraw, ImageFont

    rows = chart["rows"]
    width, height = LABEL_W + BAR_W + VALUE_W, TOP + ROW_H * len(rows) + 8
    img = Image.new("RGB", (width * scale, height * scale), "white")
    draw = ImageDraw.Draw(img)
    found = ((settings.chart_font_file, settings.chart_font_index) if settings.chart_font_file
             else _font_file(settings.font_heading))
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
    img.save(buf, format="PNG", optimize=True)
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
    env.filters["minutes"] = _minutes
    env.globals["numeral"] = lambda i: NUMERALS[i - 1] if 1 <= i <= len(NUMERALS) else str(i)
    return env


def render_html(data: dict[str, Any], *, print_mode: bool = False, settings: BriefSettings | None = None) -> str:
    settings = settings or BriefSettings()
    charts = {k: chart_svg(c, settings.font_heading) for k, c in data["charts"].items()}
    return _env().get_template("brief.html.j2").render(
        b=data, charts=charts, fonts=settings, print_mode=print_mode, STATUS_NAMES=STATUS_NAMES)


def render_pdf(data: dict[str, Any], settings: BriefSettings | None = None) -> bytes:
    from weasyprint import HTML

    html = render_html(data, print_mode=True, settings=settings)
    pdf: bytes = HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
    return pdf


def render(data: dict[str, Any], fmt: str, settings: BriefSettings | None = None) -> bytes:
    if fmt == "html":
        return render_html(data, settings=settings).encode("utf-8")
    if fmt == "pdf":
        return render_pdf(data, settings)
    if fmt == "docx":
        return render_docx(data, settings or BriefSettings())
    raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")


# -- DOCX ----------------------------------------------------------------------------------


class _Docx:
    """python-docx with the font map applied to every run (w:ascii/w:hAnsi and w:eastAsia)."""

    def __init__(self, settings: BriefSettings) -> None:
        from docx import Document
        from docx.shared import Mm

        self.fonts = settings
        self.doc = Document()
        section = self.doc.sections[0]
        # GB/T 9704 公文 page: A4, margins top 37, bottom 35, left 28, right 26 mm.
        section.page_width, section.page_height = Mm(210), Mm(297)
        section.top_margin, section.bottom_margin = Mm(37), Mm(35)
        section.left_margin, section.right_margin = Mm(28), Mm(26)
        normal = self.doc.styles["Normal"]
        normal.font.name = settings.font_body
        self._east_asian(normal.element, settings.font_body)

    @staticmethod
    def _east_asian(element: Any, font: str) -> None:
        from docx.oxml.ns import qn

        rpr = element.get_or_add_rPr()
        fonts = rpr.get_or_add_rFonts()
        for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
            fonts.set(qn(attr), font)

    def run(self, paragraph: Any, text: str, *, font: str | None = None, size: float = 12, bold: bool = False,
            color: str | None = None, superscript: bool = False) -> Any:
        from docx.shared import Pt, RGBColor

        r = paragraph.add_run(text)
        name = font or self.fonts.font_body
        r.font.name = name
        self._east_asian(r._element, name)
        r.font.size = Pt(size)
        r.font.bold = bold
        r.font.superscript = superscript
        if color:
            r.font.color.rgb = RGBColor.from_string(color)
        return r

    def para(self, text: str = "", *, font: str | None = None, size: float = 12, bold: bool = False,
             align: str | None = None, color: str | None = None, indent: bool = True, ref: int | None = None) -> Any:
        from docx.enum.text import WD_ALIGN_PARAGRAPH
        from docx.shared import Pt

        p = self.doc.add_paragraph()
        if align == "center":
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        elif indent:
            p.paragraph_format.first_line_indent = Pt(size * 2)
        if text:
            self.run(p, text, font=font, size=size, bold=bold, color=color)
        if ref is not None:
            self.run(p, f"[{ref}]", size=size * 0.7, superscript=True, color="1F4E79")
        return p

    def heading(self, text: str, level: int = 1) -> None:
        self.para(text, font=self.fonts.font_heading, size=14 if level == 1 else 12, bold=level > 1, indent=False)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], refs: Sequence[int | None] = ()) -> None:
        t = self.doc.add_table(rows=1, cols=len(header))
        t.style = "Table Grid"
        for cell, text in zip(t.rows[0].cells, header, strict=True):
            self.run(cell.paragraphs[0], text, font=self.fonts.font_heading, size=9, bold=True)
        for i, row in enumerate(rows):
            cells = t.add_row().cells
            for j, (cell, value) in enumerate(zip(cells, row, strict=True)):
                self.run(cell.paragraphs[0], "" if value is None else str(value), size=9)
                if j == 0 and i < len(refs) and refs[i] is not None:
                    self.run(cell.paragraphs[0], f"[{refs[i]}]", size=7, superscript=True, color="1F4E79")
        self.doc.add_paragraph()

    def picture(self, png: bytes) -> None:
        from docx.enum.text import WD_ALIGN_PARAGRAPH
        from docx.shared import Mm

        self.doc.add_picture(io.BytesIO(png), width=Mm(150))
        paragraph = self.doc.paragraphs[-1]
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
        for r in paragraph.runs:  # the picture's run too: every run names its East-Asian font
            self._east_asian(r._element, self.fonts.font_body)

    def save(self) -> bytes:
        buf = io.BytesIO()
        self.doc.save(buf)
        return buf.getvalue()


def render_docx(data: dict[str, Any], settings: BriefSettings) -> bytes:
    b = data
    d = _Docx(settings)
    red = "C00000"
    d.para("联席会议简报", font=settings.font_title, size=30, bold=True, align="center", color=red)
    d.para(f"{b['meeting']['year']}年第{b['number']}期", size=14, align="center")
    d.para(f"{b['issuer']}    {_cn_date(b['date'])}", size=12, align="center")
    d.para("—" * 24, size=12, align="center", color=red)
    d.para(b["meeting"]["title"], font=settings.font_title, size=18, bold=True, align="center")
    m = b["meeting"]
    t = b["totals"]

    d.heading("一、会议及本期概况")
    held = (f"于{_cn_date(m['held_on'])}召开。出席单位:{'、'.join(b['attendance'])}"
            + (f";缺席单位:{'、'.join(b['absent'])}" if b["absent"] else "") + "。"
            if m["status"] == "held" else f"定于{_cn_date(m['scheduled_for'])}召开。")
    d.para(f"本期简报统计期间为{_cn_date(b['period_start'])}至{_cn_date(b['period_end'])}"
           f"(数据截至{_cn_date(b['as_of'])})。会议由{b['convener']}召集,{held}")
    d.para(f"本期各成员单位共记录履职{t['records']}条,发现问题{t['findings']}处;逾期未完成整改事项"
           f"{t['overdue']}项(其中已升级督办{t['escalated']}项),逾期决议任务{t['overdue_tasks']}项,"
           f"未销号重大隐患{t['critical']}项。")

    d.heading("二、各成员单位履职情况")
    d.table(["单位", "履职记录", "覆盖学校", "发现问题", "未销号整改", "逾期", "升级督办", "按期完成率",
             "预警签收", "责任盲区"],
            [[u["name"], u["records"], u["schools"], u["findings"], u["rect_open"], u["rect_overdue"],
              u["rect_escalated"], _pct(u["on_time_rate"]), f"{u['warnings_acknowledged']}/{u['warnings_received']}",
              u["blind_spots"]] for u in b["units"]])
    for chart in b["charts"].values():
        d.picture(chart_png(chart, settings))
    if b["blind_spots"]:
        d.heading("责任盲区(本期应有而无履职记录的职责)", 2)
        d.table(["单位", "项数", "职责编号"],
                [[r["name"], r["count"], ", ".join(r["duties"])] for r in b["blind_spots"]])

    d.heading("三、逾期及升级督办事项")
    if not b["overdue_groups"]:
        d.para("本期无逾期整改事项。")
    for i, g in enumerate(b["overdue_groups"], 1):
        d.heading(f"({NUMERALS[i - 1] if i <= 10 else i}){g['name']}:逾期{g['count']}项,已升级{g['escalated']}项", 2)
        d.table(["序号", "学校", "问题", "等级", "整改时限", "逾期天数", "督办层级", "状态"],
                [[j, it["school_id"], it["description"], it["severity_name"], it["deadline"], it["days_overdue"],
                  it["escalation_name"] or "—", it["status_name"]] for j, it in enumerate(g["items"], 1)],
                refs=[it["ref"] for it in g["items"]])
    if b["overdue_tasks"]:
        d.heading("逾期决议任务", 2)
        d.table(["单位", "任务", "时限", "逾期天数", "督办层级"],
                [[x["name"], x["description"], x["deadline"], x["days_overdue"], x["escalation_name"] or "—"]
                 for x in b["overdue_tasks"]], refs=[x["ref"] for x in b["overdue_tasks"]])
    if b["critical"]:
        d.heading("未销号重大隐患", 2)
        d.table(["学校", "隐患", "发现日期", "责任单位", "状态"],
                [[h["school_id"], h["description"], h["found_on"], h["unit_name"], h["status_name"]]
                 for h in b["critical"]], refs=[h["ref"] for h in b["critical"]])

    d.heading("四、专项整治进展")
    if not b["campaigns"]:
        d.para("本年度尚未启动专项整治。")
    rows, refs = [], []
    for c in b["campaigns"]:
        for k, p in enumerate(c["phases"]):
            rows.append([c["name"] if k == 0 else "", c["current_name"] if k == 0 else "",
                         f"{p['name']}({p['state_name']})", p["deadline"], f"{p['on_time']}/{p['schools']}",
                         p["late"], p["missed"], p["problems"]])
            refs.append(c["ref"] if k == 0 else None)
    if rows:
        d.table(["专项整治", "当前阶段", "阶段", "截止日期", "按期", "逾期完成", "未完成", "发现问题"], rows, refs=refs)
    for c in b["campaigns"]:
        if c["behind_schools"]:
            more = "等" if len(c["behind_schools"]) > 30 else ""
            d.para(f"{c['name']}进度滞后学校{len(c['behind_schools'])}所:{'、'.join(c['behind_schools'][:30])}{more}。")

    d.heading("五、预警响应情况")
    ws = b["warning_summary"]
    d.para(f"本期共发布预警{ws['count']}次,应签收{ws['recipients']}家次,已签收{ws['acknowledged']}家次,"
           f"签收率{_pct(ws['rate'])},签收用时中位数{_minutes(ws['median_latency_minutes'])};"
           f"超时签收{ws['slow']}家次,升级报告牵头单位{ws['escalated']}次。")
    if b["warnings"]:
        d.table(["预警", "等级", "发布时间(UTC)", "签收率", "未签收单位", "未签收学校", "超时签收"],
                [[w["title"], w["level_name"], w["issued_at"][:16].replace("T", " "), _pct(w["rate"]),
                  "、".join(w["unacked_units"]) or "—", "、".join(w["unacked_schools"][:10]) or "—", w["slow_count"]]
                 for w in b["warnings"]], refs=[w["ref"] for w in b["warnings"]])

    d.heading("六、提请会议研究事项")
    if not b["proposals"]:
        d.para("本期无成员单位提请事项。")
    for i, p in enumerate(b["proposals"], 1):
        d.para(f"{i}. {p['title']}({p['unit_name']}提请)" + (f":{p['detail']}" if p["detail"] else ""), ref=p["ref"])
    if b["decisions"]:
        d.heading("会议议定事项", 2)
        for r in b["decisions"]:
            d.para(f"{r['seq']}. {r['text']}", ref=r["ref"])
            if r["tasks"]:
                d.table(["责任单位", "任务", "完成时限"],
                        [[x["name"], x["description"], x["deadline"]] for x in r["tasks"]])

    d.heading("七、前次会议决议落实情况")
    fu = b["follow_up"]
    if fu["total"]:
        d.para(f"前次会议决议共交办任务{fu['total']}项,已回告{fu['completed']}项(按期{fu['completed_on_time']}项),"
               f"逾期未完成{fu['overdue']}项。")
        d.table(["责任单位", "任务", "时限", "状态", "回告日期", "逾期天数"],
                [[x["name"], x["description"], x["deadline"], x["status_name"], x["completed_on"] or "—",
                  x["days_overdue"] or "—"] for x in fu["items"]], refs=[x["ref"] for x in fu["items"]])
    else:
        d.para("无前次会议决议任务。")
    d.para("报送:旗委教育工作领导小组", indent=False)
    d.para("发送:联席会议各成员单位", indent=False)

    page_break = d.doc.add_page_break()  # type: ignore[no-untyped-call]
    for r in page_break.runs:
        d._east_asian(r._element, settings.font_body)
    d.heading("附件:事项与事件编号对照")
    d.para("简报所列每一事项均可追溯至平台事件日志中的事件(event id)。")
    d.table(["编号", "事项", "事件编号"], [[f"[{r['n']}]", r["label"], "\n".join(r["event_ids"])] for r in b["refs"]])
    return d.save()
