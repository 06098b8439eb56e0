"""/docs and /redoc in Debian's Chromium with every non-loopback request blocked: Swagger UI and
ReDoc come from the installed fastapi-offline package, so the operations render with no internet."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests import test_web_browser as web
from tests.test_web_browser import DESKTOP, Server, _context

# The live server and the browser are test_web_browser's session fixtures.
chromium, server, browser = web.chromium, web.server, web.browser

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _offline_page(browser: Any) -> tuple[Any, list[str]]:
    """A page whose every request off the loopback is aborted and remembered."""
    ctx = _context(browser, DESKTOP)
    blocked: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOOPBACK:
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    ctx.route("**/*", route)
    return ctx.new_page(), blocked


def test_swagger_ui_renders_the_operations_offline(browser: Any, server: Server) -> None:
    page, blocked = _offline_page(browser)
    page.goto(f"{server.url}/docs")
    page.locator(".opblock").first.wait_for(state="visible")
    assert page.locator(".opblock").count() >= 20
    # A known operation, method and path, as Swagger UI draws it.
    assert page.locator(".opblock-summary-path", has_text="/api/v1/rectifications").count() >= 1
    assert "/static-offline-docs/swagger-ui-bundle.js" in page.content()
    assert blocked == [], f"/docs reached off the machine: {blocked}"
    page.context.close()


def test_redoc_renders_the_operations_offline(browser: Any, server: Server) -> None:
    page, blocked = _offline_page(browser)
    page.goto(f"{server.url}/redoc")
    page.locator("[data-section-id^='operation/']").first.wait_for(state="attached")
    assert page.locator("[data-section-id^='operation/']").count() >= 20
    assert "/static-offline-docs/redoc.standalone.js" in page.content()
    assert blocked == [], f"/redoc reached off the machine: {blocked}"
    page.context.close()
