"""The 通知渠道 page over HTTP: a unit's liaison (or the lead bureau, for any unit) sets its
DingTalk robot, sends itself a test message and reads the Chinese result; secrets and tokens
never come back in full; other units and auditors can neither see, set nor test them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.conftest import Api
from tests.test_notify_channels import KEY, PHONES, SECRET, TOKEN, UNIT, UNIT_NAME, RobotReceiver
from tests.test_web_pages import Browser, h1

PAGE = f"/units/{UNIT}/channels"


@pytest.fixture(autouse=True)
def _loopback_receivers_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANXI_OUTBOUND_ALLOW_HOSTS", "127.0.0.1")


@pytest.fixture
def dingtalk() -> Iterator[RobotReceiver]:
    r = RobotReceiver("dingtalk")
    yield r
    r.close()


def _notice(html: str) -> str:
    m = re.search(r'<p class="notice[^"]*"[^>]*>(.*?)</p>', html, re.S)
    assert m is not None, html[:2000]
    return m.group(1)


def test_liaison_sets_a_dingtalk_robot_and_sends_itself_a_test_message(sqlite_api: Api,
                                                                      dingtalk: RobotReceiver) -> None:
    b = Browser(sqlite_api, UNIT)
    page = b.client.get(PAGE)
    assert page.status_code == 200 and h1(page) == f"{UNIT_NAME} · 通知渠道"
    assert f'href="{PAGE}"' in page.text  # in the liaison's menu
    assert "尚未设置任何渠道" in page.text

    r = b.post(f"{PAGE}/dingtalk", {"url": dingtalk.url, "secret": SECRET}, form_page=PAGE)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}?done=channel-set"
    page = b.client.get(r.headers["location"])
    assert "通知渠道已保存" in page.text and "钉钉群机器人" in page.text
    assert "access_token=a1b2…d0" in page.text and TOKEN not in page.text and SECRET not in page.text
    assert "已保存（不显示）" in page.text

    r = b.post(f"{PAGE}/dingtalk/test", {}, form_page=PAGE)
    assert r.status_code == 200
    assert _notice(r.text) == "测试消息已发送到钉钉群机器人，请在对方确认是否收到。"
    (md,) = dingtalk.accepted
    assert md["title"] == "【联席平台】测试消息" and UNIT_NAME in md["text"]

    # a new URL with the secret left empty keeps the stored secret: the next test still passes
    r = b.post(f"{PAGE}/dingtalk", {"url": dingtalk.url + "&x=1", "secret": ""}, form_page=PAGE)
    assert r.status_code == 303
    assert "测试消息已发送" in _notice(b.post(f"{PAGE}/dingtalk/test", {}, form_page=PAGE).text)
    assert len(dingtalk.accepted) == 2

    # the robot refuses a wrong secret: the page says so in Chinese
    b.post(f"{PAGE}/dingtalk", {"url": dingtalk.url, "secret": "SEC" + "5" * 64}, form_page=PAGE)
    failed = _notice(b.post(f"{PAGE}/dingtalk/test", {}, form_page=PAGE).text)
    assert failed == "测试消息未能发送到钉钉群机器人：机器人拒绝(errcode 310000)。请核对设置后重试。"

    r = b.post(f"{PAGE}/dingtalk/delete", {}, form_page=PAGE)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}?done=channel-removed"
    assert "尚未设置任何渠道" in b.client.get(PAGE).text
    assert b.post(f"{PAGE}/dingtalk/test", {}, form_page=PAGE).status_code == 404


def test_bad_settings_come_back_as_the_forms_chinese_message(sqlite_api: Api) -> None:
    b = Browser(sqlite_api, UNIT)
    r = b.post(f"{PAGE}/wecom", {"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"}, form_page=PAGE)
    assert r.status_code == 422 and "请填写企业微信群机器人的 Webhook 地址（含 key）" in r.text
    r = b.post(f"{PAGE}/dingtalk", {"url": f"https://10.0.0.5/robot/send?access_token={TOKEN}", "secret": SECRET},
               form_page=PAGE)
    assert r.status_code == 422 and "https 公网地址" in r.text
    r = b.post(f"{PAGE}/sms", {"phones": "1380013800"}, form_page=PAGE)
    assert r.status_code == 422 and "其他接收号码须为 11 位手机号码" in r.text
    r = b.post(f"{PAGE}/sms", {"phones": "\n".join(PHONES)}, form_page=PAGE)
    assert r.status_code == 303
    page = b.client.get(PAGE)
    assert "138****8001" in page.text and "138****8002" in page.text and PHONES[0] not in page.text
    r = b.post(f"{PAGE}/sms/test", {}, form_page=PAGE)
    assert "当前为日志网关" in _notice(r.text)
    assert b.post(f"{PAGE}/pager", {"url": "x"}, form_page=PAGE).status_code == 404


def test_the_lead_sets_another_units_channels_and_other_units_cannot(sqlite_api: Api,
                                                                     dingtalk: RobotReceiver) -> None:
    api = sqlite_api
    lead = Browser(api, "education", "lead")
    assert lead.client.get(PAGE).status_code == 200
    r = lead.post(f"{PAGE}/webhook", {"url": "https://hooks.example.org/market"}, form_page=PAGE)
    assert r.status_code == 200  # the new signing key is shown on this page, once
    secret = re.search(r'<code class="code" id="new-secret">(whsec_[^<]+)</code>', r.text)
    assert secret is not None
    assert secret.group(1) not in lead.client.get(PAGE).text
    assert lead.post(f"{PAGE}/dingtalk", {"url": dingtalk.url, "secret": SECRET}, form_page=PAGE).status_code == 303

    other = Browser(api, "fire-rescue")
    auditor = Browser(api, "education", "auditor")
    mine = other.csrf("/units/fire-rescue/channels")
    for b, csrf in ((other, mine), (auditor, auditor.csrf("/dashboard"))):
        assert b.client.get(PAGE).status_code == 403
        for path, data in ((f"{PAGE}/dingtalk/test", {}), (f"{PAGE}/wecom", {"url": f"https://x.example.org/s?key={KEY}"}),
                           (f"{PAGE}/dingtalk/delete", {})):
            assert b.client.post(path, data={"csrf_token": csrf, **data}).status_code == 403
    assert dingtalk.accepted == []
    listed = api.client.get("/api/v1/inbox/channels", headers=api.as_(UNIT)).json()
    assert sorted(c["channel"] for c in listed) == ["dingtalk", "webhook"]
    # the liaison sees what the lead set, and the test goes out
    liaison = Browser(api, UNIT)
    assert "测试消息已发送" in _notice(liaison.post(f"{PAGE}/dingtalk/test", {}, form_page=PAGE).text)
    assert len(dingtalk.accepted) == 1


def test_the_page_shows_who_receives_text_messages_by_name_with_masked_numbers(sqlite_api: Api) -> None:
    platform = sqlite_api.platform
    b = Browser(sqlite_api, UNIT)
    assert "暂无接收人" in b.client.get(PAGE).text
    platform.accounts.create("test", account_name="market.liaison", display_name="测试·市场监管联络员", unit=UNIT,
                             role="liaison", phone="138-0013-8009", known_units=platform.known_agencies(),
                             now=platform.clock())
    assert b.post(f"{PAGE}/sms", {"phones": ""}, form_page=PAGE).status_code == 303  # the accounts only
    card = re.search(r'<article class="card" id="channel-sms".*?</article>', b.client.get(PAGE).text, re.S)
    assert card is not None
    receivers = re.sub(r"<[^>]+>", "", card.group(0))
    assert "测试·市场监管联络员 138****8009" in receivers and "8009" not in receivers.replace("138****8009", "")
