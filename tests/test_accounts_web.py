"""Accounts on the pages (TestClient): sign-in with account and password, the forced password
change, TOTP enrolment and sign-in with a code, signing out everywhere, the lead's 账号管理 page,
a unit's 本单位账号 page, and the lock-out page. Made-up test people only (测试·…)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from httpx import Response

from services.api.main import create_app
from services.kernel.principal import REVIEW_GROUP
from services.security.audit import audit_log
from services.store.accounts import web_sessions
from services.web.session import SESSION_COOKIE
from tests.conftest import Api

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NEW_PASSWORD = "Fire-desk-2025"


class Person:
    """A browser without a session (its own cookie jar)."""

    def __init__(self, api: Api) -> None:
        self.client = TestClient(create_app(api.platform), follow_redirects=False)

    def csrf(self, path: str) -> str:
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        m = _CSRF.search(page.text)
        assert m is not None
        return m.group(1)

    def sign_in(self, account: str, password: str, code: str = "") -> Response:
        return self.client.post("/signin", data={"csrf_token": self.csrf("/signin"), "account": account,
                                                 "password": password, "code": code, "next": ""})

    def post(self, path: str, data: dict[str, Any], form_page: str | None = None) -> Response:
        return self.client.post(path, data={"csrf_token": self.csrf(form_page or path), **data})


def _lead(api: Api) -> Person:
    p = api.platform
    _, initial = p.accounts.create("test", account_name="edu.lead", display_name="测试·教育局管理员",
                                   unit="education", role="lead", phone=None, known_units=p.known_agencies(),
                                   now=p.clock())
    lead = Person(api)
    assert lead.sign_in("edu.lead", initial).headers["location"] == "/account/password"
    r = lead.post("/account/password", {"current": initial, "new": "Lead-desk-2025", "again": "Lead-desk-2025"})
    assert r.status_code == 303 and r.headers["location"] == "/account?done=password-changed"
    return lead


def test_a_liaison_account_from_creation_to_disabling(sqlite_api: Api) -> None:
    api = sqlite_api
    lead = _lead(api)
    manage = lead.client.get("/accounts")
    assert manage.status_code == 200 and "账号管理" in manage.text
    # The lead creates the fire brigade liaison's account; the initial password shows once.
    r = lead.post("/accounts", {"account_name": "fire.duty", "display_name": "测试·消防联络员", "unit": "fire-rescue",
                                "role": "liaison", "phone": ""}, form_page="/accounts")
    assert r.status_code == 200, r.text
    initial = re.search(r'id="initial-password">([^<]+)<', r.text)
    assert initial is not None
    assert initial.group(1) not in lead.client.get("/accounts").text  # never again

    liaison = Person(api)
    r = liaison.sign_in("fire.duty", initial.group(1))
    assert r.status_code == 303 and r.headers["location"] == "/account/password"
    # Until the password is changed every page leads to the change form.
    assert liaison.client.get("/units/fire-rescue").headers["location"] == "/account/password"
    forced = liaison.client.get("/account/password")
    assert 'id="forced"' in forced.text and "测试·消防联络员" in forced.text  # the header names the person
    weak = liaison.post("/account/password",
                        {"current": initial.group(1), "new": "firefiresafe", "again": "firefiresafe"})
    assert weak.status_code == 422 and "只由一类字符" in weak.text
    mismatch = liaison.post("/account/password", {"current": initial.group(1), "new": NEW_PASSWORD, "again": "x"})
    assert mismatch.status_code == 422 and "两次输入的新密码不一致" in mismatch.text
    ok = liaison.post("/account/password", {"current": initial.group(1), "new": NEW_PASSWORD, "again": NEW_PASSWORD})
    assert ok.status_code == 303
    assert liaison.client.get("/units/fire-rescue").status_code == 200

    # TOTP: the page shows the QR as inline SVG and the secret; a code from it completes enrolment.
    page = liaison.client.get("/account/totp")
    assert "<svg" in page.text and 'src="http' not in page.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert secret is not None
    now = api.platform.clock()
    r = liaison.post("/account/totp", {"code": pyotp.TOTP(secret.group(1)).at(now)}, form_page="/account/totp")
    assert r.status_code == 303 and r.headers["location"] == "/account?done=totp-enrolled"
    assert "已启用" in liaison.client.get("/account").text

    # A second browser now needs the code.
    other = Person(api)
    assert other.sign_in("fire.duty", NEW_PASSWORD).status_code == 401
    api.platform.clock.now = now + timedelta(seconds=60)  # type: ignore[attr-defined]
    code = pyotp.TOTP(secret.group(1)).at(api.platform.clock())
    assert other.sign_in("fire.duty", NEW_PASSWORD, code).headers["location"] == "/units/fire-rescue"

    # The unit's liaisons see who in the unit has access; another unit's may not.
    unit_page = other.client.get("/units/fire-rescue/accounts")
    assert unit_page.status_code == 200 and "测试·消防联络员" in unit_page.text and "已启用" in unit_page.text
    assert other.client.get("/units/public-security/accounts").status_code == 403

    # The lead disables the account: both open sessions end on their next request.
    account = api.platform.accounts.by_name("fire.duty")
    assert account is not None
    r = lead.post(f"/accounts/{account.account_id}/disable", {}, form_page="/accounts")
    assert r.status_code == 303
    for browser in (liaison, other):
        assert browser.client.get("/units/fire-rescue").headers["location"].startswith("/signin")
    refused = Person(api).sign_in("fire.duty", NEW_PASSWORD, pyotp.TOTP(secret.group(1)).at(api.platform.clock()))
    assert refused.status_code == 401 and "已停用" in refused.text


def test_sign_out_everywhere_ends_every_session_of_the_account(sqlite_api: Api) -> None:
    lead = _lead(sqlite_api)
    me = sqlite_api.platform.accounts.by_name("edu.lead")
    assert me is not None
    r = lead.post(f"/accounts/{me.account_id}/disable", {}, form_page="/accounts")
    assert r.status_code == 422 and "不能停用自己" in r.text  # the lead cannot lock themselves out
    second = Person(sqlite_api)
    assert second.sign_in("edu.lead", "Lead-desk-2025").headers["location"] == "/dashboard"
    r = lead.post("/account/signout-everywhere", {}, form_page="/account")
    assert r.status_code == 303 and r.headers["location"] == "/signin?done=signed-out"
    assert second.client.get("/dashboard").headers["location"].startswith("/signin")
    assert lead.client.get("/dashboard").headers["location"].startswith("/signin")


def test_signing_in_again_in_the_same_browser_ends_the_old_session(sqlite_api: Api) -> None:
    api = sqlite_api
    lead = _lead(api)
    elsewhere = Person(api)  # the same account in another browser keeps its own session
    assert elsewhere.sign_in("edu.lead", "Lead-desk-2025").status_code == 303
    first = lead.client.cookies[SESSION_COOKIE]
    replay = Person(api)  # whoever kept the old cookie value
    replay.client.cookies.set(SESSION_COOKIE, first)
    assert replay.client.get("/dashboard").status_code == 200
    # a failed attempt leaves the session as it was
    assert lead.sign_in("edu.lead", "not-the-password").status_code == 401
    assert replay.client.get("/dashboard").status_code == 200
    # a sign-in that succeeds replaces it: the old cookie stops working at once
    assert lead.sign_in("edu.lead", "Lead-desk-2025").headers["location"] == "/dashboard"
    second = lead.client.cookies[SESSION_COOKIE]
    assert second != first
    assert replay.client.get("/dashboard").headers["location"].startswith("/signin")
    assert lead.client.get("/dashboard").status_code == 200
    assert elsewhere.client.get("/dashboard").status_code == 200
    # signing in with a system's credential on top replaces the person's session too
    r = lead.client.post("/signin", data={"csrf_token": lead.csrf("/signin"), "next": "",
                                          "token": api.token("education", "lead")})
    assert r.status_code == 303
    replay.client.cookies.set(SESSION_COOKIE, second)
    assert replay.client.get("/dashboard").headers["location"].startswith("/signin")
    with api.platform.read_engine.connect() as conn:
        live = conn.execute(sa.select(sa.func.count()).select_from(web_sessions)
                            .where(web_sessions.c.ended_at.is_(None))).scalar()
    assert live == 2  # the token session here and the other browser's


def test_a_wrong_password_reads_the_same_as_an_unknown_account_and_a_lock_says_until_when(sqlite_api: Api) -> None:
    _lead(sqlite_api)
    person = Person(sqlite_api)
    unknown = person.sign_in("no.such.person", "whatever-1")
    wrong = person.sign_in("edu.lead", "whatever-1")
    assert unknown.status_code == wrong.status_code == 401
    assert "账号或密码不正确" in unknown.text and "账号或密码不正确" in wrong.text
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
    for _ in range(4):
        last = person.sign_in("edu.lead", "whatever-1")
    assert last.status_code == 429 and "账号已锁定至" in last.text
    right = person.sign_in("edu.lead", "Lead-desk-2025")
    assert right.status_code == 429 and "即使密码正确" in right.text
    with sqlite_api.platform.read_engine.connect() as conn:
        actions = list(conn.execute(sa.select(audit_log.c.action, audit_log.c.status)
                                    .where(audit_log.c.action.in_(("SIGNIN", "LOCKOUT")))).all())
    assert actions.count(("LOCKOUT", 423)) == 1 and actions.count(("SIGNIN", 423)) == 1


def test_the_lead_issues_and_revokes_credentials_and_resets_passwords(sqlite_api: Api) -> None:
    api = sqlite_api
    lead = _lead(api)
    r = lead.post("/accounts/credentials", {"account_id": "", "unit": "fire-rescue", "role": "liaison",
                                            "label": "消防队业务系统"}, form_page="/accounts")
    token = re.search(r'id="issued-token">([^<]+)<', r.text)
    assert r.status_code == 200 and token is not None
    auth = {"Authorization": f"Bearer {token.group(1)}"}
    assert api.client.get("/api/v1/agencies/fire-rescue/ledger", headers=auth).status_code == 200
    # The fire brigade's page lists its systems by purpose (the live ones only).
    assert "消防队业务系统" in lead.client.get("/units/fire-rescue/accounts").text
    token_id = next(t["token_id"] for t in api.platform.tokens.list() if t["label"] == "消防队业务系统")
    assert lead.post(f"/accounts/credentials/{token_id}/revoke", {}, form_page="/accounts").status_code == 303
    assert api.client.get("/api/v1/agencies/fire-rescue/ledger", headers=auth).status_code == 401
    assert "消防队业务系统" not in lead.client.get("/units/fire-rescue/accounts").text
    bad = lead.post("/accounts", {"account_name": "rev.one", "display_name": "测试·考核", "unit": REVIEW_GROUP,
                                  "role": "liaison"}, form_page="/accounts")
    assert bad.status_code == 422 and "考核组/纪检" in bad.text
    made = lead.post("/accounts", {"account_name": "rev.one", "display_name": "测试·考核", "unit": REVIEW_GROUP,
                                   "role": "auditor"}, form_page="/accounts")
    initial = re.search(r'id="initial-password">([^<]+)<', made.text)
    assert initial is not None
    account = api.platform.accounts.by_name("rev.one")
    assert account is not None
    reset = lead.post(f"/accounts/{account.account_id}/reset-password", {}, form_page="/accounts")
    fresh = re.search(r'id="reset-password">([^<]+)<', reset.text)
    assert fresh is not None and fresh.group(1) != initial.group(1)
    auditor = Person(api)
    assert auditor.sign_in("rev.one", initial.group(1)).status_code == 401
    assert auditor.sign_in("rev.one", fresh.group(1)).headers["location"] == "/account/password"
    auditor.post("/account/password", {"current": fresh.group(1), "new": "Review-desk-1", "again": "Review-desk-1"})
    dashboard = auditor.client.get("/dashboard")
    assert dashboard.status_code == 200 and "考核组/纪检 · 只读" in dashboard.text
    assert "旗教育局 · 考核" not in dashboard.text  # no longer "under" a member unit
    # The auditors' audit page names people (the rows themselves hold only account ids).
    audit = auditor.client.get("/audit")
    assert audit.status_code == 200 and "测试·教育局管理员" in audit.text and "测试·考核" in audit.text
    with api.platform.read_engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(sa.select(audit_log)).all() for v in row)
    assert "测试·" not in stored


@pytest.mark.parametrize("path", ["/account/password", "/account/totp"])
def test_a_token_session_has_no_personal_account(sqlite_api: Api, path: str) -> None:
    from tests.test_web_pages import Browser

    b = Browser(sqlite_api, "fire-rescue")
    assert b.client.get(path).status_code == 403
    assert "单位凭证" in b.client.get("/account").text


def test_fifty_wrong_passwords_over_http_lock_the_account_and_are_all_audited(api: Api) -> None:
    """On SQLite and PostgreSQL: every try is in the trail twice, as a sign-in of the account (by
    its id) and as the request (POST /signin with its status)."""
    _lead(api)
    clock = api.platform.clock
    start = clock.now  # type: ignore[attr-defined]
    person = Person(api)
    statuses = []
    for i in range(50):
        clock.now = start + timedelta(seconds=i)  # type: ignore[attr-defined]
        statuses.append(person.sign_in("edu.lead", f"guess-{i:03d}-pw").status_code)
    assert statuses == [401] * 4 + [429] * 46
    right = person.sign_in("edu.lead", "Lead-desk-2025")
    assert right.status_code == 429 and SESSION_COOKIE not in right.headers.get("set-cookie", "")
    account = api.platform.accounts.by_name("edu.lead")
    assert account is not None
    with api.platform.read_engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.action, audit_log.c.status, audit_log.c.resource_id)
                            .order_by(audit_log.c.id)).all()
    mine = [(a, s) for a, s, r in rows if r == account.account_id and a in ("SIGNIN", "LOCKOUT")]
    # _lead's sign-in, then 5 wrong passwords (the 5th locks), 45 tries and the right password refused.
    assert mine == [("SIGNIN", 200)] + [("SIGNIN", 401)] * 5 + [("LOCKOUT", 423)] + [("SIGNIN", 423)] * 46
    requests = [s for a, s, _ in rows if a == "POST /signin"]
    assert requests.count(401) == 4 and requests.count(429) == 47
