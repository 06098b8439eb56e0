"""Issue 16, phones first: at 390×844 the menu folds behind one button, wide tables say they
scroll, dates do not wrap, chart text is at least 12 px and the school picker filters and selects
a whole town. Debian's Chromium against `lianxi serve` (test_web_browser's session fixtures)."""

from __future__ import annotations

from typing import Any

from services.documents import charts
from tests import test_web_browser as web
from tests.test_web_browser import LIAISON_UNIT, PHONE, Server, _context, _no_sideways_scroll, _sign_in

chromium, server, browser = web.chromium, web.server, web.browser


def test_phone_menu_folds_and_opens(browser: Any, server: Server) -> None:
    ctx = _context(browser, PHONE)
    page = ctx.new_page()
    _sign_in(page, server, server.lead_token)
    page.goto(f"{server.url}/dashboard")
    nav = page.get_by_role("navigation", name="主导航")
    board = nav.get_by_role("link", name="整改台账")
    assert not board.is_visible()  # folded: one row, not three
    assert nav.bounding_box()["height"] < 60
    nav.locator("summary").click()
    assert board.is_visible()
    board.click()
    page.wait_for_url(f"{server.url}/rectifications")
    ctx.close()


def test_desktop_menu_is_always_open(browser: Any, server: Server) -> None:
    ctx = _context(browser, web.DESKTOP)
    page = ctx.new_page()
    _sign_in(page, server, server.lead_token)
    page.goto(f"{server.url}/dashboard")
    nav = page.get_by_role("navigation", name="主导航")
    assert not nav.locator("summary").is_visible()
    assert nav.get_by_role("link", name="整改台账").is_visible()
    ctx.close()


def test_phone_tables_say_they_scroll_and_dates_do_not_wrap(browser: Any, server: Server) -> None:
    ctx = _context(browser, PHONE)
    page = ctx.new_page()
    _sign_in(page, server, server.lead_token)
    page.goto(f"{server.url}/rectifications")
    _no_sideways_scroll(page)
    wrap = page.locator(".table-wrap").first
    hint = wrap.evaluate("el => getComputedStyle(el, '::before').content")
    assert "左右滑动查看" in hint
    assert wrap.evaluate("el => el.scrollWidth > el.clientWidth")  # the columns are there, to the side
    dates = page.locator("td.date")
    assert dates.count() > 0
    # One line box per date: a range over the cell's text has a single client rect when it does not wrap.
    lines = dates.evaluate_all("els => els.filter(e => e.textContent.trim().length > 1).map(e => {"
                               " const r = document.createRange(); r.selectNodeContents(e);"
                               " return [e.textContent.trim(), r.getClientRects().length]; })")
    assert lines and all(n == 1 for _, n in lines), lines
    ctx.close()


def test_phone_chart_text_is_at_least_12px(browser: Any, server: Server) -> None:
    ctx = _context(browser, PHONE)
    page = ctx.new_page()
    _sign_in(page, server, server.lead_token)
    page.goto(f"{server.url}/dashboard")
    sizes = page.locator("svg.chart text").evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
    assert sizes and min(sizes) >= 12, min(sizes)
    ctx.close()


def test_phone_school_picker_filters_and_selects_a_town(browser: Any, server: Server) -> None:
    ctx = _context(browser, PHONE)
    page = ctx.new_page()
    _sign_in(page, server, server.liaison_token)
    page.goto(f"{server.url}/units/{LIAISON_UNIT}/log")
    group = page.get_by_role("group", name="涉及的学校")
    boxes = group.get_by_role("checkbox")
    total = boxes.count()
    first = group.locator("label:has(input[type=checkbox])").first.inner_text().split()[0]
    page.get_by_label("按校名或乡镇筛选").fill(first)
    assert 1 <= boxes.count() < total  # hidden ones leave the accessibility tree
    page.get_by_label("按校名或乡镇筛选").fill("")
    assert boxes.count() == total
    town = group.locator("fieldset.town").first
    town_boxes = town.get_by_role("checkbox")
    town.get_by_role("button").click()
    assert town_boxes.count() >= 1 and all(town_boxes.nth(i).is_checked() for i in range(town_boxes.count()))
    assert not group.locator("fieldset.town").nth(1).get_by_role("checkbox").first.is_checked()
    ctx.close()


def test_chart_text_sizes_keep_12px_on_a_360px_phone() -> None:
    # A 360 px phone leaves about 310 px for a chart drawn WIDTH units wide.
    assert min(charts.FONT, charts.SMALL) * 310 / charts.WIDTH >= 12
