"""People's accounts (services/accounts/): the password policy, lock-out with back-off, TOTP,
sessions with idle and absolute timeouts and their purge job, disabling, and what never leaves
the accounts table. On SQLite and PostgreSQL (the ``platform`` fixture).

Every name and number here is made up and marked as test data (测试·…); no real person's."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa

from services.accounts import policy, totp
from services.accounts.service import Account, AccountProblem, SignInFailed
from services.accounts.sessions import SessionStore
from services.kernel.principal import REVIEW_GROUP
from services.platform import Platform
from services.scheduler import JOBS
from services.security.audit import audit_log
from services.store.accounts import accounts as accounts_table
from services.store.accounts import web_sessions
from services.web.session import sessions_for
from tests.conftest import Api, Clock

PASSWORD = "Xiaofang-2025-ok"
FAKE_PHONE = "+86-100-0000-0000"  # not a dialable number
FAKE_NAME = "测试·消防联络员"


def _create(platform: Platform, name: str = "fire.liaison", unit: str = "fire-rescue", role: str = "liaison",
            phone: str | None = FAKE_PHONE) -> tuple[Account, str]:
    return platform.accounts.create("test", account_name=name, display_name=FAKE_NAME, unit=unit, role=role,
                                    phone=phone, known_units=platform.known_agencies(), now=platform.clock())


def _ready(platform: Platform, name: str = "fire.liaison", **kw: str) -> Account:
    """An account whose person has replaced the initial password with PASSWORD."""
    account, initial = _create(platform, name, **kw)
    platform.accounts.change_password(account.account_id, initial, PASSWORD, platform.clock())
    return platform.accounts.get(account.account_id)


def _audit_rows(platform: Platform, account_id: str, action: str | None = None) -> list[dict[str, object]]:
    q = sa.select(audit_log).where(audit_log.c.resource_id == account_id).order_by(audit_log.c.id)
    if action:
        q = q.where(audit_log.c.action == action)
    with platform.read_engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


# -- the pure rules --------------------------------------------------------------------------


@pytest.mark.parametrize(("password", "fragment"), [
    ("short1A", "至少需要 10 个字符"),
    ("abcdefghijkl", "只由一类字符"),
    ("12345678901234", "只由一类字符"),
    ("my-fire.liaison-1", "不能包含账号名"),
    ("x" * 129 + "1", "不能超过 128 个字符"),
])
def test_the_password_policy_refuses_in_chinese(password: str, fragment: str) -> None:
    assert any(fragment in p for p in policy.password_problems(password, "fire.liaison"))


def test_a_good_password_passes_the_policy() -> None:
    assert policy.password_problems(PASSWORD, "fire.liaison") == []


def test_lockout_starts_after_five_failures_and_doubles() -> None:
    rule = policy.Lockout(after=5, base=timedelta(minutes=1), cap=timedelta(minutes=10))
    assert [rule.lock_for(n) for n in range(1, 5)] == [None] * 4
    assert [rule.lock_for(n) for n in range(5, 10)] == [timedelta(minutes=m) for m in (1, 2, 4, 8, 10)]
    assert rule.lock_for(500) == timedelta(minutes=10)  # capped, and no overflow


def test_a_totp_code_matches_its_step_once(clock: Clock) -> None:
    secret = totp.new_secret()
    code = pyotp.TOTP(secret).at(clock.now)
    step = totp.matching_step(secret, code, clock.now, None)
    assert step is not None
    assert totp.matching_step(secret, code, clock.now, step) is None  # replayed
    assert totp.matching_step(secret, code, clock.now + timedelta(minutes=5), None) is None  # too old
    assert totp.matching_step(secret, "12345", clock.now, None) is None
    assert totp.matching_step(secret, "１２３４５６", clock.now, None) is None  # full-width digits are not a code


def test_the_enrolment_qr_is_inline_svg() -> None:
    svg = str(totp.qr_svg(totp.provisioning_uri(totp.new_secret(), "fire.liaison", "联席平台")))
    assert svg.startswith("<svg") and "<path" in svg and "http" not in svg.split(">", 1)[0]


# -- accounts on the store ---------------------------------------------------------------------


def test_create_signs_in_with_the_initial_password_which_must_be_changed(platform: Platform) -> None:
    account, initial = _create(platform)
    assert account.must_change_password and account.enabled
    signed = platform.accounts.sign_in("FIRE.LIAISON ", initial, None, platform.clock())
    assert signed.account_id == account.account_id and signed.must_change_password
    with pytest.raises(AccountProblem, match="不能与当前密码相同"):
        platform.accounts.change_password(account.account_id, initial, initial, platform.clock())
    with pytest.raises(AccountProblem, match="当前密码不正确"):
        platform.accounts.change_password(account.account_id, "wrong-Password-1", PASSWORD, platform.clock())
    platform.accounts.change_password(account.account_id, initial, PASSWORD, platform.clock())
    assert not platform.accounts.get(account.account_id).must_change_password
    with pytest.raises(SignInFailed):
        platform.accounts.sign_in("fire.liaison", initial, None, platform.clock())
    rows = _audit_rows(platform, account.account_id, "SIGNIN")
    assert [(r["outcome"], r["actor"]) for r in rows] == [
        ("ok", f"liaison:{account.account_id}:account"), ("refused", f"liaison:{account.account_id}:account")]


def test_account_rules_are_refused_in_chinese(platform: Platform) -> None:
    _create(platform)
    cases = [({"name": "fire.liaison"}, "已被使用"), ({"name": "X"}, "账号名须为"),
             ({"name": "aud.one", "unit": "fire-rescue", "role": "auditor"}, "考核组/纪检"),
             ({"name": "rev.one", "unit": REVIEW_GROUP, "role": "liaison"}, "考核组/纪检"),
             ({"name": "lead.two", "unit": "fire-rescue", "role": "lead"}, "只有牵头单位"),
             ({"name": "nobody.one", "unit": "no-such-unit"}, "没有这个成员单位"),
             ({"name": "phone.bad", "phone": "call me"}, "手机号码格式")]
    for kw, fragment in cases:
        with pytest.raises(AccountProblem, match=fragment):
            _create(platform, **kw)  # type: ignore[arg-type]
    auditor, _ = _create(platform, "review.one", unit=REVIEW_GROUP, role="auditor")
    assert auditor.principal.agency == REVIEW_GROUP and not auditor.principal.can_write


def test_fifty_wrong_passwords_in_a_minute_lock_the_account_all_audited(platform: Platform, clock: Clock) -> None:
    account = _ready(platform)
    start = clock.now
    outcomes = []
    for i in range(50):
        clock.now = start + timedelta(seconds=i)  # 50 tries within the minute
        with pytest.raises(SignInFailed) as failed:
            platform.accounts.sign_in("fire.liaison", f"guess-{i:04d}-x", None, clock.now, client="203.0.113.9")
        outcomes.append(failed.value.reason)
    assert outcomes[:4] == ["wrong-password"] * 4 and outcomes[4:] == ["locked"] * 46
    # The right password is refused while the lock lasts (and is not even checked).
    clock.now = start + timedelta(seconds=59)
    with pytest.raises(SignInFailed) as failed:
        platform.accounts.sign_in("fire.liaison", PASSWORD, None, clock.now)
    assert failed.value.reason == "locked" and failed.value.locked_until == start + timedelta(seconds=64)
    rows = _audit_rows(platform, account.account_id)
    signins = [r for r in rows if r["action"] == "SIGNIN"]
    assert len(signins) == 51  # every one of the 50 tries and the right password during the lock
    assert [r["status"] for r in signins[:5]] == [401] * 5 and {r["status"] for r in signins[5:]} == {423}
    lockouts = [r for r in rows if r["action"] == "LOCKOUT"]
    assert len(lockouts) == 1 and "after 5 failures" in str(lockouts[0]["detail"])
    assert all(r["client"] == "203.0.113.9" for r in signins[:50])
    # Once the lock has passed the right password works, and resets the count.
    clock.now = start + timedelta(seconds=65)
    assert platform.accounts.sign_in("fire.liaison", PASSWORD, None, clock.now).account_id == account.account_id
    with platform.read_engine.connect() as conn:
        assert conn.execute(sa.select(accounts_table.c.failed_signins)).scalar() == 0


def test_each_failure_after_a_lock_doubles_it(platform: Platform, clock: Clock) -> None:
    _ready(platform)
    start = clock.now
    for i in range(5):
        with pytest.raises(SignInFailed):
            platform.accounts.sign_in("fire.liaison", "nope-nope-1", None, start + timedelta(seconds=i))
    clock.now = start + timedelta(minutes=2)
    with pytest.raises(SignInFailed) as failed:
        platform.accounts.sign_in("fire.liaison", "nope-nope-1", None, clock.now)
    assert failed.value.reason == "locked" and failed.value.locked_until == clock.now + timedelta(minutes=2)


def test_totp_is_required_once_enrolled(platform: Platform, clock: Clock) -> None:
    account = _ready(platform)
    secret, uri = platform.accounts.totp_enrolment(account.account_id)
    assert platform.accounts.totp_enrolment(account.account_id)[0] == secret  # stable until confirmed
    assert uri.startswith("otpauth://totp/") and "fire.liaison" in uri
    with pytest.raises(AccountProblem, match="动态口令不正确"):
        platform.accounts.confirm_totp(account.account_id, "000000", clock.now)
    platform.accounts.confirm_totp(account.account_id, pyotp.TOTP(secret).at(clock.now), clock.now)
    assert platform.accounts.get(account.account_id).totp_enabled
    later = clock.now + timedelta(minutes=2)
    with pytest.raises(SignInFailed) as failed:
        platform.accounts.sign_in("fire.liaison", PASSWORD, None, later)
    assert failed.value.reason == "wrong-code"
    code = pyotp.TOTP(secret).at(later)
    assert platform.accounts.sign_in("fire.liaison", PASSWORD, code, later)
    with pytest.raises(SignInFailed):  # the same code is not accepted twice
        platform.accounts.sign_in("fire.liaison", PASSWORD, code, later)


def _sessions(platform: Platform) -> SessionStore:
    return sessions_for(platform)


def test_sessions_end_when_idle_or_past_the_absolute_timeout_and_are_purged(platform: Platform,
                                                                             clock: Clock) -> None:
    account = _ready(platform)
    store = _sessions(platform)
    start = clock.now
    idle_id, _ = store.start(account.principal, start, account_id=account.account_id)
    busy_id, _ = store.start(account.principal, start, account_id=account.account_id)
    gone_id, gone = store.start(account.principal, start, account_id=account.account_id)
    store.end(gone.session_hash, start)
    # The busy one is used every 20 minutes, so it is never idle for 30; the idle one is not.
    for minutes in range(20, 12 * 60, 20):
        assert store.get(busy_id, start + timedelta(minutes=minutes)) is not None, minutes
    assert store.get(idle_id, start + timedelta(minutes=29)) is not None
    assert store.get(idle_id, start + timedelta(minutes=29 + 31)) is None  # idle for 31 minutes
    assert store.get(gone_id, start) is None
    assert store.get(busy_id, start + timedelta(hours=12, seconds=1)) is None  # the absolute timeout

    def rows() -> int:
        with platform.read_engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(web_sessions)).scalar_one())

    assert rows() == 3
    job = JOBS["sessions-purge"]
    assert job.run(platform.job_context(), start + timedelta(minutes=40))["purged"] == 1  # the ended one
    assert job.run(platform.job_context(), start + timedelta(hours=13))["purged"] == 2
    assert rows() == 0


def test_disabling_ends_sessions_and_tokens_at_once(api: Api) -> None:
    platform = api.platform
    account = _ready(platform)
    cookie, _ = _sessions(platform).start(account.principal, platform.clock(), account_id=account.account_id)
    _, token = platform.tokens.issue(agency=account.unit, role=account.role, label="test-personal",
                                     known_agencies=platform.known_agencies(), account_id=account.account_id)
    auth = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/v1/agencies/fire-rescue/ledger", headers=auth).status_code == 200
    # Another process disables the account (straight in the table): no cache hides it.
    with platform.write_engine.begin() as conn:
        conn.execute(accounts_table.update().values(enabled=False))
    assert api.client.get("/api/v1/agencies/fire-rescue/ledger", headers=auth).status_code == 401
    assert _sessions(platform).get(cookie, platform.clock()) is None
    with platform.write_engine.begin() as conn:
        conn.execute(accounts_table.update().values(enabled=True))
    assert api.client.get("/api/v1/agencies/fire-rescue/ledger", headers=auth).status_code == 200
    # Disabling through the service also revokes the tokens and ends the sessions for good.
    platform.accounts.set_enabled("test", account.account_id, False, platform.clock())
    platform.accounts.set_enabled("test", account.account_id, True, platform.clock())
    assert api.client.get("/api/v1/agencies/fire-rescue/ledger", headers=auth).status_code == 401
    assert _sessions(platform).get(cookie, platform.clock()) is None
    assert [r["action"] for r in _audit_rows(platform, account.account_id) if r["action"].startswith("ACCOUNT")][-2:] \
        == ["ACCOUNT disable", "ACCOUNT enable"]


def test_a_disabled_account_cannot_sign_in_and_a_reset_must_be_changed(platform: Platform) -> None:
    account = _ready(platform)
    platform.accounts.set_enabled("test", account.account_id, False, platform.clock())
    with pytest.raises(SignInFailed) as failed:
        platform.accounts.sign_in("fire.liaison", PASSWORD, None, platform.clock())
    assert failed.value.reason == "disabled"
    with pytest.raises(SignInFailed) as guessed:  # a wrong password learns nothing about the account's state
        platform.accounts.sign_in("fire.liaison", "Wrong-password-1", None, platform.clock())
    assert guessed.value.reason == "wrong-password"
    platform.accounts.set_enabled("test", account.account_id, True, platform.clock())
    fresh = platform.accounts.reset_password("test", account.account_id, platform.clock())
    assert platform.accounts.sign_in("fire.liaison", fresh, None, platform.clock()).must_change_password


def test_oidc_subjects_map_to_enabled_accounts_only(platform: Platform) -> None:
    account = _ready(platform)
    issuer = "https://idp.test.invalid"
    assert platform.accounts.for_oidc_subject(issuer, "sub-1") is None
    platform.accounts.set_oidc("test", account.account_id, issuer, "sub-1", platform.clock())
    found = platform.accounts.for_oidc_subject(issuer, "sub-1")
    assert found is not None and found.account_id == account.account_id
    other = _ready(platform, "fire.second")
    with pytest.raises(AccountProblem, match="另一个账号"):
        platform.accounts.set_oidc("test", other.account_id, issuer, "sub-1", platform.clock())
    with pytest.raises(AccountProblem, match="控制字符"):
        platform.accounts.set_oidc("test", other.account_id, issuer, "sub\x072", platform.clock())
    platform.accounts.set_enabled("test", account.account_id, False, platform.clock())
    assert platform.accounts.for_oidc_subject(issuer, "sub-1") is None


def test_names_and_phones_never_reach_the_log(api: Api) -> None:
    """A person acting through their account is named in events by the account's opaque id."""
    from tests.conftest import register_schools

    platform = api.platform
    schools = register_schools(api, 1)
    account = _ready(platform)
    _, token = platform.tokens.issue(agency=account.unit, role=account.role, label="test-personal",
                                     known_agencies=platform.known_agencies(), account_id=account.account_id)
    r = api.client.post("/api/v1/duty-logs", headers={"Authorization": f"Bearer {token}"}, json={
        "duty_code": "fire-rescue.inspection", "occurred_on": "2025-06-02", "school_ids": schools,
        "summary": "测试：消防检查"})
    assert r.status_code == 201, r.text
    stored = platform.app.recorder.select_notifications(start=1, limit=1_000_000)
    text = b"\n".join(bytes(n.state) for n in stored).decode("utf-8", "replace")
    assert account.account_id in text  # the duty log names who acted, by opaque id
    for personal in (FAKE_NAME, FAKE_PHONE, "fire.liaison"):
        assert personal not in text


def test_only_a_password_session_is_held_to_a_pending_password_change(platform: Platform) -> None:
    """Single sign-on (method "sso") never asks for the initial password the person was not given."""
    account, _ = _create(platform)
    store = _sessions(platform)
    by_password, _ = store.start(account.principal, platform.clock(), account_id=account.account_id,
                                 method="password")
    by_sso, _ = store.start(account.principal, platform.clock(), account_id=account.account_id, method="sso")
    held = store.get(by_password, platform.clock())
    free = store.get(by_sso, platform.clock())
    assert held is not None and held.must_change_password and held.display_name == FAKE_NAME
    assert free is not None and not free.must_change_password


def test_the_cli_creates_the_first_lead_account_and_manages_it(sqlite_url: str) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "LIANXI_DATABASE_URL": sqlite_url, "LIANXI_LOG_LEVEL": "WARNING"}

    def lianxi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=300, check=False)

    assert lianxi("init").returncode == 0
    made = lianxi("accounts", "create", "edu.first", "--display-name", "测试·教育局管理员", "--unit", "education",
                  "--role", "lead")
    assert made.returncode == 0, made.stderr
    initial = made.stdout.strip().splitlines()[-1]
    assert not policy.password_problems(initial, "edu.first")
    refused = lianxi("accounts", "create", "rev.x", "--display-name", "测试·考核", "--unit", "education",
                     "--role", "auditor")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "考核组/纪检" in refused.stderr
    assert "must-change-password" in lianxi("accounts", "list").stdout
    assert lianxi("accounts", "disable", "edu.first").returncode == 0
    assert "disabled" in lianxi("accounts", "list").stdout
    assert lianxi("accounts", "enable", "edu.first").returncode == 0
    reset = lianxi("accounts", "reset-password", "edu.first")
    assert reset.returncode == 0 and reset.stdout.strip().splitlines()[-1] != initial
    missing = lianxi("accounts", "disable", "nobody.here")
    assert missing.returncode == 1 and "没有账号名" in missing.stderr
    from services.settings import Settings

    p = Platform(Settings(database_url=sqlite_url))
    try:
        actions = [r["action"] for r in p.audit.page(limit=50) if str(r["action"]).startswith("ACCOUNT")]
        assert actions == ["ACCOUNT create", "ACCOUNT disable", "ACCOUNT enable", "ACCOUNT reset-password"]
    finally:
        p.close()


def test_two_sign_ins_racing_with_one_totp_code_let_only_one_in(platform: Platform, clock: Clock,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Both read the account before either writes: the second write must find the code used."""
    account = _ready(platform)
    secret, _ = platform.accounts.totp_enrolment(account.account_id)
    platform.accounts.confirm_totp(account.account_id, pyotp.TOTP(secret).at(clock.now), clock.now)
    later = clock.now + timedelta(minutes=2)
    code = pyotp.TOTP(secret).at(later)
    real = totp.matching_step
    rival: list[Account] = []
    raced = False

    def with_a_rival(*args: object) -> int | None:
        nonlocal raced
        step = real(*args)  # type: ignore[arg-type]
        if not raced:  # the rival request runs its whole sign-in inside our read-then-write window
            raced = True
            rival.append(platform.accounts.sign_in("fire.liaison", PASSWORD, code, later))
        return step

    monkeypatch.setattr(totp, "matching_step", with_a_rival)
    with pytest.raises(SignInFailed) as failed:
        platform.accounts.sign_in("fire.liaison", PASSWORD, code, later)
    assert rival and failed.value.reason == "wrong-code"
    with platform.read_engine.connect() as conn:
        details = [d for (d,) in conn.execute(sa.select(audit_log.c.detail).where(audit_log.c.action == "SIGNIN"))]
    assert details.count("password + totp") == 1 and any(d.startswith("wrong-code") for d in details)
