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
