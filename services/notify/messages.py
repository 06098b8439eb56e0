"""A notification as officials read it in a messenger or a text message: Chinese markdown,
units by name, times in county local time, full-width punctuation, and the user-written parts
unable to make links, images or markup in the robot's client."""

from __future__ import annotations

import re
from typing import Any

from services.documents.timefmt import local_time

_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_CJK = "\u3400-\u9fff\uff00-\uffef\u3000-\u303f"
_HALF_BEFORE_CJK = re.compile(rf"[:;,](?=[{_CJK}])|(?<=[{_CJK}])[:;,]")
_FULL = str.maketrans({":": "：", ";": "；", ",": "，", "(": "（", ")": "）"})
# what markdown (and WeCom's <font>) reads as a link, an image, a tag or a heading
_MARKUP = str.maketrans({"[": "［", "]": "］", "<": "＜", ">": "＞", "`": "'", "*": "＊", "_": "＿", "#": "＃",
                         "|": "｜", "!": "！"})
SMS_MAX = 70  # one segment of a Chinese text message


def for_people(text: str, names: dict[str, str]) -> str:
    """Codes of units become their names, ISO instants county time, and the ASCII punctuation
    between Chinese words full-width: the projection names units and punctuates in full width,
    but keeps instants in ISO (it has no county zone), and older texts may carry codes."""
    out = _INSTANT.sub(lambda m: local_time(m.group(0)), text)
    if names:
        codes = "|".join(re.escape(c) for c in sorted(names, key=len, reverse=True))
        out = re.sub(rf"(?<![A-Za-z0-9_-])(?:{codes})(?![A-Za-z0-9_-])", lambda m: names[m.group(0)], out)
    if re.search(f"[{_CJK}]", out):
        out = _HALF_BEFORE_CJK.sub(lambda m: m.group(0).translate(_FULL), out)
        out = out.replace("(", "（").replace(")", "）")
    return out


def plain(text: str) -> str:
    """User-written text made inert for markdown: one paragraph, no markup characters."""
    return " ".join(text.translate(_MARKUP).split())


def markdown(payload: dict[str, Any], names: dict[str, str], *, public_url: str = "") -> tuple[str, str]:
    """(title, markdown text) of a notification for a group robot."""
    title = plain(for_people(payload["title"], names))
    body = plain(for_people(payload["body"], names))
    unit = names.get(payload["agency"], payload["agency"])
    when = local_time(payload["created_at"])
    lines = [f"#### 【联席平台】{title}", "", body, "", f"> 单位：{unit}", ">", f"> 时间：{when}"]
    if public_url:
        lines += ["", f"[登录联席平台办理]({public_url.rstrip('/')}/units/{payload['agency']}/work)"]
    return f"【联席平台】{title}", "\n".join(lines)


def sms(payload: dict[str, Any], names: dict[str, str]) -> str:
    """A short Chinese text: the title and where to act, cut to one segment."""
    unit = names.get(payload["agency"], payload["agency"])
    tail = "请登录联席平台办理。"
    head = f"{unit}：{plain(for_people(payload['title'], names))}。"
    room = SMS_MAX - len(tail)
    if len(head) > room:
        head = head[:room - 2] + "…。"
    return head + tail


def test_payload(agency: str, channel_label: str, unit: str, *, now_text: str, test_id: str) -> dict[str, Any]:
    """What 发送测试消息 sends: shaped like a notification, so every channel formats it alike."""
    return {"id": test_id, "agency": agency, "kind": "channel-test", "title": "测试消息",
            "body": f"这是{unit}在联席平台设置的{channel_label}通知渠道发出的测试消息，收到即表示设置正确。",
            "subject": {"type": "channel", "id": agency}, "event_id": None, "event_type": None,
            "created_at": now_text}
