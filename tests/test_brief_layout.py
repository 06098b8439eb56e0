"""The PDF brief's layout, looked at the way a reader does: pages rendered to images (pdftoppm)
must be filled (no chart alone on a two-thirds blank page, no half-empty page inside the body),
headers break only between words, and the annex cites events by their log position with a
link into the event log, the event id kept beside it for machines."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from projections.meetings import list_meetings
from services.documents.brief import render, render_html
from services.meetings.brief_data import build_brief
from services.platform import Platform
from services.settings import Settings
from tests.conftest import FIXED_NOW, REQUIRE_SERVICES
from tests.test_brief import demo  # noqa: F401  (module fixture: a county demo year on SQLite)

POPPLER = ("pdftoppm", "pdftotext", "pdfinfo")
TOP_MM, BOTTOM_MM, PAGE_MM = 30, 26, 297  # @page margins of templates/brief.html.j2


@pytest.fixture(scope="module")
def brief(demo: Platform) -> dict[str, Any]:  # noqa: F811
    with demo.read_engine.connect() as conn:
        meeting = list_meetings(conn, 2024)[-1]
    data = build_brief(demo.read_engine, demo.runner.catch_up, meeting["meeting_id"], FIXED_NOW.date(),
                       positions=demo.event_positions)
    assert data is not None
    return data


@pytest.fixture(scope="module")
def pdf(brief: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [tool for tool in POPPLER if shutil.which(tool) is None]
    if missing:
        if REQUIRE_SERVICES:
            pytest.fail(f"{missing} required (make setup installs poppler-utils)")
        pytest.skip(f"{missing} not installed (make setup installs poppler-utils)")
    path = tmp_path_factory.mktemp("layout") / "brief.pdf"
    path.write_bytes(render(brief, "pdf"))
    return path


def page_texts(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return text.split("\f")[:-1]


def filled(png: Path) -> float:
    """How far down the text area the page's ink reaches (0 = empty, 1 = to the bottom margin)."""
    image = Image.open(png).convert("L")
    width, height = image.size
    top, bottom = round(height * TOP_MM / PAGE_MM), round(height * (PAGE_MM - BOTTOM_MM) / PAGE_MM)
    pixels = image.load()
    assert pixels is not None
    lowest = top
    for y in range(top, bottom):
        if any(pixels[x, y] < 160 for x in range(0, width, 2)):
            lowest = y
    return (lowest - top) / (bottom - top)


def test_the_annex_cites_log_positions_that_hold_those_events(brief: dict[str, Any], demo: Platform) -> None:  # noqa: F811
    cited = [e for r in brief["refs"] for e in r["events"]]
    assert cited and all(e["position"] for e in cited)  # every cited event found in the log
    recorder = demo.app.recorder
    for e in cited[:: max(1, len(cited) // 15)]:
        n = recorder.select_notifications(start=e["position"], limit=1)[0]
        assert int(n.id) == e["position"]
        assert e["id"] in (str(n.originator_id), re.search(rb'"event_id":"([^"]+)"', n.state)[1].decode())  # type: ignore[index]
    html = render_html(brief)
    first = brief["refs"][0]["events"][0]
    link = f'href="/events?before={first["position"] + 1}#pos-{first["position"]}"'
    assert link in html and f'data-event-id="{first["id"]}"' in html


def test_the_event_page_the_annex_links_to_shows_the_position(brief: dict[str, Any], demo: Platform) -> None:  # noqa: F811
    from tests.conftest import Api
    from tests.test_web_pages import Browser

    first = brief["refs"][0]["events"][0]
    page = Browser(Api(demo), "education", "auditor").client.get(f"/events?before={first['position'] + 1}")
    assert page.status_code == 200
    assert f'<tr id="pos-{first["position"]}">' in page.text  # the newest row of that page: the cited event


def test_pdf_pages_are_filled_and_charts_share_their_pages(pdf: Path, tmp_path: Path) -> None:
    pages = page_texts(pdf)
    annex = next(i for i, t in enumerate(pages) if "附件" in t and "日志位置" in t)
    subprocess.run(["pdftoppm", "-r", "30", "-gray", "-png", str(pdf), str(tmp_path / "p")], check=True)
    images = sorted(tmp_path.glob("p-*.png"))
    assert len(images) == len(pages)
    body = range(annex - 1)  # the page before the annex ends the body; it may end anywhere
    fill = {i + 1: round(filled(images[i]), 2) for i in body}
    assert all(f >= 0.7 for f in fill.values()), fill  # before: 0.45 and 0.54 on pages 2 and 3
    for title in ("各成员单位本期履职记录数", "各成员单位整改及决议任务按期完成率"):
        page = next(t for t in pages if title in t)
        # the chart's page also holds text that is not the chart (a table or a section)
        assert re.search(r"[一二三四五六七]、|责任盲区|履职|按期完成率\s", page.replace(title, ""))
    assert len(pages) <= 10  # was 12 for this demo year before charts were sized for paper


def test_pdf_headers_break_only_between_words(pdf: Path) -> None:
    text = "\n".join(page_texts(pdf))
    for split in ("履职记\n", "覆盖学\n", "发现问\n", "升级督\n", "逾期天\n", "按期完成\n"):
        assert not re.search(split.replace("\n", r"\s*\n"), text), split
    for header in ("履职", "记录", "未销号", "完成率"):
        assert header in text


def test_pdf_links_to_the_event_log_only_with_the_sites_address(brief: dict[str, Any], tmp_path: Path) -> None:
    if shutil.which("pdfinfo") is None:
        pytest.skip("pdfinfo not installed")
    first = brief["refs"][0]["events"][0]
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(render(brief, "pdf"))
    urls = subprocess.run(["pdfinfo", "-url", str(plain)], capture_output=True, text=True, check=True).stdout
    assert "/events?before=" not in urls  # a relative link means nothing on paper
    linked = tmp_path / "linked.pdf"
    linked.write_bytes(render(brief, "pdf", Settings(public_url="https://lianxi.example.gov.cn/")))
    urls = subprocess.run(["pdfinfo", "-url", str(linked)], capture_output=True, text=True, check=True).stdout
    assert f"https://lianxi.example.gov.cn/events?before={first['position'] + 1}#pos-{first['position']}" in urls
    assert f"位置 {first['position']}" in subprocess.run(["pdftotext", str(linked), "-"], capture_output=True,
                                                         text=True, check=True).stdout


def test_css_font_chain_is_the_word_chain(brief: dict[str, Any]) -> None:
    from services.documents.fonts import Fonts

    html = render_html(brief, print_mode=True)
    fonts = Fonts.of()
    for role, selector in (("body", "body"), ("title", "h1"), ("heading", "h2"), ("kai", "h3")):
        assert re.search(rf"{selector} {{ font-family: {re.escape(fonts.css(role))};", html), role
        assert fonts.chain(role)[0] in html  # the official face first, as the DOCX names it


def test_the_word_annex_cites_the_same_positions(brief: dict[str, Any]) -> None:
    import io

    from docx import Document

    annex = Document(io.BytesIO(render(brief, "docx"))).tables[-1]
    assert annex.rows[0].cells[2].text == "日志位置与事件编号"
    first = brief["refs"][0]["events"][0]
    assert f"位置 {first['position']}  {first['id']}" in annex.rows[1].cells[2].text
