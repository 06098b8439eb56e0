"""The 通知渠道 page in Chromium on a phone: the liaison finds it in the menu, sets the unit's SMS
numbers, sends itself a test message and reads the Chinese result (the shared `lianxi serve` of
test_web_browser runs the logging SMS gateway, so nothing leaves the machine)."""

from __future__ import annotations

from typing import Any

from tests import test_web_browser as web
from tests.test_web_browser import LIAISON_UNIT, PHONE, Server, _context, _no_sideways_scroll, _shot, _sign_in

chromium, server, browser = web.chromium, web.server, web.browser


def test_liaison_sets_sms_numbers_and_sends_a_test_message_on_a_phone(browser: Any, server: Server) -> None:
    ctx = _context(browser, PHONE)
    page = ctx.new_page()
    _sign_in(page, server, server.liaison_token)
    nav = page.get_by_role("navigation", name="主导航")
    nav.locator("summary").click()
    nav.get_by_role("link", name="通知渠道").click()
    page.wait_for_url(f"{server.url}/units/{LIAISON_UNIT}/channels")
    page.get_by_text("设置短信").click()
    page.get_by_label("其他接收号码").fill("13800138001\n1380013800")  # the second is a digit short
    page.locator("#set-sms").get_by_role("button", name="保存").click()
    page.wait_for_load_state()
    assert "其他接收号码须为 11 位手机号码" in page.locator("#set-sms").inner_text()
    page.get_by_label("其他接收号码").fill("13800138001，13800138002")
    page.locator("#set-sms").get_by_role("button", name="保存").click()
    page.wait_for_url(f"{server.url}/units/{LIAISON_UNIT}/channels?done=channel-set")
    card = page.locator("#channel-sms")
    assert "其他号码 138****8001\n其他号码 138****8002" in card.inner_text()
    assert "13800138001" not in page.content()
    card.get_by_role("button", name="发送测试消息").click()
    page.wait_for_load_state()
    assert "测试短信已交给短信网关" in page.locator("#test-result").inner_text()
    _no_sideways_scroll(page)
    _shot(page, "channels-phone.png")
    page.locator("#channel-sms").get_by_role("button", name="停用此渠道").click()
    page.wait_for_url(f"{server.url}/units/{LIAISON_UNIT}/channels?done=channel-removed")
    assert page.locator("#channel-sms").count() == 0
    ctx.close()
