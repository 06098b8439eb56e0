"""Notifications: the inbox derived from the log, read marks, and outbound delivery (signed
webhooks to a local receiver, email to a local aiosmtpd server): retried with back-off,
failures recorded and visible, and each delivered exactly once, across re-runs, concurrent
deliverers and a projection rebuild."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa

from contracts.typography import ascii_punctuation_beside_cjk
from projections.notifications import attempts, deliveries
from services.kernel.principal import Principal
from services.notify.deliver import Deliverer, set_channel, verify_signature
from services.scheduler import LianxiScheduler
from services.settings import Settings
from tests.conftest import FIXED_NOW, Api, register_schools

LEAD = Principal("t-lead", "education", "lead", "test-lead")


class Receiver:
    """A local webhook endpoint: records each request; answers ``fail_first`` requests with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append({"headers": dict(self.headers), "body": body})
                    failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _loopback_receivers_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local receivers live on 127.0.0.1 over http: an operator-allowed internal host."""
    monkeypatch.setenv("LIANXI_OUTBOUND_ALLOW_HOSTS", "127.0.0.1")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _petition(api: Api, ref: str, unit: str = "market-supervision", received: str = "2025-06-01") -> str:
    r = api.client.post("/api/v1/petitions", headers=api.as_("petitions"), json={
        "reference": ref, "channel": "letter", "topic": "canteen", "summary": "反映食堂饭菜价格偏高",
        "handling_unit": unit, "received_on": received})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _hook(api: Api, url: str, unit: str = "market-supervision") -> str:
    r = api.client.put("/api/v1/inbox/channels/webhook", headers=api.as_(unit), json={"url": url})
    assert r.status_code == 200, r.text
    return str(r.json()["secret"])


def _deliveries(api: Api) -> list[dict[str, Any]]:
    with api.platform.read_engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(deliveries)).mappings()]


# -- the inbox ---------------------------------------------------------------------------------------


def test_inbox_pages_unread_and_read_marks_survive_a_rebuild(sqlite_api: Api) -> None:
    api = sqlite_api
    for i in range(5):
        _petition(api, f"XF-{i}")
    api.settle()
    me = api.as_("market-supervision")
    first = api.client.get("/api/v1/inbox?limit=2", headers=me).json()
    assert first["unread"] == 5 and len(first["items"]) == 2 and first["next_cursor"]
    assert first["items"][0]["kind"] == "petition-assigned" and "XF-4" in first["items"][0]["title"]
    ids = [n["id"] for n in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = api.client.get(f"/api/v1/inbox?limit=2&cursor={cursor}", headers=me).json()
        ids += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
    assert len(ids) == len(set(ids)) == 5
    assert api.client.get("/api/v1/inbox", headers=api.as_("petitions")).json()["items"] == []

    assert api.client.post(f"/api/v1/inbox/{ids[0]}/read", headers=me).json() == {"marked": 1}
    assert api.client.post(f"/api/v1/inbox/{ids[0]}/read", headers=me).json() == {"marked": 0}
    assert api.client.post("/api/v1/inbox/read", headers=me, json={"ids": ids[1:3]}).json() == {"marked": 2}
    unread = api.client.get("/api/v1/inbox?unread=true", headers=me).json()
    assert unread["unread"] == 2 and {n["id"] for n in unread["items"]} == set(ids[3:])
    missing = api.client.post("/api/v1/inbox/read", headers=me, json={"ids": ["0" * 8 + "-0000-0000-0000-" + "0" * 12]})
    assert missing.status_code == 404
    assert api.client.post("/api/v1/inbox/read", headers=me, json={}).status_code == 422

    api.platform.runner.reset("notifications")
    api.settle()
    after = api.client.get("/api/v1/inbox", headers=me).json()
    assert after["unread"] == 2 and sum(n["read"] for n in after["items"]) == 3
    assert api.client.post("/api/v1/inbox/read", headers=me, json={"all": True}).json() == {"marked": 2}
    assert api.client.get("/api/v1/inbox", headers=me).json()["unread"] == 0


def test_notifications_come_from_rectifications_warnings_meetings(sqlite_api: Api) -> None:
    api = sqlite_api
    register_schools(api, 2)
    app = api.platform.app
    now = FIXED_NOW
    item = app.report_hazard(LEAD, kind="unit", units=[], school_id="T001", category="fire", severity="major",
                             description="疏散通道堆放杂物", found_on=date(2025, 6, 29), idempotency_key=None,
                             body={}, now=now)
    app.assign_rectification(LEAD, uuid.UUID(item.id), lead_unit="fire-rescue", cooperating_units=["education"],
                             deadline=date(2025, 7, 10), measures=["清理疏散通道"],
                             funds={"amount_cny": "0", "source": "学校公用经费"}, now=now)
    LianxiScheduler(api.platform).run_job("overdue-sweep", datetime(2025, 7, 12, 2, tzinfo=UTC))
    app.issue_warning(Principal("t-met", "meteorology", "liaison", "met"), warning_type="rainstorm", level="orange",
                      title="暴雨橙色预警", towns=["满都拉图镇"], valid_from=now, valid_until=now + timedelta(hours=12),
                      measures=["停止户外活动"], units=["emergency-management"], school_ids=["T001"],
                      idempotency_key="w-1", now=now)
    app.schedule_meeting(LEAD, number=None, title="第三次联席会议", scheduled_for=date(2025, 7, 20), place="教育局",
                         now=now)
    api.settle()

    def kinds(unit: str) -> list[str]:
        return [n["kind"] for n in api.client.get("/api/v1/inbox", headers=api.as_(unit)).json()["items"]]

    assert kinds("fire-rescue")[-1] == "rectification-assigned"
    assert "rectification-assigned" in kinds("education")  # the cooperating unit too
    assert "rectification-overdue" in kinds("fire-rescue") and "rectification-overdue" in kinds("education")
    assert "meeting-scheduled" in kinds("peoples-bank")  # every member unit
    assert "warning-to-acknowledge" in kinds("emergency-management")
    assert "warning-to-acknowledge" in kinds("education")  # acknowledges for the schools
    assert "rectification-assigned" not in kinds("peoples-bank")

    # What people read names units, warning kinds and levels, in full-width punctuation; codes stay in JSON.
    def texts(unit: str, kind: str) -> str:
        items = api.client.get("/api/v1/inbox", headers=api.as_(unit)).json()["items"]
        return "\n".join(f"{n['title']}\n{n['body']}" for n in items if n["kind"] == kind)

    assigned = texts("fire-rescue", "rectification-assigned")
    assert "牵头单位：旗消防大队；配合单位：旗教育局。" in assigned and "fire-rescue" not in assigned
    warning = texts("emergency-management", "warning-to-acknowledge")
    assert "暴雨橙色预警，覆盖满都拉图镇" in warning and "orange" not in warning and "rainstorm" not in warning
    for text in (assigned, warning, texts("peoples-bank", "meeting-scheduled")):
        assert ascii_punctuation_beside_cjk(text) == [], text


# -- webhooks --------------------------------------------------------------------------------------


def test_webhook_is_signed_and_delivered_exactly_once_across_rebuild(api: Api, receiver: Receiver) -> None:
    secret = _hook(api, receiver.url)
    _petition(api, "XF-1")
    _petition(api, "XF-2", unit="education")  # another unit's: not sent to this webhook
    api.settle()
    deliverer = Deliverer(api.platform.write_engine)
    report = deliverer.run_once(FIXED_NOW)
    assert report.delivered == 1 and len(receiver.requests) == 1
    req = receiver.requests[0]
    body = req["body"]
    assert verify_signature(secret, req["headers"]["X-Lianxi-Timestamp"], body, req["headers"]["X-Lianxi-Signature"],
                            now=FIXED_NOW.timestamp())
    assert not verify_signature("whsec_wrong", req["headers"]["X-Lianxi-Timestamp"], body,
                                req["headers"]["X-Lianxi-Signature"], now=FIXED_NOW.timestamp())
    assert not verify_signature(secret, req["headers"]["X-Lianxi-Timestamp"], body + b" ",
                                req["headers"]["X-Lianxi-Signature"], now=FIXED_NOW.timestamp())
    payload = json.loads(body)
    inbox = api.client.get("/api/v1/inbox", headers=api.as_("market-supervision")).json()["items"]
    assert payload["id"] == inbox[0]["id"] == req["headers"]["X-Lianxi-Delivery"]
    assert payload["kind"] == "petition-assigned" and payload["agency"] == "market-supervision"

    assert deliverer.run_once(FIXED_NOW + timedelta(minutes=5)).delivered == 0
    # Drop and rebuild the notifications read model: the inbox comes back, nothing is sent again.
    api.platform.runner.reset("notifications")
    api.settle()
    assert len(api.client.get("/api/v1/inbox", headers=api.as_("market-supervision")).json()["items"]) == 1
    assert deliverer.run_once(FIXED_NOW + timedelta(minutes=10)).delivered == 0
    assert len(receiver.requests) == 1
    rows = _deliveries(api)
    assert [(r["channel"], r["status"], r["attempts"]) for r in rows] == [("webhook", "delivered", 1)]

    # A new notification after the rebuild is delivered, once.
    _petition(api, "XF-3")
    api.settle()
    assert deliverer.run_once(FIXED_NOW + timedelta(minutes=15)).delivered == 1
    assert deliverer.run_once(FIXED_NOW + timedelta(minutes=16)).delivered == 0
    assert len(receiver.requests) == 2


def test_failures_are_retried_with_backoff_recorded_and_visible(sqlite_api: Api) -> None:
    api = sqlite_api
    flaky = Receiver(fail_first=2)
    try:
        _hook(api, flaky.url)
        _petition(api, "XF-1")
        api.settle()
        d = Deliverer(api.platform.write_engine, Settings(delivery_backoff_s=30, delivery_max_attempts=5))
        t0 = FIXED_NOW
        assert d.run_once(t0).failed == 1
        (row,) = _deliveries(api)
        assert (row["status"], row["attempts"], row["last_error"]) == ("retry", 1, "非2xx(HTTP 500)")
        assert row["next_attempt_at"].startswith("2025-06-30T04:00:30")
        assert d.run_once(t0 + timedelta(seconds=20)).failed == 0  # not due yet: back-off holds
        assert d.run_once(t0 + timedelta(seconds=31)).failed == 1  # second attempt, then 60 s
        (row,) = _deliveries(api)
        assert row["next_attempt_at"].startswith("2025-06-30T04:01:31")
        assert d.run_once(t0 + timedelta(seconds=60)).delivered == 0
        assert d.run_once(t0 + timedelta(seconds=95)).delivered == 1
        assert len(flaky.requests) == 3
        channels = api.client.get("/api/v1/inbox/channels", headers=api.as_("market-supervision")).json()
        assert channels[0]["deliveries"] == {"delivered": 1}
        assert [f["attempt"] for f in channels[0]["recent_failures"]] == [2, 1]
        assert channels[0]["recent_failures"][0]["status_code"] == 500
        # each attempt carries the same delivery id, so a receiver can deduplicate
        assert len({r["headers"]["X-Lianxi-Delivery"] for r in flaky.requests}) == 1
    finally:
        flaky.close()


def test_a_dead_endpoint_is_given_up_and_shown_as_failed(sqlite_api: Api) -> None:
    api = sqlite_api
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    _hook(api, dead)
    _petition(api, "XF-1")
    api.settle()
    d = Deliverer(api.platform.write_engine, Settings(delivery_backoff_s=1, delivery_max_attempts=3))
    moment = FIXED_NOW
    for _ in range(5):
        d.run_once(moment)
        moment += timedelta(minutes=1)
    (row,) = _deliveries(api)
    assert (row["status"], row["attempts"]) == ("failed", 3)
    failed = api.client.get("/api/v1/inbox/deliveries?status=failed", headers=api.as_("market-supervision")).json()
    assert len(failed) == 1 and failed[0]["last_error"]
    with api.platform.read_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(attempts)).scalar() == 3


def test_concurrent_deliverers_send_once(database_url: str, receiver: Receiver) -> None:
    from contracts.catalogue import default_catalogue
    from tests.conftest import make_platform

    a, b = make_platform(database_url), make_platform(database_url)
    try:
        a.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
        set_channel(a.write_engine, "market-supervision", "webhook", receiver.url, now=FIXED_NOW - timedelta(days=1))
        petitions = Principal("t-p", "petitions", "liaison", "p")
        for i in range(20):
            a.app.receive_petition(petitions, reference=f"XF-{i}", channel="visit", topic="fees", school_id=None,
                                   summary="反映收费问题", handling_unit="market-supervision",
                                   received_on=date(2025, 6, 1), body={"i": i}, now=FIXED_NOW)
        a.runner.catch_up()
        reports: list[Any] = []
        barrier = threading.Barrier(2)

        def run(p: Any) -> None:
            barrier.wait()
            reports.append(Deliverer(p.write_engine).run_once(FIXED_NOW))

        threads = [threading.Thread(target=run, args=(p,)) for p in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(r.delivered for r in reports) == 20
        assert len(receiver.requests) == 20
        assert len({r["headers"]["X-Lianxi-Delivery"] for r in receiver.requests}) == 20
    finally:
        a.close()
        b.close()


def test_a_new_channel_never_replays_history(sqlite_api: Api, receiver: Receiver) -> None:
    api = sqlite_api
    _petition(api, "XF-old")
    api.settle()
    api.platform.clock = lambda: FIXED_NOW + timedelta(hours=1)
    _hook(api, receiver.url)
    api.platform.runner.reset("notifications")  # even a rebuild after configuring does not plan the old one
    api.settle()
    assert _deliveries(api) == []
    _petition(api, "XF-new")
    api.settle()
    assert Deliverer(api.platform.write_engine).run_once(FIXED_NOW + timedelta(hours=1)).delivered == 1
    assert "XF-new" in json.loads(receiver.requests[0]["body"])["title"]


def test_removed_channel_cancels_and_old_deliveries_expire(sqlite_api: Api, receiver: Receiver) -> None:
    api = sqlite_api
    _hook(api, receiver.url)
    _petition(api, "XF-1")
    api.settle()
    assert api.client.delete("/api/v1/inbox/channels/webhook", headers=api.as_("market-supervision")).status_code == 204
    assert Deliverer(api.platform.write_engine).run_once(FIXED_NOW).delivered == 0
    assert _deliveries(api)[0]["status"] == "cancelled"
    assert api.client.delete("/api/v1/inbox/channels/webhook",
                             headers=api.as_("market-supervision")).status_code == 404
    _hook(api, receiver.url)
    api.platform.clock = lambda: FIXED_NOW
    _petition(api, "XF-2")
    api.settle()
    # the deliverer comes back after a long outage: a week-old notification is not sent
    report = Deliverer(api.platform.write_engine).run_once(FIXED_NOW + timedelta(days=7))
    assert (report.delivered, report.expired) == (0, 1)
    assert receiver.requests == []


def test_channel_endpoints_validate_and_refuse_other_roles(sqlite_api: Api, receiver: Receiver) -> None:
    api = sqlite_api
    url = "/api/v1/inbox/channels/webhook"
    assert api.client.put(url, json={"url": receiver.url}).status_code == 401
    assert api.client.put(url, json={"url": receiver.url},
                          headers=api.as_("market-supervision", "auditor")).status_code == 403
    assert api.client.delete(url, headers=api.as_("education", "auditor")).status_code == 403
    r = api.client.put(url, json={"url": "http://hooks.example.org/x"}, headers=api.as_("market-supervision"))
    assert r.status_code == 422 and "https" in r.json()["detail"]
    r = api.client.put(url, json={"url": "https://user:pw@hooks.example.org/x"}, headers=api.as_("market-supervision"))
    assert r.status_code == 422
    assert api.client.put(url, json={"url": "https://hooks.example.org/x"},
                          headers=api.as_("market-supervision")).status_code == 200
    # another unit's webhook is its own: it does not touch ours
    assert api.client.put(url, json={"url": receiver.url}, headers=api.as_("fire-rescue")).status_code == 200
    mine = api.client.get("/api/v1/inbox/channels", headers=api.as_("market-supervision")).json()
    assert [c["target"] for c in mine] == ["https://hooks.example.org/x"]
    r = api.client.put("/api/v1/inbox/channels/email", json={"address": "ms@example.org"},
                       headers=api.as_("market-supervision"))
    assert r.status_code == 422 and "not configured" in r.json()["detail"]


# -- email -----------------------------------------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[_Inbox, int]]:
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = _Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def test_email_is_sent_once_through_smtp(sqlite_api: Api, smtp_server: tuple[_Inbox, int],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    handler, port = smtp_server
    api = sqlite_api
    monkeypatch.setenv("LIANXI_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LIANXI_SMTP_PORT", str(port))
    monkeypatch.setenv("LIANXI_SMTP_FROM", "lianxi@county.example")
    monkeypatch.setattr(api.platform, "settings", Settings(database_url=api.platform.settings.database_url))
    r = api.client.put("/api/v1/inbox/channels/email", json={"address": "ms-desk@county.example"},
                       headers=api.as_("market-supervision"))
    assert r.status_code == 200 and r.json()["secret"] is None
    _petition(api, "XF-9")
    api.settle()
    d = Deliverer(api.platform.write_engine)
    assert d.run_once(FIXED_NOW).delivered == 1
    assert d.run_once(FIXED_NOW + timedelta(minutes=1)).delivered == 0
    api.platform.runner.reset("notifications")
    api.settle()
    assert d.run_once(FIXED_NOW + timedelta(minutes=2)).delivered == 0
    for _ in range(50):  # the SMTP server hands the message over from its own thread
        if handler.messages:
            break
        time.sleep(0.02)
    assert len(handler.messages) == 1
    env = handler.messages[0]
    assert env.rcpt_tos == ["ms-desk@county.example"] and env.mail_from == "lianxi@county.example"
    msg = message_from_bytes(env.content)
    subject = str(make_header(decode_header(msg["Subject"])))
    assert "XF-9" in subject and subject.startswith("【联席】")
    part = msg.get_payload(decode=True) if not msg.is_multipart() else msg.get_payload(0).get_payload(decode=True)
    text = part.decode(msg.get_content_charset() or "utf-8")
    # sent in county time without a zone (the petition was registered at FIXED_NOW)
    assert "时间：" in text and "+00:00" not in text and not re.search(r"\d{4}-\d{2}-\d{2}T", text)


def test_smtp_down_is_a_recorded_failure(sqlite_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api = sqlite_api
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("LIANXI_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LIANXI_SMTP_PORT", str(port))
    monkeypatch.setattr(api.platform, "settings", Settings(database_url=api.platform.settings.database_url))
    api.client.put("/api/v1/inbox/channels/email", json={"address": "x@county.example"},
                   headers=api.as_("market-supervision"))
    _petition(api, "XF-1")
    api.settle()
    report = Deliverer(api.platform.write_engine).run_once(FIXED_NOW)
    assert report.failed == 1
    (row,) = _deliveries(api)
    assert row["status"] == "retry" and "ConnectionRefused" in row["last_error"]
