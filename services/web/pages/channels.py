"""A unit's notification channels (通知渠道): where its notifications go beside the inbox — a
DingTalk or WeCom group robot, text messages, a signed webhook, email — set by the unit's
liaison or by the lead bureau, with 发送测试消息 to check a channel at once.

The settings go through the same functions as the API (services/notify/deliver.py); URLs,
secrets and numbers stay on the server and come back masked (a webhook's new signing key is
shown once, on the page that created it)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from events.errors import DomainError, InvariantViolated
from services.api.deps import PlatformDep
from services.documents.labels import CHANNEL
from services.notify.channels import test_outcome
from services.notify.deliver import CHANNELS, Deliverer, delete_channel, list_channels, set_channel, sms_receivers
from services.platform import Platform
from services.web.base import PostedDep, SessionDep, WebError, domain_message, redirect, render, unit_names
from services.web.forms import Form
from services.web.session import WebSession

router = APIRouter(include_in_schema=False)

# what each channel's form asks for: (field, label, max length)
FIELDS: dict[str, tuple[str, str, int]] = {
    "dingtalk": ("url", "机器人 Webhook 地址", 500), "wecom": ("url", "机器人 Webhook 地址", 500),
    "sms": ("phones", "其他接收号码", 400), "webhook": ("url", "Webhook 地址", 500),
    "email": ("address", "电子邮箱", 254),
}
# a refusal from the channel rules, in the form's words
REFUSED = {
    "dingtalk": ("请填写钉钉群机器人的 Webhook 地址（含 access_token）和加签密钥（以 SEC 开头）。"
                 "地址须为 https 公网地址。"),
    "wecom": "请填写企业微信群机器人的 Webhook 地址（含 key），须为 https 公网地址。",
    "sms": "其他接收号码须为 11 位手机号码，多个号码用逗号或换行分隔，最多 20 个；可以不填。",
    "webhook": "请填写 https 开头的公网地址，不能含用户名或密码，不能指向内网。",
    "email": "请填写有效的电子邮箱地址。",
}


def require_keeper(session: WebSession, code: str, names: dict[str, str]) -> None:
    """The unit's own liaison, or the lead bureau for any unit."""
    p = session.principal
    if code not in names:
        raise WebError(404, "未找到该单位")
    if p.role == "lead" or (p.role == "liaison" and p.agency == code):
        return
    raise WebError(403, "无权设置该单位的通知渠道",
                   f"「{names[code]}」的通知渠道只能由该单位联络员或牵头单位设置和测试。")


def _page(request: Request, session: WebSession, platform: Platform, code: str, *, status: int = 200,
          errors: dict[str, dict[str, str]] | None = None, values: dict[str, dict[str, Any]] | None = None,
          tested: tuple[str, bool, str] | None = None, new_secret: str | None = None) -> HTMLResponse:
    names = unit_names(platform)
    require_keeper(session, code, names)
    configured = list_channels(platform.read_engine, code)
    return render(request, "unit_channels.html.j2", session, status=status, units=names, code=code,
                  configured=configured, have={c["channel"] for c in configured}, fields=FIELDS,
                  kinds=[k for k in ("dingtalk", "wecom", "sms", "webhook", "email")
                         if k != "email" or platform.settings.email_enabled],
                  errors=errors or {}, values=values or {}, tested=tested, new_secret=new_secret,
                  sms_receivers=sms_receivers(platform.read_engine, code),
                  channel_names=CHANNEL)


def _channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise WebError(404, "未找到该通知渠道")
    return channel


@router.get("/units/{code}/channels", response_class=HTMLResponse)
def unit_channels(request: Request, code: str, session: SessionDep, platform: PlatformDep) -> HTMLResponse:
    return _page(request, session, platform, code)


@router.post("/units/{code}/channels/{channel}", response_class=HTMLResponse)
def set_unit_channel(request: Request, code: str, channel: str, post: PostedDep, platform: PlatformDep) -> Response:
    require_keeper(post.session, code, unit_names(platform))
    kind = _channel(channel)
    f = Form(post.form)
    name, label, max_len = FIELDS[kind]
    # text messages reach the unit's accounts: the extra numbers may be left empty
    target = f.text(name, label, required=kind != "sms", max_len=max_len)
    secret = f.raw("secret") if kind == "dingtalk" else None
    if f.ok:
        try:
            out = set_channel(platform.write_engine, code, kind, target, secret=secret, now=platform.clock(),
                              settings=platform.settings)
        except InvariantViolated:
            f.fail(name, REFUSED[kind])
        except DomainError as e:
            f.fail("_form", domain_message(e))
        else:
            if out["secret"]:  # a webhook's new signing key: this page is the only time it is shown
                return _page(request, post.session, platform, code, new_secret=out["secret"])
            return redirect(f"/units/{quote(code)}/channels?done=channel-set")
    return _page(request, post.session, platform, code, status=422, errors={kind: f.errors}, values={kind: f.values})


@router.post("/units/{code}/channels/{channel}/test", response_class=HTMLResponse)
def test_unit_channel(request: Request, code: str, channel: str, post: PostedDep, platform: PlatformDep) -> Response:
    require_keeper(post.session, code, unit_names(platform))
    kind = _channel(channel)
    try:
        result = Deliverer(platform.write_engine, platform.settings).send_test(code, kind, platform.clock())
    except DomainError:
        raise WebError(404, "该通知渠道尚未设置", "请先保存渠道设置，再发送测试消息。") from None
    return _page(request, post.session, platform, code,
                 tested=(kind, result.ok, test_outcome(kind, result, platform.settings)))


@router.post("/units/{code}/channels/{channel}/delete", response_class=HTMLResponse)
def delete_unit_channel(request: Request, code: str, channel: str, post: PostedDep, platform: PlatformDep) -> Response:
    require_keeper(post.session, code, unit_names(platform))
    try:
        delete_channel(platform.write_engine, code, _channel(channel))
    except DomainError:
        raise WebError(404, "该通知渠道尚未设置") from None
    return redirect(f"/units/{quote(code)}/channels?done=channel-removed")
