"""DOCX and XLSX uploads lose the author names of their core properties (who wrote, who last
saved); every other part keeps its exact contents, name, date and order, and the file still
opens in python-docx and openpyxl. A file naming nobody is kept byte for byte; a package that
inflates past the limit is refused, not inflated."""

from __future__ import annotations

import io
import zipfile

import openpyxl
import pytest
from docx import Document

from services.evidence import office
from services.evidence.cleaning import Refused, clean, sha256

NAMES = ("测试作者甲老师", "测试作者乙")


def _docx(author: str = NAMES[0], last: str = NAMES[1]) -> bytes:
    doc = Document()
    doc.add_paragraph("消防安全自查记录：灭火器均在有效期内。")
    props = doc.core_properties
    props.author, props.last_modified_by, props.title = author, last, "自查记录表"
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def _xlsx() -> bytes:
    wb = openpyxl.Workbook()
    wb.active["A1"] = "隐患数"
    wb.active["B1"] = 3
    wb.properties.creator, wb.properties.lastModifiedBy, wb.properties.title = NAMES[0], NAMES[1], "督查汇总"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _parts(data: bytes) -> list[tuple[str, tuple[int, ...], bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, i.date_time, z.read(i)) for i in z.infolist()]


@pytest.mark.parametrize("make", [_docx, _xlsx])
def test_author_names_go_and_every_other_part_stays(make: object) -> None:
    original = make()  # type: ignore[operator]
    assert all(n.encode() in dict((p[0], p[2]) for p in _parts(original))["docProps/core.xml"] for n in NAMES)
    kept = clean(original, max_bytes=10**7)
    assert kept.digest == sha256(kept.data) and kept.data != original
    for name in NAMES:
        assert name.encode() not in kept.data
    before, after = _parts(original), _parts(kept.data)
    assert [(n, d) for n, d, _ in after] == [(n, d) for n, d, _ in before]  # names, dates, order
    changed = [n for (n, _, a), (_, _, b) in zip(before, after, strict=True) if a != b]
    assert changed == ["docProps/core.xml"]
    core = dict((n, c) for n, _, c in after)["docProps/core.xml"]
    assert "自查记录表".encode() in core or "督查汇总".encode() in core  # the title stays
    assert clean(original, max_bytes=10**7).data == kept.data  # the same upload is the same blob


def test_cleaned_files_still_open() -> None:
    docx = Document(io.BytesIO(clean(_docx(), max_bytes=10**7).data))
    assert docx.paragraphs[0].text == "消防安全自查记录：灭火器均在有效期内。"
    assert docx.core_properties.author == "" and docx.core_properties.title == "自查记录表"
    wb = openpyxl.load_workbook(io.BytesIO(clean(_xlsx(), max_bytes=10**7).data))
    assert (wb.active["A1"].value, wb.active["B1"].value) == ("隐患数", 3)
    assert wb.properties.lastModifiedBy is None and wb.properties.title == "督查汇总"
    assert wb.properties.creator == "openpyxl"  # its own default when the file names no creator


def test_a_file_naming_nobody_is_kept_byte_for_byte() -> None:
    nobody = clean(_docx(), max_bytes=10**7).data
    with zipfile.ZipFile(io.BytesIO(nobody)) as z:
        assert b"creator" not in z.read("docProps/core.xml")
    assert clean(nobody, max_bytes=10**7).data == nobody
    assert office.strip_authors(nobody) is nobody  # not even rewritten


def test_a_package_inflating_past_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    original = _docx()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as z, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as w:
        for info in z.infolist():
            w.writestr(info, z.read(info))
        w.writestr("word/media/zeros.bin", bytes(3 * 1024 * 1024))  # 3 MiB of zeros, a few KiB packed
    monkeypatch.setattr(office, "MAX_EXPANDED", 1024 * 1024)
    assert len(out.getvalue()) < 200_000
    with pytest.raises(Refused) as refused:
        clean(out.getvalue(), max_bytes=10**7)
    assert refused.value.status == 413


def test_a_corrupt_package_is_refused() -> None:
    data = bytearray(_docx())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("docProps/core.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 5] ^= 0xFF  # inside core.xml's compressed bytes
    with pytest.raises(Refused) as refused:
        clean(bytes(data), max_bytes=10**7)
    assert refused.value.status == 415
