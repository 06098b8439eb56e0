"""The liaison's remaining loops on pages, each asserting the event log: a duty log's findings
reported as hazards in the same form, proposing an agenda item, answering an assigned petition;
and the brief opening inline under its Chinese file name."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import unquote

from projections.base import LoggedEvent
from tests.conftest import Api, register_schools
from tests.test_web_pages import Browser, head

LIAISON = "fire-rescue"


def _events_since(api: Api, position: int) -> list[tuple[str, dict[str, Any]]]:
    """(Class.Event, data) for every event stored after ``position``, as the log holds them."""
    out = []
    for n in api.platform.app.recorder.select_notifications(start=position + 1, limit=1000):
        event = LoggedEvent.from_notification(n)
        out.append((event.topic.rsplit(":", 1)[-1], event.data))
    return out


def _names(events: list[tuple[str, Any]]) -> list[str]:
    return [name for name, _ in events]


def test_a_duty_logs_findings_become_hazards_in_the_same_form_once(api: Api) -> None:
    schools = register_schools(api, 3)
    liaison = Browser(api, LIAISON)
    start = head(api)
    form = {"duty_code": "fire-rescue.inspection", "occurred_on": "2025-06-02", "school_ids": schools[:2],
            "summary": "消防检查两所学校", "findings_count": "2", "findings_text": "疏散通道堆放杂物",
            "findings_as_hazards": "yes", "hazard_category": "fire", "hazard_severity": "major",
            "form_id": str(uuid.uuid4())}
    r = liaison.post(f"/units/{LIAISON}/log", form)
    assert r.status_code == 303 and r.headers["location"].endswith("done=duty-logged-hazards"), r.text[:500]
    stored = _events_since(api, start)
    assert _names(stored).count("DutyRecord.DutyPerformed") == 1
    hazards = [e for name, e in stored if name == "Rectification.HazardReported"]
    assert sorted(h["school_id"] for h in hazards) == schools[:2]
    assert {(h["category"], h["severity"], h["description"]) for h in hazards} == {
        ("fire", "major", "疏散通道堆放杂物")}
    # Back and Save again (the same restored form): nothing new is stored.
    after = head(api)
    r = liaison.post(f"/units/{LIAISON}/log", form)
    assert r.status_code == 303
    assert head(api) == after
    # Without findings there is nothing to report as a hazard: a Chinese message, nothing stored.
    r = liaison.post(f"/units/{LIAISON}/log", {**form, "findings_count": "0", "summary": "另一次检查"})
    assert r.status_code == 422 and "发现问题数须大于 0" in r.text
    assert head(api) == after


def _schedule(api: Api, day: str = "2025-07-10") -> str:
    r = api.client.post("/api/v1/meetings", headers=api.as_("education", "lead"),
                        json={"scheduled_for": day, "place": "教育局三楼会议室"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_liaison_proposes_an_agenda_item(api: Api) -> None:
    mid = _schedule(api)
    api.settle()
    liaison = Browser(api, LIAISON)
    page = liaison.client.get(f"/units/{LIAISON}/agenda")
    assert page.status_code == 200 and "提请议题" in page.text
    start = head(api)
    r = liaison.post(f"/units/{LIAISON}/agenda", {"meeting_id": mid, "title": "暑期防溺水联合巡查",
                                                  "detail": "建议与公安、水利联合巡查重点水域"})
    assert r.status_code == 303 and r.headers["location"].endswith("done=proposed")
    stored = _events_since(api, start)
    assert _names(stored) == ["Meeting.AgendaItemProposed"]
    event = stored[0][1]
    assert event["proposed_by"] == LIAISON and event["title"] == "暑期防溺水联合巡查"
    lead = Browser(api, "education", "lead")
    assert "暑期防溺水联合巡查" in lead.client.get(f"/meetings/{mid}").text
    # A meeting that is not open for items (unknown id) is refused in Chinese, nothing stored.
    r = liaison.post(f"/units/{LIAISON}/agenda", {"meeting_id": str(uuid.uuid4()), "title": "x"})
    assert r.status_code == 422 and "请选择一次尚未召开的会议" in r.text
    assert head(api) == start + 1
    # The auditor reads but cannot propose; another unit cannot propose in this unit's name.
    auditor = Browser(api, "education", "auditor")
    assert auditor.post(f"/units/{LIAISON}/agenda", {"meeting_id": mid, "title": "y"},
                        form_page="/dashboard").status_code == 403
    other = Browser(api, "public-security")
    assert other.post(f"/units/{LIAISON}/agenda", {"meeting_id": mid, "title": "y"},
                      form_page="/units/public-security/agenda").status_code == 403
    assert head(api) == start + 1


def test_a_liaison_answers_an_assigned_petition(api: Api) -> None:
    register_schools(api, 1)
    r = api.client.post("/api/v1/petitions", headers=api.as_("petitions"), json={
        "reference": "XF2025-0007", "channel": "letter", "topic": "canteen", "school_id": "T001",
        "summary": "反映学校食堂饭菜价格偏高", "handling_unit": "market-supervision", "received_on": "2025-06-01"})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    api.settle()
    liaison = Browser(api, "market-supervision")
    page = liaison.client.get("/units/market-supervision/petitions")
    assert page.status_code == 200 and "学校食堂" in page.text and "测试学校1" in page.text
    assert "canteen" not in page.text.replace('value="canteen"', "")
    start = head(api)
    r = liaison.post(f"/units/market-supervision/petitions/{pid}/answer",
                     {"answered_on": "2025-06-20", "answer": "已核查，督促学校公示价格"},
                     form_page="/units/market-supervision/petitions")
    assert r.status_code == 303 and r.headers["location"].endswith("done=answered")
    stored = _events_since(api, start)
    assert _names(stored) == ["Petition.PetitionAnswered"]
    assert stored[0][1]["answer"] == "已核查，督促学校公示价格"
    # Answered once: the page lists it as answered, and a second answer is a readable refusal.
    page = liaison.client.get("/units/market-supervision/petitions")
    assert "已答复" in page.text
    # A unit that does not handle the petition cannot answer it through its own pages.
    other = Browser(api, LIAISON)
    assert other.post(f"/units/{LIAISON}/petitions/{pid}/answer", {"answered_on": "2025-06-20", "answer": "x"},
                      form_page=f"/units/{LIAISON}/petitions").status_code == 404
    assert head(api) == start + 1


def test_the_html_brief_opens_inline_under_its_chinese_name(api: Api) -> None:
    mid = _schedule(api)
    api.settle()
    lead = Browser(api, "education", "lead")
    deadline = time.monotonic() + 60
    while (r := lead.client.get(f"/meetings/{mid}/brief.html")).status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.5)  # 正在生成: a loaded machine renders slower than the page waits
    assert r.status_code == 200, r.text[:300]
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("inline;")
    name = unquote(disposition.split("filename*=UTF-8''")[1])
    assert name == "2025年第一次联席会议简报.html"
