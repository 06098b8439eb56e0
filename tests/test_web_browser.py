"""The pages in a real browser: Debian's Chromium driven by Playwright against `lianxi serve`.

Flows (each saves screenshots under test-artifacts/screenshots/, git-ignored):
- a liaison signs in on a phone, gets Chinese validation messages, logs a duty and sees it in
  the ledger;
- a liaison cannot open another unit's pages (the 403 page);
- the lead opens the dashboard (desktop and phone), schedules a meeting, opens the agenda and
  downloads the brief.

The browser is never downloaded: the fixture uses /usr/bin/chromium and, when it is missing
and we are root on Debian, installs it (and the CJK fonts) with apt-get. Without a browser the
tests skip, or fail when LIANXI_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from events.base import local_date

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--lang=zh-CN"]  # the browser's own words (file picker, date field) as officials see them
REQUIRE = os.environ.get("LIANXI_REQUIRE_SERVICES") == "1"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
LIAISON_UNIT = "fire-rescue"
OTHER_UNIT = "public-security"


def _unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"browser tests required (LIANXI_REQUIRE_SERVICES=1) but {reason}")
    pytest.skip(reason)


def _is_debian_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and Path("/etc/debian_version").exists() \
        and shutil.which("apt-get") is not None


def _has_cjk_font() -> bool:
    if shutil.which("fc-list") is None:
        return False
    out = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False).stdout
    return bool(out.strip())


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=900)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env, timeout=1800)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium (installed here when missing and possible), with CJK fonts."""
    missing = [pkg for pkg, ok in (("chromium", Path(CHROMIUM).exists()), ("fonts-noto-cjk", _has_cjk_font()))
               if not ok]
    if missing:
        if not _is_debian_root():
            _unavailable(f"{' and '.join(missing)} missing and not root on Debian to install them")
        _apt_install(*missing)
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is still missing after apt-get install")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, f"lianxi {' '.join(args)} failed: {done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class Server:
    url: str
    liaison_token: str
    lead_token: str


# The demo county and its two tokens, made once per test process by the CLI; each module's
# server gets a copy of that store (its own state, without three more CLI runs per module).
_TEMPLATE: dict[str, tuple[Path, str, str]] = {}


def _demo_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    if "web" not in _TEMPLATE:
        home = tmp_path_factory.mktemp("web-template")
        env = {**os.environ, "LIANXI_DATABASE_URL": f"sqlite:///{home / 'lianxi.db'}", "LIANXI_LOG_LEVEL": "WARNING"}
        _cli(["demo", "--schools", "12"], env)
        liaison = _cli(["token", "issue", "--agency", LIAISON_UNIT, "--role", "liaison"], env).strip().splitlines()[-1]
        lead = _cli(["token", "issue", "--agency", "education", "--role", "lead"], env).strip().splitlines()[-1]
        _TEMPLATE["web"] = (home / "lianxi.db", liaison, lead)
    return _TEMPLATE["web"]


def _copy_store(source: Path, target: Path) -> None:
    """SQLite's online backup: the copy holds every committed page, WAL included."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`lianxi serve` on a free port over a small demo county (12 schools), a store of its own."""
    template, liaison, lead = _demo_template(tmp_path_factory)
    home = tmp_path_factory.mktemp("web")
    _copy_store(template, home / "lianxi.db")
    env = {**os.environ, "LIANXI_DATABASE_URL": f"sqlite:///{home / 'lianxi.db'}", "LIANXI_LOG_LEVEL": "WARNING"}
    port = _free_port()
    log = (home / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"lianxi serve did not start: {(home / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield Server(url, liaison, lead)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


# One Playwright per process: other browser test modules reuse these fixtures by assignment,
# which gives each module a fixture of its own, and a second sync Playwright in the same thread
# refuses to start ("Sync API inside the asyncio loop"). The first one started is shared.
_RUNNING: dict[str, Any] = {}


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Any]:
    if "browser" in _RUNNING:
        yield _RUNNING["browser"]
        return
    sync_api = pytest.importorskip("playwright.sync_api") if not REQUIRE else __import__(
        "playwright.sync_api", fromlist=["sync_playwright"])
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        _RUNNING["browser"] = b
        try:
            yield b
        finally:
            _RUNNING.pop("browser", None)
            b.close()


def _context(browser: Any, viewport: dict[str, int]) -> Any:
    phone = viewport["width"] < 600
    ctx = browser.new_context(viewport=viewport, locale="zh-CN", is_mobile=phone, has_touch=phone,
                              accept_downloads=True)
    ctx.set_default_timeout(15_000)
    return ctx


def _sign_in(page: Any, server: Server, token: str) -> None:
    page.goto(f"{server.url}/signin")
    page.locator("summary", has_text="以单位凭证").click()  # people use accounts; a token is folded away
    page.get_by_label("单位凭证").fill(token)
    page.get_by_role("button", name="用凭证登录").click()
    page.wait_for_load_state()


def _shot(page: Any, name: str) -> Path:
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000, f"screenshot {name} looks empty"
    return path


def _no_sideways_scroll(page: Any) -> None:
    """Nothing wider than the screen: wide tables scroll inside their own box."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"page is {width}px wide on a {page.viewport_size['width']}px screen"


def _duty_count(page: Any, duty_code: str) -> int:
    return int(page.locator(f'[id="duty-{duty_code}"] td').nth(2).inner_text())


def test_liaison_logs_a_duty_and_sees_it_in_the_ledger(browser: Any, server: Server) -> None:
    ctx = _context(browser, PHONE)
    page = ctx.new_page()
    _sign_in(page, server, server.liaison_token)
    assert page.url.endswith(f"/units/{LIAISON_UNIT}")
    assert "责任台账" in page.locator("h1").inner_text()
    assert page.locator("svg.chart title").count() >= 2  # both charts carry a <title>
    _no_sideways_scroll(page)
    _shot(page, "liaison-ledger-phone.png")

    page.get_by_role("link", name="填报履职记录").click()
    assert page.locator("h1").inner_text() == "填报履职记录"
    _no_sideways_scroll(page)
    _shot(page, "liaison-form-phone.png")

    # An empty submit comes back with readable Chinese messages beside the fields.
    page.get_by_label("工作摘要").fill("")
    page.get_by_role("button", name="保存履职记录").click()
    assert "请选择职责" in page.locator("#duty_code-error").inner_text()
    assert "请填写工作摘要" in page.locator("#summary-error").inner_text()
    assert page.get_by_label("工作摘要").get_attribute("aria-invalid") == "true"
    _shot(page, "liaison-form-errors-phone.png")

    duty = page.locator("#duty_code option").nth(1).get_attribute("value")
    assert duty
    page.goto(f"{server.url}/units/{LIAISON_UNIT}")
    before = _duty_count(page, duty)
    page.get_by_role("link", name="填报履职记录").click()
    page.get_by_label("履行的职责").select_option(duty)
    schools = page.get_by_role("group", name="涉及的学校").get_by_role("checkbox")
    schools.nth(0).check()
    schools.nth(1).check()
    page.get_by_label("工作摘要").fill("浏览器测试：对两所学校开展消防安全检查，检查疏散通道与灭火器。")
    page.get_by_label("发现问题数").fill("1")
    page.get_by_label("问题说明").fill("一处灭火器过期，已责令更换。")
    page.get_by_role("button", name="保存履职记录").click()
    page.wait_for_url(re.compile(rf"/units/{LIAISON_UNIT}\?done=duty-logged"))
    assert "履职记录已保存" in page.get_by_role("status").inner_text()
    assert _duty_count(page, duty) == before + 1
    _shot(page, "liaison-ledger-after-phone.png")

    # The same form on a desktop screen.
    desk = _context(browser, DESKTOP)
    dpage = desk.new_page()
    _sign_in(dpage, server, server.liaison_token)
    dpage.goto(f"{server.url}/units/{LIAISON_UNIT}/log")
    _shot(dpage, "liaison-form-desktop.png")
    desk.close()
    ctx.close()


def test_liaison_cannot_open_another_units_pages(browser: Any, server: Server) -> None:
    ctx = _context(browser, PHONE)
    page = ctx.new_page()
    _sign_in(page, server, server.liaison_token)
    for path in (f"/units/{OTHER_UNIT}", f"/units/{OTHER_UNIT}/log", "/dashboard"):
        response = page.goto(f"{server.url}{path}")
        assert response is not None and response.status == 403, path
        assert "无权" in page.locator("h1").inner_text() or "仅限" in page.locator("h1").inner_text()
    page.goto(f"{server.url}/units/{OTHER_UNIT}")
    _shot(page, "liaison-403-phone.png")
    ctx.close()


def test_keyboard_reaches_the_skip_link_first(browser: Any, server: Server) -> None:
    ctx = _context(browser, DESKTOP)
    page = ctx.new_page()
    _sign_in(page, server, server.liaison_token)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "跳到正文"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    ctx.close()


def test_lead_dashboard_meeting_agenda_and_brief(browser: Any, server: Server) -> None:
    phone = _context(browser, PHONE)
    ppage = phone.new_page()
    _sign_in(ppage, server, server.lead_token)
    assert ppage.url.endswith("/dashboard")
    _no_sideways_scroll(ppage)
    _shot(ppage, "lead-dashboard-phone.png")
    phone.close()

    ctx = _context(browser, DESKTOP)
    page = ctx.new_page()
    _sign_in(page, server, server.lead_token)
    assert page.locator("h1").inner_text() == "各成员单位总览"
    # Four server-made charts, each with an accessible name and text labels.
    charts = page.locator("svg.chart[role=img]")
    assert charts.count() == 4
    for i in range(4):
        assert charts.nth(i).locator("title").first.text_content()
        assert charts.nth(i).locator("text").count() >= 1
    _shot(page, "lead-dashboard-desktop.png")

    page.get_by_role("link", name="联席会议", exact=True).click()
    # A week ahead in the county's calendar (the server's "today" is county-local).
    day = local_date(datetime.now(UTC)) + timedelta(days=7)
    page.get_by_label("会议日期").fill(day.isoformat())
    page.get_by_label("会议地点").fill("旗教育局三楼会议室")
    page.get_by_role("button", name="安排会议").click()
    page.wait_for_url(re.compile(r"/meetings/[0-9a-f-]{36}\?done=meeting-scheduled"))
    assert "联席会议" in page.locator("h1").inner_text()
    assert page.get_by_role("heading", name="议程草案").count() == 1
    assert page.locator("#sec-overdue_rectifications").count() == 1
    _shot(page, "lead-meeting-agenda-desktop.png")

    with page.expect_download() as info:
        page.get_by_role("link", name="简报（HTML）").click()
    download = info.value
    target = SHOTS.parent / "downloads" / download.suggested_filename
    target.parent.mkdir(parents=True, exist_ok=True)
    download.save_as(str(target))
    assert download.suggested_filename.endswith(".html")
    text = target.read_text(encoding="utf-8")
    assert "简报" in text and "<svg" in text

    # The review: from the ranking to one unit's scores, and from a score to its events.
    page.get_by_role("link", name="年度考核", exact=True).click()
    page.get_by_label("查看单位明细").select_option(LIAISON_UNIT)
    page.get_by_role("button", name="查看").click()
    _shot(page, "lead-review-desktop.png")
    page.locator("#detail ~ section a").first.click()
    assert page.locator("tbody tr").count() >= 1
    _shot(page, "lead-review-evidence-desktop.png")
    ctx.close()
