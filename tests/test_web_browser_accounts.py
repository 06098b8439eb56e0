"""People's accounts in a real browser (Chromium via Playwright against `lianxi serve`, the fixtures
of tests/test_web_browser.py): the lead (a demo account) creates an account for a fire-brigade
liaison and issues it an API token; the liaison signs in with the initial password, is made to
change it, enrols TOTP (the code computed with pyotp from the secret the page shows), signs out
and back in with a code; the lead disables the account and the liaison's open session and API
token stop working on the next request. Made-up test people only."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from typing import Any

import pyotp

from services.demo.accounts import DEMO_PASSWORD
from tests import test_web_browser as web
from tests.test_web_browser import DESKTOP, LIAISON_UNIT, PHONE, Server, _context, _no_sideways_scroll, _shot

chromium, server, browser = web.chromium, web.server, web.browser

NEW_PASSWORD = "Browser-fire-2025"


def _api_status(server: Server, token: str) -> int:
    request = urllib.request.Request(f"{server.url}/api/v1/agencies/{LIAISON_UNIT}/ledger",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _sign_in(page: Any, server: Server, account: str, password: str, code: str = "") -> None:
    page.goto(f"{server.url}/signin")
    page.locator("#account").fill(account)
    page.locator("#password").fill(password)
    if code:
        page.locator("#code").fill(code)
    page.get_by_role("button", name="登录", exact=True).click()
    page.wait_for_load_state()


def test_an_account_from_creation_to_disabling(browser: Any, server: Server) -> None:
    lead_ctx = _context(browser, DESKTOP)
    lead = lead_ctx.new_page()
    _sign_in(lead, server, "demo.education", DEMO_PASSWORD)
    assert lead.url.endswith("/dashboard")
    assert "演示·教育局管理员" in lead.locator(".who").inner_text()
    lead.get_by_role("link", name="账号管理").click()
    lead.get_by_label("所属单位").select_option(LIAISON_UNIT)
    lead.get_by_label("角色").first.select_option("liaison")
    lead.get_by_label("账号名").fill("fire.browser")
    lead.get_by_label("姓名").fill("测试·消防联络员")
    lead.get_by_role("button", name="开通账号").click()
    initial = lead.locator("#initial-password").inner_text().strip()
    assert len(initial) >= 10
    _shot(lead, "accounts-created-desktop.png")
    # An API token for the liaison's own systems, bound to the account.
    lead.get_by_label("持有人").select_option(label="测试·消防联络员（fire.browser）")
    lead.get_by_label("用途说明").fill("浏览器测试凭证")
    lead.get_by_role("button", name="签发凭证").click()
    token = lead.locator("#issued-token").inner_text().strip()
    assert token.startswith("lx_") and _api_status(server, token) == 200

    ctx = _context(browser, PHONE)
    page = ctx.new_page()
    _sign_in(page, server, "fire.browser", initial)
    assert page.url.endswith("/account/password")  # made to change the initial password first
    page.goto(f"{server.url}/units/{LIAISON_UNIT}")
    assert page.url.endswith("/account/password")
    _no_sideways_scroll(page)
    page.get_by_label("当前密码").fill(initial)
    page.get_by_label("新密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("再次输入新密码").fill(NEW_PASSWORD)
    page.get_by_role("button", name="保存新密码").click()
    page.wait_for_url(re.compile(r"/account\?done=password-changed"))

    page.get_by_role("link", name="启用动态口令").click()
    assert page.locator("figure.qr svg path").count() >= 1  # the QR is inline SVG
    _no_sideways_scroll(page)
    _shot(page, "account-totp-phone.png")
    secret = page.locator("#totp-secret").inner_text().strip()
    page.get_by_label("动态口令").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="确认绑定").click()
    page.wait_for_url(re.compile(r"/account\?done=totp-enrolled"))
    assert page.locator("#totp-state").inner_text() == "已启用"

    page.get_by_role("button", name="退出登录").click()
    page.wait_for_url(re.compile(r"/signin\?done=signed-out"))
    _sign_in(page, server, "fire.browser", NEW_PASSWORD)  # no code: refused
    assert "动态口令不正确" in page.locator("#signin-error").inner_text()
    # The next step's code: the enrolment used this step's, and a code counts once.
    _sign_in(page, server, "fire.browser", NEW_PASSWORD, pyotp.TOTP(secret).at(time.time() + 30))
    assert page.url.endswith(f"/units/{LIAISON_UNIT}")
    assert "测试·消防联络员" in page.locator(".who").inner_text()
    _shot(page, "account-signed-in-phone.png")

    lead.goto(f"{server.url}/accounts")
    row = lead.locator('[id="account-fire.browser"]')
    row.locator("summary", has_text="管理").click()  # a row's forms are folded away
    row.get_by_role("button", name="停用").click()
    lead.wait_for_url(re.compile(r"/accounts\?done=disabled"))
    assert "已停用" in lead.locator('[id="account-fire.browser"]').inner_text()

    page.goto(f"{server.url}/units/{LIAISON_UNIT}/log")
    assert "/signin" in page.url  # the open session ended on its next request
    assert _api_status(server, token) == 401  # and so did the token
    _sign_in(page, server, "fire.browser", NEW_PASSWORD, pyotp.TOTP(secret).at(time.time() + 30))
    assert "已停用" in page.locator("#signin-error").inner_text()
    ctx.close()
    lead_ctx.close()
