"""Single sign-on in Chromium: the sign-in page's 统一身份认证登录 button, the provider's own
login and consent pages (oidc-provider on loopback), and back to the platform served over real
HTTP, signed in; a person without an account here gets the Chinese refusal."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from services.api.main import create_app
from services.platform import Platform, utcnow
from services.web.pages.sso import NOT_OPENED
from tests import test_web_browser as web
from tests.oidc_fixtures import MAPPED, UNMAPPED, OidcProvider
from tests.test_sso_oidc import UNIT, make_sso_platform
from tests.test_web_browser import _context, _no_sideways_scroll, _shot

pytest_plugins = ["tests.oidc_fixtures"]

chromium, browser = web.chromium, web.browser


@dataclass(frozen=True)
class Site:
    url: str
    platform: Platform


@pytest.fixture
def site(sqlite_url: str, oidc_provider: OidcProvider) -> Iterator[Site]:
    """The platform on the port the provider's clients were registered with."""
    platform = make_sso_platform(sqlite_url, oidc_provider)
    platform.clock = utcnow  # a live server's clock runs
    server = uvicorn.Server(uvicorn.Config(create_app(platform), host="127.0.0.1", port=oidc_provider.app_port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the platform did not start serving"
        time.sleep(0.05)
    try:
        yield Site(f"http://127.0.0.1:{oidc_provider.app_port}", platform)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        platform.close()


def sign_in_at_provider(page: Any, site: Site, subject: str, shot: str) -> None:
    page.goto(f"{site.url}/signin")
    _no_sideways_scroll(page)
    _shot(page, shot)
    page.get_by_role("link", name="统一身份认证登录").click()
    page.locator("input[name=login]").fill(subject)  # the provider's page, not ours
    page.locator("input[name=password]").fill("demo")
    page.locator("button[type=submit]").click()
    page.locator("button[type=submit]").click()  # consent: Continue
    page.wait_for_load_state()


def test_a_mapped_person_signs_in_through_the_provider(browser: Any, site: Site) -> None:
    ctx = _context(browser, {"width": 1366, "height": 900})
    try:
        page = ctx.new_page()
        sign_in_at_provider(page, site, MAPPED, "sso-signin-1366.png")
        page.wait_for_url(f"{site.url}/units/{UNIT}")
        assert page.get_by_role("button", name="退出登录").is_visible()
        page.goto(f"{site.url}/units/{UNIT}/log")  # the session holds on the next protected page
        assert page.url == f"{site.url}/units/{UNIT}/log"
    finally:
        ctx.close()


def test_a_person_without_an_account_is_refused_in_chinese(browser: Any, site: Site) -> None:
    ctx = _context(browser, {"width": 390, "height": 844})
    try:
        page = ctx.new_page()
        sign_in_at_provider(page, site, UNMAPPED, "sso-signin-390.png")
        page.wait_for_url(f"{site.url}/sso/callback*")
        assert NOT_OPENED in page.locator("main").inner_text()
        _shot(page, "sso-not-opened-390.png")
        page.goto(f"{site.url}/units/{UNIT}")
        assert "/signin" in page.url
    finally:
        ctx.close()
