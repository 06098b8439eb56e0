"""The messenger channels beside the signed webhook and email: DingTalk and WeCom group robots
(services/notify/robots.py) and text messages (services/notify/sms.py). The deliverer
(services/notify/deliver.py) plans, claims, retries and records them exactly as it does a
webhook; this module makes each one's message and sends it, and says how a channel's target
is shown back (the robots' tokens and the phone numbers are never shown in full).

Every robot request goes through the outbound policy (the deliverer's ``post``), as a webhook
does: https to public addresses only, no redirects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.documents.labels import CHANNEL
from services.notify import messages, robots
from services.settings import Settings

log = logging.getLogger(__name__)

ROBOTS = ("dingtalk", "wecom")


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    reply: bytes = b""  # the answer's body (bounded): a robot's errcode is in it


HttpPost = Callable[[str, bytes, dict[str, str], float], SendResult]
SmsSend = Callable[[Sequence[str], str], SendResult]

JSON = {"Content-Type": "application/json; charset=utf-8"}


def shown_target(channel: str, target: str) -> str:
    """A channel's target as the API and the pages show it."""
    if channel in ROBOTS:
        return robots.masked_url(target)
    if channel == "sms":  # the channel's extra numbers (the unit's accounts are shown by name)
        return "、".join(f"{p[:3]}****{p[-4:]}" for p in target.split(",") if p)
    return target


def send_robot(channel: str, url: str, secret: str | None, payload: dict[str, Any], names: dict[str, str], *,
               now: datetime, post: HttpPost, timeout: float, public_url: str = "",
               user_agent: str) -> SendResult:
    title, text = messages.markdown(payload, names, public_url=public_url)
    headers = {**JSON, "User-Agent": user_agent}
    if channel == "dingtalk":
        target = robots.dingtalk_signed_url(url, secret or "", int(now.timestamp() * 1000))
        result = post(target, robots.dingtalk_body(title, text), headers, timeout)
    else:
        result = post(url, robots.wecom_body(text), headers, timeout)
    if not result.ok:
        return result
    refused = robots.refusal(result.reply)
    return result if refused is None else SendResult(False, result.status_code, refused)


def test_outcome(channel: str, result: SendResult, settings: Settings) -> str:
    """发送测试消息's result, as the page and the API say it."""
    label = CHANNEL[channel]
    if not result.ok:
        return f"测试消息未能发送到{label}：{result.error or '发送失败'}。请核对设置后重试。"
    if channel == "sms" and settings.sms_gateway == "log":
        return "测试短信已交给短信网关。当前为日志网关（未接入短信服务商），短信只写入服务器日志，不会真正发出。"
    return f"测试消息已发送到{label}，请在对方确认是否收到。"


def send_sms(phones: Sequence[str], payload: dict[str, Any], names: dict[str, str], sms: SmsSend) -> SendResult:
    if not phones:
        return SendResult(False, None, "没有接收短信的号码（本单位账号未填手机号码）")
    try:
        return sms(phones, messages.sms(payload, names))
    except Exception as e:  # a provider's adapter that raises is a failed attempt, retried, not a stuck claim
        # its type only: an adapter's message may echo the numbers, which never go into the log
        log.error("sms gateway raised %s", type(e).__name__)
        return SendResult(False, None, "短信网关出错")
