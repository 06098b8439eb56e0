"""Server-made SVG charts for the pages: no JavaScript, no external assets.

Each chart is ``role="img"`` with a <title> and a <desc> (named by aria-labelledby), and every
bar carries its value as text, so a screen reader, a printout and a colour-blind reader all get
the figures. The SVGs scale to their container (viewBox, width 100%), so one drawing serves a
390 px phone and a desktop. Colours meet WCAG AA contrast against white for the text drawn.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Bar fills (dark enough for white-on-bar and bar-on-white 3:1 non-text contrast).
PALETTE = ("#1f5fa8", "#b3541e", "#2e7d32", "#6a3d9a")
TEXT = "#1a1a1a"
MUTED = "#555555"
GRID = "#d0d0d0"

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    """Unique ids within a page for aria-labelledby (a counter: pages render in one process)."""
    return f"{prefix}{next(_ids)}"


def _head(width: int, height: int, title: str, desc: str, css_class: str) -> tuple[str, str]:
    tid, did = _id("chart-t"), _id("chart-d")
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css_class}" viewBox="0 0 {width} {height}" '
            f'width="100%" role="img" aria-labelledby="{tid} {did}" preserveAspectRatio="xMinYMin meet">'
            f'<title id="{tid}">{escape(title)}</title><desc id="{did}">{escape(desc)}</desc>')
    return head, "</svg>"


WIDTH = 400  # viewBox units; scaled to the box: about 0.8 CSS px each on a 360-390 px phone
# Sizes in viewBox units, chosen so the smallest text is still at least 12 CSS px on a 360 px phone
# (a chart box there is about 310 px wide: 15 x 310 / 400 = 11.6, so 16 is the floor).
FONT = 17
SMALL = 16


def text_width(text: str, size: float = FONT) -> float:
    """Rough advance width: CJK and full-width characters are square, the rest about half."""
    return sum(size if ord(ch) >= 0x2E80 else size * 0.56 for ch in text)


def clip_to(text: str, room: float, size: float = FONT) -> str:
    if text_width(text, size) <= room:
        return text
    out = ""
    for ch in text:
        if text_width(out + ch + "…", size) > room:
            break
        out += ch
    return out + "…"


def month_bars(title: str, series: Sequence[tuple[str, int]], *, unit: str = "次") -> Markup:
    """Vertical bars, one per month: ``series`` is [("2025-01", 12), ...]."""
    n = max(len(series), 1)
    width, height, left, bottom, top = WIDTH, 220, 4, 30, 24
    slot = (width - 2 * left) / n
    peak = max((v for _, v in series), default=0) or 1
    plot = height - bottom - top
    desc = "；".join(f"{_month_label(m)} {v}{unit}" for m, v in series) or "无数据"
    head, tail = _head(width, height, title, f"{title}：{desc}", "chart-months")
    parts = [head, f'<line x1="{left}" y1="{height - bottom}" x2="{width - left}" y2="{height - bottom}" '
                   f'stroke="{GRID}" stroke-width="1"/>']
    if not series:
        parts.append(f'<text x="{left}" y="{top + 20}" font-size="{FONT}" fill="{MUTED}">暂无数据</text>')
    for i, (month, value) in enumerate(series):
        h = plot * value / peak
        x = left + i * slot + slot * 0.15
        w = slot * 0.7
        y = height - bottom - h
        cx = left + i * slot + slot / 2
        size = SMALL if text_width(str(value), SMALL) <= slot else SMALL * slot / text_width(str(value), SMALL)
        parts.append(f'<g><title>{escape(_month_label(month))}：{value}{escape(unit)}</title>'
                     f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{PALETTE[0]}"/>'
                     f'<text x="{cx:.1f}" y="{y - 5:.1f}" text-anchor="middle" font-size="{size:.1f}" '
                     f'fill="{TEXT}">{value}</text>'
                     f'<text x="{cx:.1f}" y="{height - bottom + 19:.1f}" text-anchor="middle" '
                     f'font-size="{SMALL}" fill="{MUTED}">{int(month[5:7])}月</text></g>')
    parts.append(tail)
    return Markup("".join(parts))


def _month_label(month: str) -> str:
    return f"{month[:4]}年{int(month[5:7])}月" if len(month) >= 7 else month


@dataclass(frozen=True)
class Bar:
    """One row of a horizontal bar chart. ``values`` has one number per series; ``text``
    is written after the bars (e.g. "80%（8/10）"), or below them when there is no room;
    a ``None`` value draws no bar (e.g. "不适用")."""

    label: str
    values: tuple[float | None, ...]
    text: str
    detail: str = ""


def hbars(
    title: str, rows: Sequence[Bar], *, maximum: float | None = None, series: Sequence[str] = (),
    empty: str = "暂无数据",
) -> Markup:
    """Horizontal bars with the label above each bar, so long Chinese labels stay readable on
    a phone. ``maximum`` fixes the scale (1.0 for ratios); by default the largest value.
    ``series`` names the series for a legend when there is more than one."""
    width = WIDTH
    bar_h = 16
    track = width * 0.62
    legend_h = 26 if len(series) > 1 else 0
    peak = maximum or max((v or 0 for r in rows for v in r.values), default=0) or 1
    body: list[str] = []
    y0 = legend_h
    for r in rows:
        tip = f"{r.label}：{r.text}" + (f"（{r.detail}）" if r.detail else "")
        body.append(f'<g><title>{escape(tip)}</title>'
                    f'<text x="0" y="{y0 + FONT}" font-size="{FONT}" fill="{TEXT}">'
                    f'{escape(clip_to(r.label, width))}</text>')
        y = y0 + FONT + 6
        end = 0.0
        for j, v in enumerate(r.values):
            if v is not None:
                w = max(track * min(v, peak) / peak, 2.0 if v > 0 else 0.0)
                end = max(end, w)
                body.append(f'<rect x="0" y="{y:.1f}" width="{w:.1f}" height="{bar_h - 3}" '
                            f'fill="{PALETTE[j % len(PALETTE)]}"/>')
            y += bar_h
        bars = [v for v in r.values if v is not None]
        after = end + 6 if bars else 0.0
        if after + text_width(r.text, SMALL) <= width:  # beside the bars
            body.append(f'<text x="{after:.1f}" y="{y0 + FONT + 6 + SMALL:.1f}" font-size="{SMALL}" '
                        f'fill="{TEXT}">{escape(r.text)}</text></g>')
        else:  # below them
            body.append(f'<text x="0" y="{y + SMALL:.1f}" font-size="{SMALL}" fill="{TEXT}">'
                        f'{escape(clip_to(r.text, width, SMALL))}</text></g>')
            y += SMALL + 4
        y0 = y + 10
    height = max(y0, legend_h + 30) + 4
    desc_rows = [f"{r.label}：{r.text}" for r in rows]
    desc = f"{title}：" + ("；".join(desc_rows) if desc_rows else empty)
    head, tail = _head(width, int(height), title, desc, "chart-hbars")
    parts = [head]
    if legend_h:
        x = 0.0
        for i, name in enumerate(series):
            parts.append(f'<rect x="{x:.1f}" y="5" width="14" height="14" fill="{PALETTE[i % len(PALETTE)]}"/>'
                         f'<text x="{x + 20:.1f}" y="17" font-size="{SMALL}" fill="{TEXT}">{escape(name)}</text>')
            x += 34 + text_width(name, SMALL)
    if not rows:
        parts.append(f'<text x="0" y="{legend_h + 22}" font-size="{FONT}" fill="{MUTED}">{escape(empty)}</text>')
    parts.extend(body)
    parts.append(tail)
    return Markup("".join(parts))


def percent(ratio: float | None, digits: int = 0) -> str:
    return "—" if ratio is None else f"{ratio * 100:.{digits}f}%"
