"""The joint-meeting brief rendered from a demo year in HTML, DOCX and PDF: unit names, the
number of overdue items compared with the rectification board, charts, East-Asian fonts on
every DOCX run, event ids in the appendix, the configurable font map, the API and the CLI."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from docx import Document
from docx.oxml.ns import qn

from contracts.catalogue import default_catalogue
from projections.meetings import list_meetings
from projections.rectification_board import list_items
from services.demo.year import run_demo
from services.documents.brief import render, render_html
from services.meetings.brief_data import build_brief
from services.platform import Platform
from services.settings import Settings
from tests.conftest import FIXED_NOW, REQUIRE_SERVICES, Api, make_platform
from tests.zygote import run_cli

UNIT_NAMES = [u.name for u in default_catalogue().units.units]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A county demo year (2024, complete as of FIXED_NOW) on SQLite."""
    db = tmp_path_factory.mktemp("brief") / "demo.db"
    p = make_platform(f"sqlite:///{db}")
    run_demo(p.app, default_catalogue(), schools=40, year=2024, seed=3, now=FIXED_NOW)
    p.runner.catch_up()
    yield p
    p.close()


@pytest.fixture(scope="module")
def brief(demo: Platform) -> dict[str, Any]:
    with demo.read_engine.connect() as conn:
        meetings = list_meetings(conn, 2024)
    assert len(meetings) == 4 and all(m["status"] == "held" for m in meetings)  # one per quarter
    data = build_brief(demo.read_engine, demo.runner.catch_up, meetings[-1]["meeting_id"], FIXED_NOW.date())
    assert data is not None
    return data


def board_overdue(demo: Platform, as_of: str) -> int:
    with demo.read_engine.connect() as conn:
        return len(list_items(conn, today=date.fromisoformat(as_of), limit=100_000, overdue=True))


def flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_the_demo_year_has_a_full_agenda(brief: dict[str, Any], demo: Platform) -> None:
    assert brief["totals"]["overdue"] == board_overdue(demo, brief["as_of"]) > 0
    assert sum(u["rect_overdue"] for u in brief["units"]) == brief["totals"]["overdue"]
    assert all(u["rect_escalated"] <= u["rect_overdue"] for u in brief["units"])
    assert brief["proposals"] and brief["decisions"] and brief["follow_up"]["total"] > 0
    assert brief["campaigns"] and len(brief["campaigns"]) == 6 and brief["warning_summary"]["count"] > 0
    assert all(r["event_ids"] for r in brief["refs"])


def test_html_has_units_charts_overdue_items_and_event_links(brief: dict[str, Any], demo: Platform) -> None:
    html = render(brief, "html").decode()
    for name in UNIT_NAMES:
        assert name in html
    assert html.count("<svg") == 2
    n = board_overdue(demo, brief["as_of"])
    assert html.count('class="overdue-item"') == n
    assert f"逾期未完成整改事项{n}项" in html
    assert "/api/v1/rectifications/" in html and "/api/v1/tasks/" in html
    for ref in brief["refs"]:
        assert f'id="ref-{ref["n"]}"' in html
        assert all(f'data-event-id="{e}"' in html for e in ref["event_ids"])


def test_docx_text_fonts_images_and_appendix(brief: dict[str, Any], demo: Platform) -> None:
    doc = Document(io.BytesIO(render(brief, "docx")))
    cells = [c.text for t in doc.tables for row in t.rows for c in row.cells]
    text = "\n".join([p.text for p in doc.paragraphs] + cells)
    for name in UNIT_NAMES:
        assert name in text
    n = board_overdue(demo, brief["as_of"])
    assert f"逾期未完成整改事项{n}项" in text
    overdue_rows = sum(len(t.rows) - 1 for t in doc.tables if t.rows[0].cells[-2].text == "督办层级")
    assert overdue_rows == n
    runs = [r for p in doc.paragraphs for r in p.runs] + [
        r for t in doc.tables for row in t.rows for c in row.cells for p in c.paragraphs for r in p.runs]
    assert runs and all(r._element.rPr.rFonts.get(qn("w:eastAsia")) for r in runs)
    assert len(doc.inline_shapes) == 2  # the two charts, as PNG
    appendix = doc.tables[-1]
    assert appendix.rows[0].cells[2].text == "事件编号"
    first = brief["refs"][0]
    assert first["event_ids"][0] in appendix.rows[1].cells[2].text


def test_pdf_text_through_pdftotext(brief: dict[str, Any], demo: Platform, tmp_path: Path) -> None:
    if shutil.which("pdftotext") is None:
        if REQUIRE_SERVICES:
            pytest.fail("pdftotext is required (make setup installs poppler-utils)")
        pytest.skip("pdftotext not installed (make setup installs poppler-utils)")
    pdf = render(brief, "pdf")
    assert pdf.startswith(b"%PDF")
    path = tmp_path / "brief.pdf"
    path.write_bytes(pdf)
    text = flat(subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout)
    assert "联席会议简报" in text
    for name in UNIT_NAMES:
        assert name in text
    n = board_overdue(demo, brief["as_of"])
    assert f"逾期未完成整改事项{n}项" in text
    assert brief["refs"][-1]["event_ids"][0] in text  # the appendix carries the event ids


def test_the_font_map_is_configurable(brief: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANXI_BRIEF_FONT_BODY", "仿宋_GB2312")
    monkeypatch.setenv("LIANXI_BRIEF_FONT_TITLE", "方正小标宋简体")
    settings = Settings()
    assert '"仿宋_GB2312"' in render_html(brief, settings=settings)
    doc = Document(io.BytesIO(render(brief, "docx", settings)))
    fonts = {r._element.rPr.rFonts.get(qn("w:eastAsia")) for p in doc.paragraphs for r in p.runs}
    assert {"仿宋_GB2312", "方正小标宋简体"} <= fonts


def test_the_lead_gets_the_brief_from_the_api(demo: Platform, brief: dict[str, Any]) -> None:
    api = Api(demo)
    mid = brief["meeting"]["meeting_id"]
    media = {"html": "text/html", "docx": "application/vnd.openxmlformats", "pdf": "application/pdf"}
    for fmt in ("html", "docx"):
        r = api.client.get(f"/api/v1/meetings/{mid}/brief?format={fmt}", headers=api.as_("education", "lead"))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith(media[fmt])
        assert "attachment" in r.headers["content-disposition"]
    r = api.client.get(f"/api/v1/meetings/{mid}/brief?format=html", headers=api.as_("education", "auditor"))
    assert r.status_code == 200 and "旗消防大队" in r.text
    assert api.client.get(f"/api/v1/meetings/{mid}/brief?format=rtf",
                          headers=api.as_("education", "lead")).status_code == 422
    assert api.client.get("/api/v1/meetings/00000000-0000-0000-0000-000000000000/brief",
                          headers=api.as_("education", "lead")).status_code == 404


def test_the_cli_writes_the_brief(demo: Platform, brief: dict[str, Any], tmp_path: Path) -> None:
    env = {**os.environ, "LIANXI_DATABASE_URL": demo.settings.database_url}
    out = tmp_path / "b.docx"
    proc = run_cli(["brief", "--meeting", "2024-4", "--format", "docx", "-o", str(out)], env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "written to" in proc.stdout
    written = Document(str(out))
    assert "旗消防大队" in "\n".join(c.text for t in written.tables for row in t.rows for c in row.cells)
    bad = run_cli(["brief", "--meeting", "nope", "--format", "pdf", "-o", str(out)], env=env, timeout=120)
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "lianxi: error:" in bad.stderr
