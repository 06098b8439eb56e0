"""The brief of a meeting whose items have photos shows them in its annex, in HTML, PDF and
DOCX: the thumbnails stored for the photos (no metadata), with the stage and the file name,
fetched through the API as the lead gets them."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from docx import Document

from tests.conftest import REQUIRE_SERVICES, Api, register_schools
from tests.evidence_fixtures import photo_with_gps


def _upload(api: Api, unit: str, name: str, data: bytes) -> dict[str, Any]:
    r = api.client.post("/api/v1/evidence", headers=api.as_(unit), files=[("files", (name, data, "image/jpeg"))])
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()["files"][0]
    return out


def _brief(api: Api, mid: str, fmt: str) -> bytes:
    r = api.client.get(f"/api/v1/meetings/{mid}/brief?format={fmt}", headers=api.as_("education", "auditor"))
    assert r.status_code == 200, r.text
    return r.content


def test_the_brief_annex_shows_each_items_photos_in_html_pdf_and_docx(sqlite_api: Api, tmp_path: Path) -> None:
    api = sqlite_api
    register_schools(api)
    lead = api.as_("education", "lead")
    before = _upload(api, "fire-rescue", "配电箱.jpg", photo_with_gps("orange"))
    r = api.client.post("/api/v1/hazards", headers=api.as_("fire-rescue"), json={
        "reported_by": {"kind": "unit"}, "school_id": "T001", "category": "fire", "severity": "critical",
        "description": "配电箱线路裸露，存在触电和火灾风险", "found_on": "2025-06-28", "evidence": [before["ref"]]})
    assert r.status_code == 201, r.text
    item = r.json()["id"]
    assert api.client.post(f"/api/v1/rectifications/{item}/assignment", headers=lead, json={
        "lead_unit": "fire-rescue", "cooperating_units": [], "deadline": "2025-07-20", "measures": ["线路穿管"],
        "funds": {"amount_cny": "500", "source": "学校公用经费"}}).status_code == 200
    after = _upload(api, "fire-rescue", "整改中.jpg", photo_with_gps("teal"))
    assert api.client.post(f"/api/v1/rectifications/{item}/progress", headers=api.as_("fire-rescue"), json={
        "note": "已断电，线路穿管施工中", "percent": 60, "evidence": [after["ref"]]}).status_code == 200
    r = api.client.post("/api/v1/meetings", headers=lead, json={"scheduled_for": "2025-07-10", "place": "会议室"})
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    thumbs = {}
    for ref in (before, after):
        thumb = api.client.get(ref["thumbnail_url"], headers=lead)
        assert thumb.status_code == 200
        thumbs[ref["name"]] = thumb.content

    html = _brief(api, mid, "html").decode()
    annex = html[html.index("附件：事项佐证材料"):]
    shown = [base64.b64decode(b) for b in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', annex)]
    assert shown == [thumbs["配电箱.jpg"], thumbs["整改中.jpg"]]
    assert "隐患上报：配电箱.jpg" in annex and "整改进展：整改中.jpg" in annex
    assert "重大隐患" in annex

    doc = Document(io.BytesIO(_brief(api, mid, "docx")))
    images = [p.blob for p in doc.part.package.parts if p.content_type == "image/jpeg"]
    assert set(thumbs.values()) <= set(images)  # beside the brief's own pictures
    text = "\n".join(p.text for p in doc.paragraphs)
    assert "附件：事项佐证材料" in text and "隐患上报：配电箱.jpg；整改进展：整改中.jpg" in text

    pdf = _brief(api, mid, "pdf")
    assert pdf.startswith(b"%PDF")
    if shutil.which("pdfimages") is None:
        if REQUIRE_SERVICES:
            pytest.fail("pdfimages is required (make setup installs poppler-utils)")
        pytest.skip("pdfimages not installed (make setup installs poppler-utils)")
    path = tmp_path / "brief.pdf"
    path.write_bytes(pdf)
    listing = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in listing.splitlines()[2:] if line.strip()]
    assert len(rows) == 2 and {(r[3], r[4]) for r in rows} == {("320", "240")}  # the two thumbnails
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "事项佐证材料" in re.sub(r"\s+", "", text)
