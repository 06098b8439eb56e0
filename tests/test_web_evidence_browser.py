"""Issue 18 in a real browser at 390×844 (Chromium against `lianxi serve`, test_web_browser's
session fixtures): a liaison reports a hazard with a photo from the file picker, the lead sees
its thumbnail on the board, the liaison reports completion with an "after" photo, and the lead
sees both side by side on the item's page. The photos carry EXIF GPS; what the browser gets
back has none."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import UTC, datetime
from typing import Any

from events.base import local_date
from tests import test_web_browser as web
from tests.evidence_fixtures import metadata_of, photo_with_gps
from tests.test_web_browser import LIAISON_UNIT, PHONE, Server, _context, _no_sideways_scroll, _shot, _sign_in

chromium, server, browser = web.chromium, web.server, web.browser


def _loaded(img: Any) -> bool:
    """The image is shown: scrolled to (the thumbnails load lazily) and decoded within 15 s;
    under load a thumbnail below the fold is still on its way when the page has loaded."""
    from playwright.sync_api import TimeoutError as NotShown

    img.scroll_into_view_if_needed()
    try:
        img.page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle(),
                                   timeout=15_000)
    except NotShown:
        return False
    return True


def _api(server: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(f"{server.url}{path}", data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {server.lead_token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out: dict[str, Any] = json.loads(r.read())
    return out


def test_hazard_photo_then_after_photo_side_by_side_on_a_phone(browser: Any, server: Server) -> None:
    liaison_ctx, lead_ctx = _context(browser, PHONE), _context(browser, PHONE)
    liaison, lead = liaison_ctx.new_page(), lead_ctx.new_page()
    _sign_in(liaison, server, server.liaison_token)
    _sign_in(lead, server, server.lead_token)
    description = "浏览器测试：教学楼二层配电箱门锁损坏，线路裸露"

    # The liaison reports the hazard with a photo chosen in the file picker (the camera button beside it).
    liaison.goto(f"{server.url}/units/{LIAISON_UNIT}/hazards/new")
    assert liaison.locator('input[type="file"][capture="environment"][accept="image/*"]').count() == 1
    liaison.locator("#school_id").select_option(index=1)
    liaison.locator("#category").select_option(index=1)
    liaison.locator("#severity").select_option(index=1)
    liaison.get_by_label("隐患描述").fill(description)
    liaison.locator("#evidence_files").set_input_files(
        {"name": "配电箱.jpg", "mimeType": "image/jpeg", "buffer": photo_with_gps("orange")})
    _no_sideways_scroll(liaison)
    _shot(liaison, "evidence-hazard-form-phone.png")
    liaison.get_by_role("button", name="上报隐患").click()
    liaison.wait_for_url(re.compile(rf"/units/{LIAISON_UNIT}/work\?done=hazard"))

    # The lead sees the thumbnail on the board, and the photo it opens has no GPS left.
    lead.goto(f"{server.url}/rectifications")
    row = lead.locator("tr", has=lead.get_by_role("link", name=re.compile("配电箱门锁损坏")))
    thumb = row.get_by_role("img", name=re.compile("隐患照片"))
    thumb.scroll_into_view_if_needed()
    assert _loaded(thumb)
    _shot(lead, "evidence-board-phone.png")
    photo = lead.request.get(f"{server.url}{row.locator('ul.thumbs a').get_attribute('href')}")
    assert photo.ok and metadata_of(photo.body())["gps"] == {}
    item = (row.get_by_role("link", name=re.compile("配电箱门锁损坏")).get_attribute("href") or "").rsplit("/", 1)[-1]
    _api(server, f"/api/v1/rectifications/{item}/assignment", {
        "lead_unit": LIAISON_UNIT, "cooperating_units": [], "deadline": local_date(datetime.now(UTC)).isoformat(),
        "measures": ["更换门锁，线路穿管"], "funds": {"amount_cny": "200", "source": "学校公用经费"}})

    # The liaison reports completion with an "after" photo.
    card = liaison.locator(f'[id="rect-{item}"]')
    for _ in range(50):  # the assignment reaches the board's read model in the background
        liaison.goto(f"{server.url}/units/{LIAISON_UNIT}/work")
        if card.count():
            break
        liaison.wait_for_timeout(200)
    assert _loaded(card.get_by_role("img", name=re.compile("佐证材料")))  # its own hazard photo
    card.get_by_text("回告整改完成").click()
    card.get_by_label("整改情况").fill("已更换门锁，裸露线路已穿管固定。")
    card.locator(f'[id="rc-files-{item}"]').set_input_files(
        {"name": "整改后.jpg", "mimeType": "image/jpeg", "buffer": photo_with_gps("teal")})
    card.get_by_role("button", name="回告完成").click()
    liaison.wait_for_url(re.compile(rf"/units/{LIAISON_UNIT}/work\?done=completion"))

    # The lead sees before and after side by side on the item's page.
    lead.goto(f"{server.url}/rectifications/{item}")
    before = lead.get_by_role("img", name=re.compile("整改前"))
    after = lead.get_by_role("img", name=re.compile("整改后"))
    after.scroll_into_view_if_needed()
    assert _loaded(before) and _loaded(after)
    b, a = before.bounding_box(), after.bounding_box()
    assert abs(b["y"] - a["y"]) < 5 and a["x"] >= b["x"] + b["width"], (b, a)  # one row, after to the right
    assert a["x"] + a["width"] <= PHONE["width"]
    _no_sideways_scroll(lead)
    _shot(lead, "evidence-before-after-phone.png")
    liaison_ctx.close()
    lead_ctx.close()
