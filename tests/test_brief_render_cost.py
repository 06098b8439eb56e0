"""What the brief's renderers do to be fast must not change what they write: the DOCX table rows
built straight in lxml are the rows python-docx would build, the SVG charts name a font face
WeasyPrint can find, and the garbage collector paused for a render is resumed after it."""

from __future__ import annotations

import gc
import io
import threading

from docx import Document
from lxml import etree

from projections.collector import collector_paused
from services.documents import ooxml
from services.documents.brief import chart_svg
from services.documents.docx import CELL_MARGIN_TWIPS, Docx
from services.documents.fonts import Fonts

VALUES = ["旗教育局", "", " 前后有空格 ", "位置 1  abc\n位置 2  def", "a\tb", "1\r\n2", 12, None]


def _python_docx_run(text: str) -> list[bytes]:
    """The run content (after its w:rPr) python-docx writes for ``text``."""
    p = Document().add_paragraph()
    r = p.add_run(text)
    return [etree.tostring(el) for el in r._element if el.tag != ooxml.w("rPr")]


def test_lxml_table_rows_are_the_rows_python_docx_makes() -> None:
    d = Docx(Fonts("Noto Serif CJK SC", "Noto Sans CJK SC", "Noto Serif CJK SC"))
    rows = [[v, v] for v in VALUES]
    refs = [7, None, 3, None, None, None, None, None]
    d.table(["甲", "乙"], rows, refs)
    doc = Document(io.BytesIO(d.to_bytes()))
    table = doc.tables[-1]
    body = table.rows[1:]
    assert len(body) == len(VALUES)
    first_rpr = None
    for row, value, ref in zip(body, VALUES, refs, strict=True):
        tr = row._tr
        assert tr.trPr is not None and tr.trPr.find(ooxml.w("cantSplit")) is not None
        assert tr.trPr.find(ooxml.w("tblHeader")) is None  # only the header row repeats
        text = "" if value is None else str(value)
        for j, cell in enumerate(row.cells):
            tcpr = cell._tc.tcPr
            assert tcpr is not None
            tcw = tcpr.find(ooxml.w("tcW"))
            assert tcw.get(ooxml.w("type")) == "dxa" and int(tcw.get(ooxml.w("w"))) > 2 * CELL_MARGIN_TWIPS
            p = cell.paragraphs[0]._p
            assert p.pPr is not None and p.pPr.find(ooxml.w("spacing")) is not None
            runs = p.findall(ooxml.w("r"))
            got = [etree.tostring(el) for el in runs[0] if el.tag != ooxml.w("rPr")]
            assert got == _python_docx_run(text), (value, got)
            rpr = etree.tostring(runs[0].find(ooxml.w("rPr")))
            first_rpr = first_rpr or rpr
            assert rpr == first_rpr  # the body's one run format, copied
            if j == 0 and ref is not None:
                assert runs[1].find(ooxml.w("t")).text == f"[{ref}]"
                assert runs[1].find(ooxml.w("rPr")).find(ooxml.w("vertAlign")).get(ooxml.w("val")) == "superscript"
            else:
                assert len(runs) == 1
    assert body[6].cells[0].paragraphs[0].alignment is None  # a column of text is not centred
    header = table.rows[0].cells[0].paragraphs[0]
    assert header.alignment is not None  # the header is


def test_svg_charts_name_faces_weasyprint_finds() -> None:
    fonts = Fonts("Noto Serif CJK SC", "Noto Sans CJK SC", "Noto Serif CJK SC")
    svg = chart_svg({"title": "图", "rows": [("甲", 1.0, "1")], "max": 1.0, "color": "#b22"}, fonts.css("heading"))
    root = etree.fromstring(svg.encode())
    families = root.get("font-family").split(",")
    # WeasyPrint's SVG text strips quotes, not spaces, from each name
    assert [f.strip("\"'") for f in families] == ["黑体", "Noto Sans CJK SC", "sans-serif"]


def test_the_collector_is_paused_for_a_render_and_resumed_after() -> None:
    assert gc.isenabled()
    seen: list[bool] = []
    inside = threading.Event()
    release = threading.Event()

    def other() -> None:
        with collector_paused():
            inside.set()
            release.wait(5)

    with collector_paused():
        seen.append(gc.isenabled())
        t = threading.Thread(target=other)
        t.start()
        inside.wait(5)
    seen.append(gc.isenabled())  # the other render still runs
    release.set()
    t.join()
    seen.append(gc.isenabled())
    assert seen == [False, False, True]
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # not turned on when it was off before
    finally:
        gc.enable()
