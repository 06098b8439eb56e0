"""The Word brief as a reader opens it: GB/T 9704 structure in the DOCX (heading styles, the
header row marked to repeat, rows kept whole, zh-CN, a red rule that is a border, core
properties), and the same file converted by LibreOffice headless, whose PDF shows the page
numbers "— n —" from the footer and fewer pages than the old equal-width tables gave."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from docx import Document
from docx.oxml.ns import qn
from lxml import etree

from services.documents import ooxml
from services.documents.brief import render_docx
from services.settings import Settings
from tests.conftest import REQUIRE_SERVICES
from tests.test_brief import brief, demo  # noqa: F401  (module fixtures: a demo year and its last brief)

CREATED = datetime(2024, 12, 18, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def docx_bytes(brief: dict[str, Any]) -> bytes:  # noqa: F811
    return render_docx(brief, created=CREATED)


def test_headings_are_word_heading_styles(docx_bytes: bytes) -> None:
    doc = Document(io.BytesIO(docx_bytes))
    by_style: dict[str, list[str]] = {}
    for p in doc.paragraphs:
        by_style.setdefault(p.style.name, []).append(p.text)
    assert by_style["Heading 1"][:2] == ["一、会议及本期概况", "二、各成员单位履职情况"]
    assert all(re.match(r"^[一二三四五六七八九十]+、", t) for t in by_style["Heading 1"][:-1])
    assert all(t.startswith("（") for t in by_style["Heading 2"])
    assert any(re.match(r"^\d+\. ", t) for t in by_style["Heading 3"])
    assert doc.styles["Heading 1"].element.pPr.find(qn("w:outlineLvl")).get(qn("w:val")) == "0"
    # 黑体 for 一级, 楷体 for （一）: the first-level heading is not the lighter one
    assert doc.styles["Heading 1"].element.rPr.rFonts.get(qn("w:eastAsia")) == "黑体"
    assert doc.styles["Heading 2"].element.rPr.rFonts.get(qn("w:eastAsia")) == "楷体_GB2312"


def test_tables_repeat_headers_keep_rows_and_size_columns(docx_bytes: bytes) -> None:
    doc = Document(io.BytesIO(docx_bytes))
    assert doc.tables
    for t in doc.tables:
        first = t.rows[0]._tr.trPr
        assert first is not None and first.find(qn("w:tblHeader")) is not None
        assert all(r._tr.trPr.find(qn("w:cantSplit")) is not None for r in t.rows)
        assert t._tbl.tblPr.find(qn("w:tblLayout")).get(qn("w:type")) == "fixed"
    units = doc.tables[0]
    widths = [int(c.get(qn("w:w"))) for c in units._tbl.tblGrid.findall(qn("w:gridCol"))]
    assert widths[0] > 2 * max(widths[1:])  # the unit names get the room, not the counts
    header = [c.text for c in units.rows[0].cells]
    assert "按期\n完成率" in header  # a header wraps between words, not as 按期完/成率


def test_language_masthead_and_properties(docx_bytes: bytes, brief: dict[str, Any]) -> None:  # noqa: F811
    doc = Document(io.BytesIO(docx_bytes))
    styles = doc.styles.element.xml
    assert 'w:eastAsia="zh-CN"' in styles and 'w:val="en-US" w:eastAsia="en-US"' not in styles
    assert 'w:eastAsia="ja-JP"' not in doc.settings.element.xml
    rule = doc.paragraphs[2]
    assert rule.text == f"{brief['issuer']}\t2024年12月17日"
    border = rule._p.pPr.find(qn("w:pBdr")).find(qn("w:bottom"))
    assert border.get(qn("w:color")) == "C00000"
    assert "—" not in "".join(p.text for p in doc.paragraphs[:4])  # the rule is not em-dashes
    props = doc.core_properties
    assert props.author == brief["issuer"] and props.language == "zh-CN"
    assert props.created == CREATED and "python-docx" not in (props.author or "")


def test_font_chain_official_faces_then_configured_fallbacks(brief: dict[str, Any]) -> None:  # noqa: F811
    doc = Document(io.BytesIO(render_docx(brief)))
    faces = {r._element.rPr.rFonts.get(qn("w:eastAsia")) for p in doc.paragraphs for r in p.runs}
    assert {"仿宋_GB2312", "黑体", "方正小标宋简体"} <= faces
    part = next(p for p in doc.part.package.iter_parts() if str(p.partname) == "/word/fontTable.xml")
    fonts = {f.get(ooxml.w("name")): f for f in etree.fromstring(part.blob).iter(ooxml.w("font"))}
    body = fonts["仿宋_GB2312"]
    assert body.find(ooxml.w("altName")).get(ooxml.w("val")) == "Noto Serif CJK SC"
    assert body.find(ooxml.w("charset")).get(ooxml.w("val")) == "86"
    plain = Document(io.BytesIO(render_docx(brief, Settings(brief_official_faces=False))))
    faces = {r._element.rPr.rFonts.get(qn("w:eastAsia")) for p in plain.paragraphs for r in p.runs}
    assert faces <= {"Noto Serif CJK SC", "Noto Sans CJK SC"}


def test_libreoffice_renders_page_numbers_in_the_footer(docx_bytes: bytes, tmp_path: Path) -> None:
    soffice = shutil.which("soffice")
    if soffice is None or shutil.which("pdftotext") is None:
        if REQUIRE_SERVICES:
            pytest.fail("soffice and pdftotext are required (make setup installs libreoffice-writer-nogui)")
        pytest.skip("LibreOffice not installed (make setup installs libreoffice-writer-nogui)")
    src = tmp_path / "brief.docx"
    src.write_bytes(docx_bytes)
    subprocess.run([soffice, "--headless", f"-env:UserInstallation=file://{tmp_path}/profile", "--convert-to", "pdf",
                    "--outdir", str(tmp_path), str(src)], check=True, capture_output=True, timeout=240)
    pdf = tmp_path / "brief.pdf"
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True,
                                                            check=True).stdout).group(1))  # type: ignore[union-attr]
    texts = [subprocess.run(["pdftotext", "-f", str(i), "-l", str(i), "-layout", str(pdf), "-"], capture_output=True,
                            text=True, check=True).stdout for i in range(1, pages + 1)]
    for i, text in enumerate(texts, 1):
        assert re.search(rf"—\s*{i}\s*—", text.strip().splitlines()[-1])  # the footer is the last line
    assert 5 <= pages <= 16  # equal-width columns gave 24 pages
    assert "联席会议简报" in texts[0] and "一、会议及本期概况" in texts[0]
