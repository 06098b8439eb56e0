"""The channels officials use: DingTalk and WeCom group robots and text messages.

A loopback receiver plays each robot as its platform documents it: DingTalk checks the
signature on every message (it recomputes base64(HMAC-SHA256(secret, timestamp + "\\n" +
secret)) itself) and refuses an unsigned request and a timestamp more than an hour from its
clock, answering HTTP 200 with a non-zero errcode as DingTalk does; WeCom checks the key.
Both check the markdown message shape. Delivery through them retries and gives up exactly as
a webhook's does, and every request goes through the outbound policy."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import sqlalchemy as sa

from projections.notifications import deliveries
from services.notify.channels import SendResult
from services.notify.deliver import Deliverer
from services.notify.messages import SMS_MAX
from services.settings import Settings
from tests.conftest import FIXED_NOW, Api

UNIT, UNIT_NAME = "market-supervision", "旗市场监管局"
SECRET = "SEC" + "0f1e2d3c4b5a6978" * 4  # the shape DingTalk prints; made up for the test
TOKEN, KEY = "a1b2c3d4e5f6a7b8c9d0", "0f9e8d7c-6b5a-4938-2716-f5e4d3c2b1a0"
PHONES = ["13800138001", "13800138002"]  # the well-known placeholder range, nobody's
HOUR_MS = 3600 * 1000


class RobotReceiver:
    """A loopback DingTalk or WeCom robot. ``accepted`` holds the messages it took;
    ``answers`` every errcode it gave. ``clock`` is its own time (seconds)."""

    def __init__(self, kind: str, *, clock: Callable[[], float] = FIXED_NOW.timestamp,
                 status: int = 200) -> None:
        self.kind, self.clock, self.status = kind, clock, status
        self.accepted: list[dict[str, Any]] = []
        self.answers: list[tuple[int, str]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.paths.append(self.path)
                code, msg = receiver.judge(self.path, body)
                receiver.answers.append((code, msg))
                reply = orjson.dumps({"errcode": code, "errmsg": msg})
                self.send_response(receiver.status)
                if receiver.status in (301, 302, 307):
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self.server.server_address[1]
        self.url = (f"http://127.0.0.1:{port}/robot/send?access_token={TOKEN}" if kind == "dingtalk"
                    else f"http://127.0.0.1:{port}/cgi-bin/webhook/send?key={KEY}")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def judge(self, path: str, body: bytes) -> tuple[int, str]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        if self.kind == "dingtalk":
            if query.get("access_token") != TOKEN:
                return 300001, "token is not exist"
            if "timestamp" not in query or "sign" not in query:
                return 310000, "sign not match"
            try:
                timestamp = int(query["timestamp"])
            except ValueError:
                return 310000, "invalid timestamp"
            if abs(self.clock() * 1000 - timestamp) > HOUR_MS:
                return 310000, "invalid timestamp"
            expected = base64.b64encode(hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(),
                                                 hashlib.sha256).digest()).decode()
            if not hmac.compare_digest(expected, query["sign"]):
                return 310000, "sign not match"
        elif query.get("key") != KEY:
            return 93000, "invalid webhook url"
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 40001, "invalid json"
        md = message.get("markdown") if message.get("msgtype") == "markdown" else None
        if self.kind == "dingtalk":
            shaped = isinstance(md, dict) and set(md) == {"title", "text"} and all(
                isinstance(md[k], str) and md[k] for k in md)
        else:
            shaped = isinstance(md, dict) and set(md) == {"content"} and isinstance(md["content"], str) \
                and 0 < len(md["content"].encode()) <= 4096
        if not shaped:
            return 40035, "param error"
        self.accepted.append(md)
        return 0, "ok"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _loopback_receivers_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loopback robots live on 127.0.0.1 over http: an operator-allowed internal host, the
    same allowance the webhook tests use (production stays closed to internal addresses)."""
    monkeypatch.setenv("LIANXI_OUTBOUND_ALLOW_HOSTS", "127.0.0.1")


@pytest.fixture
def dingtalk() -> Iterator[RobotReceiver]:
    r = RobotReceiver("dingtalk")
    yield r
    r.close()


@pytest.fixture
def wecom() -> Iterator[RobotReceiver]:
    r = RobotReceiver("wecom")
    yield r
    r.close()


def _petition(api: Api, ref: str, unit: str = UNIT) -> None:
    r = api.client.post("/api/v1/petitions", headers=api.as_("petitions"), json={
        "reference": ref, "channel": "letter", "topic": "canteen", "summary": "反映食堂饭菜价格偏高[详情](http://x.example)",
        "handling_unit": unit, "received_on": "2025-06-01"})
    assert r.status_code == 201, r.text
    api.settle()


def _robot(api: Api, receiver: RobotReceiver, unit: str = UNIT, secret: str = SECRET) -> dict[str, Any]:
    body = {"url": receiver.url, "secret": secret} if receiver.kind == "dingtalk" else {"url": receiver.url}
    r = api.client.put(f"/api/v1/inbox/channels/{receiver.kind}", headers=api.as_(unit), json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _rows(api: Api) -> list[dict[str, Any]]:
    with api.platform.read_engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(deliveries).order_by(deliveries.c.channel)).mappings()]


# -- the receiver itself -------------------------------------------------------------------------


def test_the_dingtalk_receiver_refuses_unsigned_wrongly_signed_and_late_requests(dingtalk: RobotReceiver) -> None:
    """What the loopback robot checks, before it is used to judge the deliverer."""
    from services.security.outbound import OutboundPolicy

    post = OutboundPolicy(allowed_hosts=["127.0.0.1"]).post
    message = orjson.dumps({"msgtype": "markdown", "markdown": {"title": "标题", "text": "正文"}})
    now_ms = int(FIXED_NOW.timestamp() * 1000)

    def signed(ts: int, secret: str = SECRET) -> str:
        sign = base64.b64encode(hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest())
        from urllib.parse import quote_plus
        return f"{dingtalk.url}&timestamp={ts}&sign={quote_plus(sign.decode())}"

    for url in (dingtalk.url, signed(now_ms, "SECwrong-secret-0000"), signed(now_ms - HOUR_MS - 1000),
                signed(now_ms + HOUR_MS + 1000), signed(now_ms)):
        assert post(url, message, {"Content-Type": "application/json"}, 5).ok  # HTTP 200 every time, as DingTalk
    assert [code for code, _ in dingtalk.answers] == [310000, 310000, 310000, 310000, 0]
    assert [m for _, m in dingtalk.answers[:4]] == ["sign not match", "sign not match", "invalid timestamp",
                                                    "invalid timestamp"]
    assert len(dingtalk.accepted) == 1


# -- DingTalk ------------------------------------------------------------------------------------


def test_dingtalk_robot_gets_signed_chinese_markdown_once(sqlite_api: Api, dingtalk: RobotReceiver) -> None:
    api = sqlite_api
    out = _robot(api, dingtalk)
    assert out["secret"] is None and TOKEN not in out["target"] and "access_token=a1b2" in out["target"]
    listed = api.client.get("/api/v1/inbox/channels", headers=api.as_(UNIT))
    assert SECRET not in listed.text and TOKEN not in listed.text
    _petition(api, "XF-1")
    _petition(api, "XF-2", unit="education")  # another unit's: not this robot's
    d = Deliverer(api.platform.write_engine)
    assert d.run_once(FIXED_NOW).delivered == 1
    assert d.run_once(FIXED_NOW).delivered == 0
    (md,) = dingtalk.accepted
    assert md["title"].startswith("【联席平台】信访件待办理") and "XF-1" in md["title"]
    text = md["text"]
    assert text.startswith("#### 【联席平台】")
    assert f"单位：{UNIT_NAME}" in text and UNIT not in text  # names, not codes
    assert "时间：2025-06-30 12:00" in text  # county time, no zone suffix
    assert md["title"] == "【联席平台】信访件待办理：XF-1（办理期限2025-07-31）"  # full-width punctuation
    assert "反映食堂饭菜价格偏高［详情］（http://x.example）" in text  # the petition's text cannot make a link
    assert [(r["channel"], r["status"], r["attempts"]) for r in _rows(api)] == [("dingtalk", "delivered", 1)]


def test_a_wrong_secret_or_a_late_clock_is_refused_retried_and_given_up(sqlite_api: Api) -> None:
    """The robot's refusals (HTTP 200, errcode 310000) are failed attempts: retried with
    back-off, recorded with their category, given up after the last attempt — as a webhook's."""
    api = sqlite_api
    late = RobotReceiver("dingtalk", clock=lambda: FIXED_NOW.timestamp() + 2 * 3600)  # the robot's clock is 2 h on
    try:
        _robot(api, late)
        _petition(api, "XF-1")
        d = Deliverer(api.platform.write_engine, Settings(delivery_backoff_s=30, delivery_max_attempts=2))
        assert d.run_once(FIXED_NOW).failed == 1
        (row,) = _rows(api)
        assert (row["status"], row["attempts"], row["last_error"]) == ("retry", 1, "机器人拒绝(errcode 310000)")
        assert late.answers == [(310000, "invalid timestamp")]
        assert d.run_once(FIXED_NOW).failed == 0  # back-off holds
        assert d.run_once(FIXED_NOW.replace(second=31)).gave_up == 1
        (row,) = _rows(api)
        assert (row["status"], row["attempts"]) == ("failed", 2) and late.accepted == []
        failures = api.client.get("/api/v1/inbox/channels", headers=api.as_(UNIT)).json()[0]["recent_failures"]
        assert [f["error"] for f in failures] == ["机器人拒绝(errcode 310000)"] * 2

        # a wrong secret: refused; once the right one is saved, the next message gets through
        late.clock = FIXED_NOW.timestamp
        _robot(api, late, secret="SEC" + "9" * 64)
        _petition(api, "XF-2")
        assert d.run_once(FIXED_NOW).failed == 1 and late.answers[-1] == (310000, "sign not match")
        _robot(api, late)
        assert d.run_once(FIXED_NOW.replace(second=40)).delivered == 1
        assert "XF-2" in late.accepted[0]["title"]
    finally:
        late.close()


# -- WeCom ---------------------------------------------------------------------------------------


def test_wecom_robot_gets_markdown_and_a_wrong_key_fails(sqlite_api: Api, wecom: RobotReceiver) -> None:
    api = sqlite_api
    out = _robot(api, wecom)
    assert KEY not in out["target"] and out["secret"] is None
    _petition(api, "XF-1")
    assert Deliverer(api.platform.write_engine).run_once(FIXED_NOW).delivered == 1
    (md,) = wecom.accepted
    assert md["content"].startswith("#### 【联席平台】信访件待办理") and UNIT_NAME in md["content"]
    assert UNIT not in md["content"]

    bad = api.client.put("/api/v1/inbox/channels/wecom", headers=api.as_(UNIT),
                         json={"url": wecom.url.replace(KEY, "not-the-key")})
    assert bad.status_code == 200
    _petition(api, "XF-2")
    d = Deliverer(api.platform.write_engine, Settings(delivery_max_attempts=1))
    assert d.run_once(FIXED_NOW).gave_up == 1
    assert wecom.answers[-1] == (93000, "invalid webhook url")
    assert [r["status"] for r in _rows(api)] == ["delivered", "failed"]


def test_a_long_message_is_cut_to_what_wecom_takes(sqlite_api: Api, wecom: RobotReceiver) -> None:
    api = sqlite_api
    _robot(api, wecom)
    r = api.client.post("/api/v1/petitions", headers=api.as_("petitions"), json={
        "reference": "XF-LONG", "channel": "letter", "topic": "canteen", "summary": "饭菜价格偏高" * 300,
        "handling_unit": UNIT, "received_on": "2025-06-01"})
    assert r.status_code == 201, r.text
    api.settle()
    assert Deliverer(api.platform.write_engine).run_once(FIXED_NOW).delivered == 1
    assert 4000 < len(wecom.accepted[0]["content"].encode()) <= 4096


# -- the outbound policy ------------------------------------------------------------------------


def test_robots_go_through_the_outbound_policy(sqlite_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api = sqlite_api
    monkeypatch.delenv("LIANXI_OUTBOUND_ALLOW_HOSTS")
    monkeypatch.setattr(api.platform.settings, "outbound_allow_hosts", "")
    me = api.as_(UNIT)
    for url in (f"https://127.0.0.1/robot/send?access_token={TOKEN}", f"https://10.1.2.3/robot/send?access_token={TOKEN}",
                f"https://169.254.169.254/robot/send?access_token={TOKEN}", f"https://[::1]/robot/send?access_token={TOKEN}",
                f"http://oapi.dingtalk.com/robot/send?access_token={TOKEN}",
                f"https://localhost/robot/send?access_token={TOKEN}"):
        r = api.client.put("/api/v1/inbox/channels/dingtalk", headers=me, json={"url": url, "secret": SECRET})
        assert r.status_code == 422, (url, r.text)
    r = api.client.put("/api/v1/inbox/channels/wecom", headers=me, json={"url": f"https://10.0.0.8/send?key={KEY}"})
    assert r.status_code == 422
    # a public robot URL is accepted; without its token or secret it is not
    ok = api.client.put("/api/v1/inbox/channels/dingtalk", headers=me, json={
        "url": f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}", "secret": SECRET})
    assert ok.status_code == 200, ok.text
    for body in ({"url": "https://oapi.dingtalk.com/robot/send", "secret": SECRET},
                 {"url": f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}",
                  "secret": "not-a-dingtalk-secret"}):
        assert api.client.put("/api/v1/inbox/channels/dingtalk", headers=me, json=body).status_code == 422
    assert api.client.put("/api/v1/inbox/channels/wecom", headers=me,
                          json={"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"}).status_code == 422


def test_a_robot_that_redirects_is_not_followed(sqlite_api: Api) -> None:
    api = sqlite_api
    moved = RobotReceiver("wecom", status=302)
    try:
        _robot(api, moved)
        _petition(api, "XF-1")
        assert Deliverer(api.platform.write_engine).run_once(FIXED_NOW).failed == 1
        (row,) = _rows(api)
        assert row["last_error"] == "非2xx(HTTP 302)" and len(moved.paths) == 1
    finally:
        moved.close()


# -- SMS -----------------------------------------------------------------------------------------


def test_sms_goes_through_the_gateway_short_chinese_and_masked(sqlite_api: Api,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    api = sqlite_api
    me = api.as_(UNIT)
    assert api.client.put("/api/v1/inbox/channels/sms", headers=me, json={"phones": ["12345678901"]}).status_code == 422
    r = api.client.put("/api/v1/inbox/channels/sms", headers=me, json={"phones": PHONES})
    assert r.status_code == 200 and r.json()["target"] == "138****8001、138****8002"
    assert PHONES[0] not in api.client.get("/api/v1/inbox/channels", headers=me).text
    _petition(api, "XF-1")
    sent: list[tuple[list[str], str]] = []

    def gateway(phones: Any, text: str) -> SendResult:
        sent.append((list(phones), text))
        return SendResult(True)

    assert Deliverer(api.platform.write_engine, sms=gateway).run_once(FIXED_NOW).delivered == 1
    ((phones, text),) = sent
    assert phones == PHONES and len(text) <= SMS_MAX
    assert text.startswith(f"{UNIT_NAME}：信访件待办理") and text.endswith("请登录联席平台办理。")

    # the logging gateway (the default) writes it with the numbers masked
    _petition(api, "XF-2")
    with caplog.at_level(logging.INFO, logger="services.notify.sms"):
        assert Deliverer(api.platform.write_engine).run_once(FIXED_NOW).delivered == 1
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "services.notify.sms")
    assert "138****8001" in logged and "XF-2" in logged and PHONES[0] not in logged


def test_an_unknown_sms_gateway_is_refused_when_set(sqlite_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_api.platform.settings, "sms_gateway", "no-such-provider")
    r = sqlite_api.client.put("/api/v1/inbox/channels/sms", headers=sqlite_api.as_(UNIT), json={"phones": PHONES})
    assert r.status_code == 422 and "LIANXI_SMS_GATEWAY" in r.json()["detail"]


# -- the test message over the API ----------------------------------------------------------------


def test_a_unit_sends_itself_a_test_message(sqlite_api: Api, dingtalk: RobotReceiver) -> None:
    api = sqlite_api
    me = api.as_(UNIT)
    assert api.client.post("/api/v1/inbox/channels/dingtalk/test", headers=me).status_code == 404  # not set yet
    _robot(api, dingtalk)
    r = api.client.post("/api/v1/inbox/channels/dingtalk/test", headers=me)
    assert r.status_code == 200 and r.json()["ok"] and "测试消息已发送到钉钉群机器人" in r.json()["message"]
    (md,) = dingtalk.accepted
    assert "测试消息" in md["title"] and UNIT_NAME in md["text"]
    assert _rows(api) == []  # a test is no delivery record
    # another unit's credential tests its own channels, never this one's
    assert api.client.post("/api/v1/inbox/channels/dingtalk/test", headers=api.as_("fire-rescue")).status_code == 404
    assert api.client.post("/api/v1/inbox/channels/dingtalk/test",
                           headers=api.as_(UNIT, "auditor")).status_code == 403
    assert len(dingtalk.accepted) == 1
    _robot(api, dingtalk, secret="SEC" + "7" * 64)
    r = api.client.post("/api/v1/inbox/channels/dingtalk/test", headers=me)
    assert r.status_code == 200 and not r.json()["ok"]
    assert r.json()["message"].startswith("测试消息未能发送到钉钉群机器人：机器人拒绝(errcode 310000)")


def test_a_gateway_that_raises_is_a_failed_attempt_retried(sqlite_api: Api) -> None:
    api = sqlite_api
    r = api.client.put("/api/v1/inbox/channels/sms", headers=api.as_(UNIT), json={"phones": PHONES})
    assert r.status_code == 200
    _petition(api, "XF-1")

    def broken(phones: Any, text: str) -> SendResult:
        raise ConnectionError("provider down")

    assert Deliverer(api.platform.write_engine, sms=broken).run_once(FIXED_NOW).failed == 1
    (row,) = _rows(api)
    assert (row["status"], row["attempts"], row["last_error"]) == ("retry", 1, "短信网关出错")


# -- SMS to the unit's accounts -------------------------------------------------------------------

ACCOUNT_PHONE, ACCOUNT_NAME = "+86-138-0013-8009", "测试·市场监管联络员"  # made up, the placeholder range


def _account(api: Api, name: str, phone: str | None, unit: str = UNIT, display: str = ACCOUNT_NAME) -> str:
    platform = api.platform
    account, _ = platform.accounts.create("test", account_name=name, display_name=display, unit=unit,
                                          role="liaison", phone=phone, known_units=platform.known_agencies(),
                                          now=platform.clock())
    return account.account_id


def test_sms_goes_to_the_units_enabled_accounts_with_a_mobile_and_never_into_events_or_logs(
        sqlite_api: Api, caplog: pytest.LogCaptureFixture) -> None:
    api = sqlite_api
    reached = _account(api, "market.liaison", ACCOUNT_PHONE)
    _account(api, "market.nophone", None, display="测试·无号码")
    _account(api, "market.landline", "010-0000-0000", display="测试·座机")  # no text reaches a landline
    _account(api, "fire.liaison", "13800138007", unit="fire-rescue", display="测试·别的单位")
    leaving = _account(api, "market.leaving", "13800138008", display="测试·将停用")
    r = api.client.put("/api/v1/inbox/channels/sms", headers=api.as_(UNIT), json={})  # the accounts only
    assert r.status_code == 200 and r.json()["target"] == ""
    sent: list[list[str]] = []

    def gateway(phones: Any, text: str) -> SendResult:
        sent.append(list(phones))
        return SendResult(True)

    _petition(api, "XF-1")
    assert Deliverer(api.platform.write_engine, sms=gateway).run_once(FIXED_NOW).delivered == 1
    assert sent == [["13800138008", "13800138009"]]  # by account name: market.leaving, market.liaison
    # disabling an account stops its messages from the next one on; the extra numbers are added
    api.platform.accounts.set_enabled("test", leaving, False, api.platform.clock())
    api.client.put("/api/v1/inbox/channels/sms", headers=api.as_(UNIT), json={"phones": [PHONES[0], "13800138009"]})
    _petition(api, "XF-2")
    assert Deliverer(api.platform.write_engine, sms=gateway).run_once(FIXED_NOW).delivered == 1
    assert sent[1] == ["13800138009", PHONES[0]]

    # the logging gateway writes masked numbers only; nothing personal in the stored events
    _petition(api, "XF-3")
    with caplog.at_level(logging.DEBUG):
        assert Deliverer(api.platform.write_engine).run_once(FIXED_NOW).delivered == 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "138****8009" in logged and "XF-3" in logged
    stored = api.platform.app.recorder.select_notifications(start=1, limit=1_000_000)
    events = b"\n".join(bytes(n.state) for n in stored).decode("utf-8", "replace")
    assert "XF-3" in events  # the scan reads the events' text
    for text in (logged, events):
        for personal in ("13800138009", "0013-8009", "13800138008", ACCOUNT_NAME, PHONES[0]):
            assert personal not in text
    assert reached not in logged


def test_no_receiver_is_a_failed_attempt_said_in_chinese(sqlite_api: Api) -> None:
    api = sqlite_api
    assert api.client.put("/api/v1/inbox/channels/sms", headers=api.as_(UNIT), json={"phones": []}).status_code == 200
    r = api.client.post("/api/v1/inbox/channels/sms/test", headers=api.as_(UNIT))
    assert r.status_code == 200 and not r.json()["ok"] and "本单位账号未填手机号码" in r.json()["message"]
