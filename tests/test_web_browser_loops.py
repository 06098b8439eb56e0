"""The loops of issue 16 walked in Debian's Chromium at 390×844, each asserting the event log
(read back through /api/v1/events), not only the page: the rectification loop, the meeting loop,
the duty log's Back-and-resubmit, and the extension request (申请延期) refused then granted."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import UTC, datetime
from typing import Any

from events.base import local_date
from tests import test_web_browser as web
from tests.test_web_browser import LIAISON_UNIT, PHONE, Server, _context, _no_sideways_scroll, _shot, _sign_in

# The live server and the browser are test_web_browser's session fixtures.
chromium, server, browser = web.chromium, web.server, web.browser


def _events_after(server: Server, position: int) -> list[dict[str, Any]]:
    req = urllib.request.Request(f"{server.url}/api/v1/events?after={position}&limit=500",
                                 headers={"Authorization": f"Bearer {server.lead_token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return list(json.load(r)["items"])


def _head(server: Server) -> int:
    position = 0
    while batch := _events_after(server, position):
        position = batch[-1]["position"]
    return position


def test_the_rectification_loop_on_a_phone(browser: Any, server: Server) -> None:
    start = _head(server)
    today = local_date(datetime.now(UTC))
    liaison = _context(browser, PHONE).new_page()
    lead = _context(browser, PHONE).new_page()
    _sign_in(liaison, server, server.liaison_token)
    _sign_in(lead, server, server.lead_token)
    work = f"{server.url}/units/{LIAISON_UNIT}/work"

    liaison.goto(work)
    liaison.get_by_role("link", name="上报隐患").click()
    liaison.get_by_label("学校").select_option(index=1)
    liaison.get_by_label("隐患类别").select_option(index=1)
    liaison.get_by_label("隐患等级").select_option("major")
    liaison.get_by_label("隐患描述").fill("浏览器测试：教学楼二层疏散指示灯损坏")
    _no_sideways_scroll(liaison)
    liaison.get_by_role("button", name="上报隐患").click()
    liaison.wait_for_url(re.compile(r"done=hazard"))

    lead.goto(f"{server.url}/rectifications?status=reported")
    lead.get_by_role("link", name=re.compile("疏散指示灯损坏")).first.click()
    lead.get_by_label("牵头整改单位").select_option(LIAISON_UNIT)
    lead.get_by_label("整改期限").fill(today.fromordinal(today.toordinal() + 14).isoformat())
    lead.get_by_label("整改措施").fill("更换疏散指示灯")
    _shot(lead, "lead-assign-phone.png")
    lead.get_by_role("button", name="交办").click()
    lead.wait_for_url(re.compile(r"done=assigned"))
    item_url = lead.url.split("?")[0]

    def complete(summary: str) -> None:
        liaison.goto(work)
        card = liaison.locator("article", has_text="疏散指示灯损坏").first
        card.locator("summary", has_text="回告整改完成").click()
        card.get_by_label("整改情况").fill(summary)
        card.get_by_label("佐证材料").last.fill("sha256:9f2c")
        card.get_by_role("button", name="回告完成").click()
        liaison.wait_for_url(re.compile(r"done=completion"))

    complete("已更换全部指示灯")
    lead.goto(item_url)
    lead.get_by_label("退回理由").fill("三层仍有一处未更换")
    lead.get_by_label("新的整改期限").fill(today.fromordinal(today.toordinal() + 7).isoformat())
    lead.get_by_role("button", name="退回").click()
    lead.wait_for_url(re.compile(r"done=rejected"))
    complete("三层指示灯已更换")
    lead.goto(item_url)
    _shot(lead, "lead-verify-phone.png")
    lead.get_by_role("button", name="核验销号").click()
    lead.wait_for_url(re.compile(r"done=verified"))
    assert "已销号" in lead.locator("main").inner_text()
    _no_sideways_scroll(lead)

    types = [e["type"] for e in _events_after(server, start)]
    assert types == ["HazardReported", "RectificationAssigned", "RectificationCompleted", "RectificationRejected",
                     "RectificationCompleted", "RectificationVerified"], types


def test_the_meeting_loop_on_a_phone(browser: Any, server: Server) -> None:
    start = _head(server)
    today = local_date(datetime.now(UTC)).isoformat()
    lead = _context(browser, PHONE).new_page()
    _sign_in(lead, server, server.lead_token)
    lead.goto(f"{server.url}/meetings")
    lead.get_by_label("会议日期").fill(today)
    lead.get_by_role("button", name="安排会议").click()
    lead.wait_for_url(re.compile(r"done=meeting-scheduled"))
    lead.locator("#item-title").fill("暑期防溺水工作")
    lead.get_by_role("button", name="添加议题").click()
    lead.wait_for_url(re.compile(r"done=item-added"))
    lead.get_by_label("召开日期").fill(today)
    lead.get_by_label("会议纪要").fill("会议研究部署暑期安全工作。")
    lead.get_by_role("button", name="记录会议").click()
    lead.wait_for_url(re.compile(r"done=held"))
    assert "会议研究部署暑期安全工作。" in lead.locator("main").inner_text()
    lead.get_by_label("决议内容").fill("开展防溺水专项检查")
    lead.locator("#task-0-unit").select_option(LIAISON_UNIT)
    lead.locator("#task-0-desc").fill("检查水域警示标志")
    day = local_date(datetime.now(UTC))
    lead.locator("#task-0-deadline").fill(day.fromordinal(day.toordinal() + 7).isoformat())
    lead.get_by_role("button", name="通过决议").click()
    lead.wait_for_load_state()
    assert "done=resolution" in lead.url, lead.locator("main").inner_text()[:600]
    meeting_url = lead.url.split("?")[0]

    liaison = _context(browser, PHONE).new_page()
    _sign_in(liaison, server, server.liaison_token)
    liaison.goto(f"{server.url}/units/{LIAISON_UNIT}/work")
    card = liaison.locator("article", has_text="检查水域警示标志").first
    card.locator("summary", has_text="回告").last.click()
    card.get_by_label("完成情况").fill("已检查完毕")
    card.get_by_role("button", name=re.compile("回告")).last.click()
    liaison.wait_for_url(re.compile(r"done=completion"))

    lead.goto(meeting_url)
    lead.get_by_role("button", name="核销任务").click()
    lead.wait_for_url(re.compile(r"done=task-verified"))
    _shot(lead, "lead-meeting-held-phone.png")
    types = [e["type"] for e in _events_after(server, start)]
    assert types[:3] == ["MeetingScheduled", "AgendaItemProposed", "MeetingHeld"], types
    assert "ResolutionAdopted" in types and types[-2:] == ["TaskCompleted", "TaskVerified"], types


def test_duty_log_back_and_resubmit_stores_one_event(browser: Any, server: Server) -> None:
    page = _context(browser, PHONE).new_page()
    _sign_in(page, server, server.liaison_token)
    page.goto(f"{server.url}/units/{LIAISON_UNIT}/log")
    page.get_by_label("履行的职责").select_option(index=1)
    page.get_by_role("group", name="涉及的学校").get_by_role("checkbox").first.check()
    page.get_by_label("工作摘要").fill("浏览器测试：返回后再次提交")
    start = _head(server)
    page.get_by_role("button", name="保存履职记录").click()
    page.wait_for_url(re.compile(r"done=duty-logged"))
    page.go_back()
    page.wait_for_load_state()
    # Whatever Chromium restored, the person fills the same record in again and saves.
    page.get_by_label("履行的职责").select_option(index=1)
    box = page.get_by_role("group", name="涉及的学校").get_by_role("checkbox").first
    if not box.is_checked():
        box.check()
    page.get_by_label("工作摘要").fill("浏览器测试：返回后再次提交")
    page.get_by_role("button", name="保存履职记录").click()
    page.wait_for_url(re.compile(r"done=duty-logged"))
    types = [e["type"] for e in _events_after(server, start)]
    assert types == ["DutyPerformed"], types


def _api_post(server: Server, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(f"{server.url}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return dict(json.load(r))


def test_the_extension_request_loop_on_a_phone(browser: Any, server: Server) -> None:
    """申请延期 on the item page: the liaison asks, the lead refuses; it asks again, the lead grants."""
    today = local_date(datetime.now(UTC))

    def day(offset: int) -> str:
        return today.fromordinal(today.toordinal() + offset).isoformat()

    start = _head(server)
    item = _api_post(server, server.liaison_token, "/api/v1/hazards", {
        "reported_by": {"kind": "unit"}, "school_id": _first_school(server), "category": "fire",
        "severity": "general", "description": "浏览器测试：消防器材待更换", "found_on": today.isoformat()})["id"]
    _api_post(server, server.lead_token, f"/api/v1/rectifications/{item}/assignment", {
        "lead_unit": LIAISON_UNIT, "deadline": day(10), "measures": ["更换消防器材"],
        "funds": {"amount_cny": "0", "source": "无需资金"}})
    liaison = _context(browser, PHONE).new_page()
    lead = _context(browser, PHONE).new_page()
    _sign_in(liaison, server, server.liaison_token)
    _sign_in(lead, server, server.lead_token)

    def ask(until: str, reason: str) -> None:
        liaison.goto(f"{server.url}/units/{LIAISON_UNIT}/work")
        card = liaison.locator("article", has_text="消防器材待更换").first
        card.get_by_role("link", name=re.compile("申请延期")).click()
        liaison.locator("summary", has_text="申请延期").click()
        liaison.get_by_label("申请延至").fill(until)
        liaison.get_by_label("申请理由").fill(reason)
        _no_sideways_scroll(liaison)
        liaison.get_by_role("button", name="提交延期申请").click()
        liaison.wait_for_url(re.compile(r"done=extension-requested"))
        assert "延期申请待审核" in liaison.locator("main").inner_text()

    ask(day(40), "器材厂家停产，需重新采购")
    lead.goto(f"{server.url}/rectifications/{item}")
    assert "器材厂家停产" in lead.locator("main").inner_text()
    lead.get_by_label("不同意的理由").fill("可先调剂其他学校库存")
    _no_sideways_scroll(lead)
    lead.get_by_role("button", name="不同意延期", exact=True).click()
    lead.wait_for_url(re.compile(r"done=extension-refused"))

    ask(day(20), "调剂库存不足，需延期十天")
    lead.goto(f"{server.url}/rectifications/{item}")
    assert lead.get_by_label("同意延至").input_value() == day(20)  # the requested day, ready to grant
    _shot(lead, "lead-extension-request-phone.png")
    lead.get_by_role("button", name="同意延期", exact=True).click()
    lead.wait_for_url(re.compile(r"done=extended"))
    assert day(20) in lead.locator("main").inner_text()

    events = _events_after(server, start)
    types = [e["type"] for e in events]
    assert types == ["HazardReported", "RectificationAssigned", "ExtensionRequested", "ExtensionRefused",
                     "ExtensionRequested", "DeadlineExtended"], types
    granted = events[-1]["data"]
    assert (granted["new_deadline"], granted["extension"]) == (day(20), 1)


def _first_school(server: Server) -> str:
    req = urllib.request.Request(f"{server.url}/api/v1/schools?limit=1",
                                 headers={"Authorization": f"Bearer {server.lead_token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return str(json.load(r)["items"][0]["id"])
