"""`make screenshots`: every role's main pages at phone and desktop width, for people to look at.

Runs `lianxi demo --schools 40` into a temporary store, `lianxi serve` on a free loopback port, signs
in as liaison, lead and auditor with tokens from `lianxi token issue`, and writes full-page shots
to var/screenshots/<role>-<page>-<width>.png. Same Chromium and server pattern as
tests/test_web_browser.py; not a test (nothing is asserted beyond "the page answered").

    python -m tests.screenshots [--out var/screenshots] [--schools 40]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--lang=zh-CN"]  # the browser's own words (file picker, date field) as officials see them
VIEWPORTS = ({"width": 390, "height": 844}, {"width": 1366, "height": 900})
LIAISON_UNIT = "fire-rescue"


def _cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"lianxi {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"lianxi serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)


def _first_link(page: Any, url: str, pattern: str) -> str | None:
    """The first href on `url` matching `pattern` (an item, a meeting), or None when there is none."""
    page.goto(url)
    for href in page.locator("a[href]").evaluate_all("els => els.map(e => e.getAttribute('href'))"):
        if href and re.fullmatch(pattern, href.split("?")[0]):
            return str(href)
    return None


def _pages(page: Any, base: str) -> dict[str, list[tuple[str, str]]]:
    """(name, path) per role; the item and meeting are the first ones their lists link to."""
    item = _first_link(page, f"{base}/rectifications", r"/rectifications/[0-9a-f-]{36}")
    meeting = _first_link(page, f"{base}/meetings", r"/meetings/[0-9a-f-]{36}")
    lead = [("dashboard", "/dashboard"), ("board", "/rectifications")]
    lead += [("item", item)] if item else []
    lead += [("meetings", "/meetings")]
    lead += [("meeting", meeting)] if meeting else []
    lead += [("review", "/review")]
    unit = f"/units/{LIAISON_UNIT}"
    return {
        "liaison": [("ledger", unit), ("log-form", f"{unit}/log"), ("work", f"{unit}/work"),
                    ("warnings", f"{unit}/warnings"), ("hazard-report", f"{unit}/hazards/new"),
                    ("channels", f"{unit}/channels"), ("unit-accounts", f"{unit}/accounts"),
                    ("my-account", "/account")],
        "lead": [*lead, ("accounts", "/accounts")],
        "auditor": [("events", "/events"), ("audit", "/audit")],
    }


# The demo's people (services/demo/accounts.py), who sign in as officials do: account and password.
ACCOUNTS = {"liaison": "demo.fire-rescue", "lead": "demo.education", "auditor": "demo.review"}


def _sign_in(page: Any, base: str, role: str) -> None:
    from services.demo.accounts import DEMO_PASSWORD

    page.goto(f"{base}/signin")
    page.get_by_label("账号").fill(ACCOUNTS[role])
    page.get_by_label("密码", exact=False).first.fill(DEMO_PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()
    page.wait_for_load_state()


def shoot(out: Path, schools: int) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="lianxi-shots-") as tmp:
        home = Path(tmp)
        env = {**os.environ, "LIANXI_DATABASE_URL": f"sqlite:///{home / 'lianxi.db'}", "LIANXI_LOG_LEVEL": "WARNING"}
        _cli(["demo", "--schools", str(schools)], env)
        port = _free_port()
        log_path = home / "serve.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "--port", str(port)], cwd=ROOT,
                                    env=env, stdout=log, stderr=subprocess.STDOUT)
            base = f"http://127.0.0.1:{port}"
            try:
                _wait_healthy(base, proc, log_path)
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                    lead_ctx = browser.new_context(locale="zh-CN")
                    finder = lead_ctx.new_page()
                    _sign_in(finder, base, "lead")
                    plan = _pages(finder, base)
                    lead_ctx.close()
                    for viewport in VIEWPORTS:
                        phone = viewport["width"] < 600
                        for role, pages in plan.items():
                            ctx = browser.new_context(viewport=viewport, locale="zh-CN", is_mobile=phone,
                                                      has_touch=phone, timezone_id="Asia/Shanghai")
                            ctx.set_default_timeout(60_000)
                            page = ctx.new_page()
                            _sign_in(page, base, role)
                            for name, path in pages:
                                response = page.goto(f"{base}{path}")
                                status = response.status if response else 0
                                target = out / f"{role}-{name}-{viewport['width']}.png"
                                page.screenshot(path=str(target), full_page=True)
                                wide = page.evaluate("document.documentElement.scrollWidth")
                                note = f" (page {wide}px wide)" if wide > viewport["width"] else ""
                                print(f"{status} {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}"
                                      f"{note}")
                                written.append(target)
                            ctx.close()
                    browser.close()
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "screenshots")
    parser.add_argument("--schools", type=int, default=40)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium fonts-noto-cjk")
    shots = shoot(args.out.resolve(), args.schools)
    print(f"{len(shots)} screenshots in {args.out}")


if __name__ == "__main__":
    main()
