"""What a person reads is in county time and names things by name (issue 16).

Every page each role can open from its menu (and the item, meeting and warning pages they link
to), and the meeting brief, are fetched and their visible text scanned: no UTC ISO timestamp, no
``+00:00``, no "UTC", no duty code and no bare school code outside a link or an element marked
as code (``<code>`` or ``class="code"``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from contracts.catalogue import default_catalogue
from contracts.typography import ascii_punctuation_beside_cjk
from services.documents.timefmt import local_time
from tests.conftest import Api, register_schools
from tests.test_web_pages import Browser

LIAISON = "fire-rescue"
SKIPPED = {"a", "code", "script", "style"}


class VisibleText(HTMLParser):
    """The text a person reads, without links and code-marked elements."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
                      "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []  # per open element: is it skipped?
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        classes = (dict(attrs).get("class") or "").split()
        self.stack.append(tag in SKIPPED or "code" in classes)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID or not self.stack:
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not any(self.stack):
            self.parts.append(data)


def visible(html: str) -> str:
    p = VisibleText()
    p.feed(html)
    return " ".join(p.parts)


def offences(html: str, schools: list[str]) -> list[str]:
    text = visible(html)
    found = re.findall(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}[^\s<]*", text)
    found += [m for m in ("+00:00", "UTC") if m in text]
    duty_codes = {d.code for u in default_catalogue().units.units for d in u.duties}
    found += [c for c in duty_codes if re.search(rf"(?<![\w.-]){re.escape(c)}(?![\w-])", text)]
    found += [s for s in schools if re.search(rf"(?<![A-Za-z0-9]){s}(?![A-Za-z0-9])", text)]
    found += ascii_punctuation_beside_cjk(text)  # official typography: （一）、，：；
    return found


def test_the_scanner_finds_what_it_must() -> None:
    html = ('<p>2026-11-16T12:02:00+00:00 发布（UTC）</p><p>T001 fire-rescue.management-system</p>'
            '<a href="/x">T001</a><code>T002</code><span class="code">T003</span>')
    assert offences(html, ["T001", "T002", "T003"]) == [
        "2026-11-16T12:02:00+00:00", "+00:00", "UTC", "fire-rescue.management-system", "T001"]


def test_local_time_is_county_time_without_a_zone() -> None:
    assert local_time("2026-11-16T12:02:00+00:00") == "2026-11-16 20:02"
    assert local_time(datetime(2026, 11, 16, 23, 30, tzinfo=UTC)) == "2026-11-17 07:30"
    assert local_time("2026-11-16") == "2026-11-16"


def _county_with_activity(api: Api) -> list[str]:
    schools = register_schools(api, 3)
    lead = api.as_("education", "lead")
    r = api.client.post("/api/v1/hazards", headers=api.as_(LIAISON), json={
        "reported_by": {"kind": "unit"}, "school_id": schools[0], "category": "fire", "severity": "critical",
        "description": "配电室电线老化", "found_on": "2025-06-20"})
    assert r.status_code == 201, r.text
    item = r.json()["id"]
    r = api.client.post(f"/api/v1/rectifications/{item}/assignment", headers=lead, json={
        "lead_unit": LIAISON, "deadline": "2025-07-20", "measures": ["更换电线"],
        "funds": {"amount_cny": "100", "source": "学校公用经费"}})
    assert r.status_code == 200, r.text
    r = api.client.post("/api/v1/warnings", headers=api.as_("meteorology"), json={
        "warning_type": "rainstorm", "level": "orange", "title": "暴雨橙色预警", "towns": ["满都拉图镇"],
        "valid_from": "2025-06-30T12:00:00+08:00", "valid_until": "2025-07-01T12:00:00+08:00",
        "measures": ["停止户外活动"], "units": ["education", LIAISON]})
    assert r.status_code == 201, r.text
    r = api.client.post("/api/v1/meetings", headers=lead, json={"scheduled_for": "2025-07-10", "place": "三楼"})
    assert r.status_code == 201, r.text
    api.settle()
    return schools


@pytest.mark.parametrize("role", ["lead", "auditor", "liaison"])
def test_no_page_or_brief_shows_utc_or_codes(sqlite_api: Api, role: str) -> None:
    api = sqlite_api
    schools = _county_with_activity(api)
    b = Browser(api, "education" if role != "liaison" else LIAISON, role)
    start = b.client.get("/")
    home = start.headers["location"]
    seen: set[str] = set()
    queue = [home]
    while queue:
        path = queue.pop(0)
        if path in seen or len(seen) > 60:
            continue
        seen.add(path)
        r = b.client.get(path)
        if r.status_code in (303, 403, 404):
            continue
        assert r.status_code == 200, (path, r.status_code)
        if not r.headers["content-type"].startswith("text/html"):
            continue  # a spreadsheet download (its own tests read its cells)
        assert offences(r.text, schools) == [], path
        for link in re.findall(r'href="(/[^"#?]*)"', r.text):
            if link.startswith(("/static", "/api", "/review")) or link in seen:
                continue  # the review pages belong to the review's own work (issue 14)
            if link.endswith((".docx", ".pdf")):
                continue
            queue.append(link)
    assert len(seen) >= (8 if role != "liaison" else 4), seen
    if role != "liaison":
        briefs = [p for p in seen if p.endswith("brief.html")]
        assert briefs, seen
        assert "2025-06-30 12:00" in b.client.get("/warnings").text  # issued 04:00 UTC = 12:00 in the county
