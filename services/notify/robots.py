"""Group robots in the messengers county officials use: DingTalk (钉钉 / 政务钉钉) and WeCom
(企业微信). Both take a markdown message POSTed as JSON to the robot's webhook URL and answer
HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``; a refusal is also HTTP 200, with another
errcode, so the answer's body decides whether a message got through.

DingTalk robots with 加签 (the only kind we accept) are signed as DingTalk specifies: the
timestamp in milliseconds, ``sign = urlencode(base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")))``,
both appended to the webhook URL as ``&timestamp=…&sign=…``. DingTalk refuses a sign that does
not match and a timestamp more than an hour from its clock.

WeCom robots are authenticated by the ``key`` in their URL alone, so the URL is the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, quote_plus, urlsplit

import orjson

from events.errors import InvariantViolated

DINGTALK_SECRET_PREFIX = "SEC"  # how DingTalk prints a robot's signing secret
DINGTALK_TEXT_MAX = 5000  # characters; DingTalk documents 20000 bytes for a markdown text
WECOM_CONTENT_MAX_BYTES = 4096  # WeCom refuses longer markdown content


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The base64 signature (not yet url-encoded) DingTalk expects for ``timestamp_ms``."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    return base64.b64encode(hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()).decode()


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    return f"{url}&timestamp={timestamp_ms}&sign={quote_plus(dingtalk_sign(secret, timestamp_ms))}"


def dingtalk_body(title: str, text: str) -> bytes:
    return orjson.dumps({"msgtype": "markdown", "markdown": {"title": title[:100], "text": text[:DINGTALK_TEXT_MAX]}})


def wecom_body(content: str) -> bytes:
    data = content.encode()
    if len(data) > WECOM_CONTENT_MAX_BYTES:  # cut on a character boundary, marked as cut
        data = data[:WECOM_CONTENT_MAX_BYTES - 6].decode(errors="ignore").encode() + "……".encode()
    return orjson.dumps({"msgtype": "markdown", "markdown": {"content": data.decode()}})


def refusal(reply: bytes) -> str | None:
    """None when the robot's answer says the message was accepted; else the error category.
    The robot's own text is not passed on (it can carry links and request ids)."""
    try:
        answer = orjson.loads(reply)
        code = int(answer["errcode"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return "机器人应答无法识别"
    return None if code == 0 else f"机器人拒绝(errcode {code})"


def check_url(kind: str, url: str) -> str:
    """The robot's webhook URL must carry the token its platform issued (the outbound policy
    checks the address itself)."""
    text = url.strip()
    query = parse_qs(urlsplit(text).query)
    param = "access_token" if kind == "dingtalk" else "key"
    if not query.get(param, [""])[0]:
        example = ("https://oapi.dingtalk.com/robot/send?access_token=…" if kind == "dingtalk"
                   else "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…")
        raise InvariantViolated(f"the robot's webhook URL carries its {param}: {example}")
    if kind == "dingtalk" and ("timestamp" in query or "sign" in query):
        raise InvariantViolated("give the robot's webhook URL without timestamp and sign; they are added per message")
    return text


def check_secret(secret: str | None) -> str:
    value = (secret or "").strip()
    if not value.startswith(DINGTALK_SECRET_PREFIX) or len(value) < 16 or len(value) > 100 \
            or not value.isascii() or any(c.isspace() for c in value):
        raise InvariantViolated("a DingTalk robot needs its signing secret (加签, it starts with SEC)")
    return value


def masked_url(url: str) -> str:
    """The URL as a page or the API shows it back: the token is a credential, so only its
    first and last characters remain."""
    parts = urlsplit(url)
    shown = []
    for pair in parts.query.split("&") if parts.query else []:
        name, _, value = pair.partition("=")
        if name in ("access_token", "key") and value:
            value = f"{value[:4]}…{value[-2:]}" if len(value) > 8 else "…"
        shown.append(f"{name}={value}" if _ else name)
    return parts._replace(query="&".join(shown)).geturl()
