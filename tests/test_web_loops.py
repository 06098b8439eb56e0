"""Every rectification and meeting loop closes on the pages, each form acting once (issue 16)."""

from __future__ import annotations

import re

from tests.conftest import Api, register_schools
from tests.test_web_pages import Browser, head

LIAISON = "fire-rescue"


def _types(api: Api, since: int) -> list[str]:
    notes = api.platform.app.recorder.select_notifications(start=since + 1, limit=1000)
    return [n.topic.rsplit(".", 1)[-1] for n in notes]


def test_the_rectification_loop_closes_on_the_pages_and_a_replay_stores_nothing(api: Api) -> None:
    register_schools(api, 2)
    liaison = Browser(api, LIAISON)
    lead = Browser(api, "education", "lead")
    start = head(api)
    form = f"/units/{LIAISON}/hazards/new"
    hazard = {"school_id": "T001", "category": "fire", "severity": "major", "description": "消防通道被占用",
              "found_on": "2025-06-29"}
    r = liaison.post(form, {**hazard, "description": ""})
    assert r.status_code == 422 and "请填写隐患描述。" in r.text
    r = liaison.post(form, hazard)
    assert r.status_code == 303 and r.headers["location"].endswith("done=hazard")
    assert liaison.post(form, hazard).status_code == 303  # Back and submit again: a replay
    assert _types(api, start) == ["HazardReported"]
    api.settle()
    item = re.search(r'/rectifications/([0-9a-f-]{36})"', lead.client.get("/rectifications").text).group(1)  # type: ignore[union-attr]
    page = f"/rectifications/{item}"
    assert "测试学校1" in lead.client.get(page).text
    r = lead.post(f"{page}/assign", {"lead_unit": LIAISON, "deadline": "2025-07-20", "measures": "清理通道",
                                     "funds_amount": "", "funds_source": ""}, form_page=page)
    assert r.status_code == 303, r.text
    work = f"/units/{LIAISON}/work"

    def complete(summary: str) -> None:
        text = liaison.client.get(work).text
        seen = re.search(r'name="seen" value="([^"]+)"', text).group(1)  # type: ignore[union-attr]
        data = {"summary": summary, "evidence": "sha256:ab12", "seen": seen}
        assert liaison.post(f"/units/{LIAISON}/rectifications/{item}/completion", data, form_page=work) \
            .status_code == 303
        assert liaison.post(f"/units/{LIAISON}/rectifications/{item}/completion", data, form_page=work) \
            .status_code == 303  # a double tap

    def seen_on(path: str) -> str:
        return re.search(r'name="seen" value="([^"]+)"', lead.client.get(path).text).group(1)  # type: ignore[union-attr]

    complete("通道已清理")
    r = lead.post(f"{page}/reject", {"reason": "", "new_deadline": "2025-07-25", "seen": seen_on(page)},
                  form_page=page)
    assert r.status_code == 422 and "请填写退回理由。" in r.text
    r = lead.post(f"{page}/reject", {"reason": "现场仍有杂物", "new_deadline": "2025-07-25", "seen": seen_on(page)},
                  form_page=page)
    assert r.status_code == 303 and r.headers["location"].endswith("done=rejected")
    complete("通道已清理")  # the same words on the next round are a new completion
    r = lead.post(f"{page}/verify", {"note": "", "seen": seen_on(page)}, form_page=page)
    assert r.status_code == 303
    assert _types(api, start) == ["HazardReported", "RectificationAssigned", "RectificationCompleted",
                                  "RectificationRejected", "RectificationCompleted", "RectificationVerified"]
    # A liaison cannot verify, and the auditor reads but cannot act.
    assert liaison.post(f"{page}/verify", {"note": ""}, form_page=work).status_code == 403
    assert "已销号" in Browser(api, "education", "auditor").client.get(page).text


def test_the_meeting_loop_closes_on_the_pages(api: Api) -> None:
    register_schools(api, 1)
    lead = Browser(api, "education", "lead")
    liaison = Browser(api, LIAISON)
    start = head(api)
    r = lead.post("/meetings", {"scheduled_for": "2025-06-30", "place": "三楼会议室"})
    assert r.status_code == 303
    meeting = r.headers["location"].split("?")[0]
    assert lead.post(f"{meeting}/items", {"title": "暑期防溺水", "detail": ""}, form_page=meeting).status_code == 303
    held = {"held_on": "2025-06-30", "attendance": ["education", LIAISON], "minutes": "研究暑期安全工作。"}
    assert lead.post(f"{meeting}/held", held, form_page=meeting).status_code == 303
    page = lead.client.get(meeting).text
    assert "研究暑期安全工作。" in page and "缺席单位" in page and "旗公安局" in page
    task = {"text": "开展防溺水检查", "task_0_unit": LIAISON, "task_0_description": "检查水域警示标志",
            "task_0_deadline": "2025-07-15"}
    assert lead.post(f"{meeting}/resolutions", task, form_page=meeting).status_code == 303
    work = f"/units/{LIAISON}/work"
    tid = re.search(r"/tasks/([0-9a-f-]{36})/completion", liaison.client.get(work).text).group(1)  # type: ignore[union-attr]
    assert liaison.post(f"/units/{LIAISON}/tasks/{tid}/completion", {"summary": "已检查"}, form_page=work) \
        .status_code == 303
    r = lead.post(f"{meeting}/tasks/{tid}/verify", {"note": "同意"}, form_page=meeting)
    assert r.status_code == 303 and r.headers["location"].endswith("done=task-verified")
    assert lead.post(f"{meeting}/tasks/{tid}/verify", {"note": "同意"}, form_page=f"{meeting}").status_code == 303
    types = _types(api, start)
    assert types[:3] == ["MeetingScheduled", "AgendaItemProposed", "MeetingHeld"]
    assert types[-3:] == ["TaskAssigned", "TaskCompleted", "TaskVerified"] and types.count("TaskVerified") == 1


def test_a_duty_log_resubmitted_from_a_restored_form_is_stored_once(api: Api) -> None:
    schools = register_schools(api, 1)
    b = Browser(api, LIAISON)
    form = f"/units/{LIAISON}/log"
    duty = re.search(r'<option value="([^"]+)"', b.client.get(form).text.split('id="duty_code"')[1]).group(1)  # type: ignore[union-attr]
    data = {"duty_code": duty, "occurred_on": "2025-06-29", "school_ids": schools, "summary": "检查消防器材",
            "findings_count": "0", "findings_text": "", "evidence": ""}
    start = head(api)
    # Each GET renders a fresh form id, as Chromium's Back does before restoring the typed fields.
    for form_id in ("11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"):
        assert b.post(form, {**data, "form_id": form_id}).status_code == 303
    assert _types(api, start) == ["DutyPerformed"]
