"""The notification inbox of the caller's unit, its read marks, and its outbound channels
(signed webhook, email, DingTalk and WeCom group robots, SMS) with their delivery records."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from contracts.api_logistics import (
    ChannelOut,
    ChannelSetOut,
    ChannelTestOut,
    DeliveryOut,
    DingTalkIn,
    EmailIn,
    InboxOut,
    MarkedOut,
    MarkReadIn,
    NotificationOut,
    SmsIn,
    WebhookIn,
    WeComIn,
)
from projections.notifications import inbox, unread_count
from services.api.deps import (
    CursorQ,
    LimitQ,
    PlatformDep,
    PrincipalDep,
    decode_position,
    encode_cursor,
    require_writer,
)
from services.api.problems import ProblemError
from services.notify.channels import test_outcome
from services.notify.deliver import (
    CHANNELS,
    Deliverer,
    delete_channel,
    list_channels,
    list_deliveries,
    mark_read,
    set_channel,
)

router = APIRouter(prefix="/api/v1/inbox", tags=["inbox"])

_WRITE: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or unknown token"},
    403: {"description": "read-only credential, or another unit's notification"},
    404: {"description": "unknown notification or channel"},
    422: {"description": "invalid body"},
}


def _item(r: dict[str, Any]) -> NotificationOut:
    return NotificationOut(
        id=r["notification_id"], kind=r["kind"], title=r["title"], body=r["body"],
        subject={"type": r["subject_type"], "id": r["subject_id"]}, event_id=r["event_id"],
        event_type=r["event_type"], created_at=r["created_at"], read=r["read_at"] is not None, read_at=r["read_at"],
    )


@router.get("", response_model=InboxOut)
def inbox_index(
    platform: PlatformDep, principal: PrincipalDep, limit: LimitQ = 50, cursor: CursorQ = None,
    unread: Annotated[bool, Query(description="only notifications not yet marked read")] = False,
) -> InboxOut:
    """What needs the caller's unit's action, newest first: assigned rectifications and tasks,
    overdue and escalation steps, warnings to acknowledge, missing compliance records,
    petitions to handle, scheduled meetings."""
    before = decode_position(cursor)
    with platform.read_engine.connect() as conn:
        rows = inbox(conn, principal.agency, unread_only=unread, before=before, limit=limit + 1)
        count = unread_count(conn, principal.agency)
    more = len(rows) > limit
    rows = rows[:limit]
    return InboxOut(items=[_item(r) for r in rows], unread=count,
                    next_cursor=encode_cursor(str(rows[-1]["position"])) if more else None)


@router.post("/read", response_model=MarkedOut, responses=_WRITE)
def inbox_mark_read(body: MarkReadIn, platform: PlatformDep, principal: PrincipalDep) -> MarkedOut:
    """Marks notifications read: the listed ``ids``, or with ``all: true`` every unread one."""
    require_writer(principal)
    if (body.ids is None) == (not body.all):
        raise ProblemError(422, "give either ids or all=true")
    n = mark_read(platform.write_engine, principal.agency, None if body.all else body.ids, now=platform.clock())
    return MarkedOut(marked=n)


@router.post("/{notification_id}/read", response_model=MarkedOut, responses=_WRITE)
def inbox_mark_one(notification_id: str, platform: PlatformDep, principal: PrincipalDep) -> MarkedOut:
    require_writer(principal)
    return MarkedOut(marked=mark_read(platform.write_engine, principal.agency, [notification_id],
                                      now=platform.clock()))


@router.get("/channels", response_model=list[ChannelOut])
def channels_index(platform: PlatformDep, principal: PrincipalDep) -> list[ChannelOut]:
    """The unit's channels with delivery counts by status and the latest failed attempts."""
    return [ChannelOut(**c) for c in list_channels(platform.read_engine, principal.agency)]


@router.put("/channels/webhook", response_model=ChannelSetOut, responses=_WRITE)
def channels_webhook(body: WebhookIn, platform: PlatformDep, principal: PrincipalDep) -> ChannelSetOut:
    """Sets the unit's webhook. The answer carries a new signing secret, shown only now:
    requests carry ``X-Lianxi-Signature: sha256=HMAC-SHA256(secret, timestamp + "." + body)``."""
    require_writer(principal)
    return ChannelSetOut(**set_channel(platform.write_engine, principal.agency, "webhook", body.url,
                                       now=platform.clock(), settings=platform.settings))


@router.put("/channels/email", response_model=ChannelSetOut, responses=_WRITE)
def channels_email(body: EmailIn, platform: PlatformDep, principal: PrincipalDep) -> ChannelSetOut:
    """Sets the unit's email address (only when the server has SMTP configured)."""
    require_writer(principal)
    return ChannelSetOut(**set_channel(platform.write_engine, principal.agency, "email", body.address,
                                       now=platform.clock(), settings=platform.settings))


@router.put("/channels/dingtalk", response_model=ChannelSetOut, responses=_WRITE)
def channels_dingtalk(body: DingTalkIn, platform: PlatformDep, principal: PrincipalDep) -> ChannelSetOut:
    """Sets the unit's DingTalk (钉钉/政务钉钉) group robot: its webhook URL and its signing
    secret (加签). Messages are Chinese markdown, signed per message as DingTalk specifies; the
    secret is stored server-side and never returned, the URL's token is returned masked."""
    require_writer(principal)
    return ChannelSetOut(**set_channel(platform.write_engine, principal.agency, "dingtalk", body.url,
                                       secret=body.secret, now=platform.clock(), settings=platform.settings))


@router.put("/channels/wecom", response_model=ChannelSetOut, responses=_WRITE)
def channels_wecom(body: WeComIn, platform: PlatformDep, principal: PrincipalDep) -> ChannelSetOut:
    """Sets the unit's WeCom (企业微信) group robot by its webhook URL (the key in it is the
    credential: returned masked)."""
    require_writer(principal)
    return ChannelSetOut(**set_channel(platform.write_engine, principal.agency, "wecom", body.url,
                                       now=platform.clock(), settings=platform.settings))


@router.put("/channels/sms", response_model=ChannelSetOut, responses=_WRITE)
def channels_sms(body: SmsIn, platform: PlatformDep, principal: PrincipalDep) -> ChannelSetOut:
    """Turns on text messages (through the server's SMS gateway, ``LIANXI_SMS_GATEWAY``) to the
    unit's enabled accounts that have a mobile number, plus any extra numbers given here
    (returned masked)."""
    require_writer(principal)
    return ChannelSetOut(**set_channel(platform.write_engine, principal.agency, "sms", ",".join(body.phones),
                                       now=platform.clock(), settings=platform.settings))


@router.post("/channels/{channel}/test", response_model=ChannelTestOut, responses=_WRITE)
def channels_test(channel: str, platform: PlatformDep, principal: PrincipalDep) -> ChannelTestOut:
    """Sends the unit a test message through one of its channels now and says whether it got
    through (a robot's refusal, e.g. a wrong signing secret, is a failure)."""
    require_writer(principal)
    if channel not in CHANNELS:
        raise ProblemError(404, f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    result = Deliverer(platform.write_engine, platform.settings).send_test(principal.agency, channel,
                                                                          platform.clock())
    return ChannelTestOut(ok=result.ok, status_code=result.status_code, error=result.error,
                          message=test_outcome(channel, result, platform.settings))


@router.delete("/channels/{channel}", status_code=204, responses=_WRITE)
def channels_delete(channel: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    """Removes a channel; deliveries not yet made through it are cancelled."""
    require_writer(principal)
    delete_channel(platform.write_engine, principal.agency, channel)
    return Response(status_code=204)


@router.get("/deliveries", response_model=list[DeliveryOut])
def deliveries_index(
    platform: PlatformDep, principal: PrincipalDep, limit: LimitQ = 100,
    status: Annotated[str | None, Query(pattern="^(pending|sending|retry|delivered|failed|expired|cancelled)$")] = None,
) -> list[DeliveryOut]:
    """The unit's delivery records, newest first (failures and their last error included)."""
    return [DeliveryOut(**d) for d in list_deliveries(platform.read_engine, principal.agency, status=status,
                                                       limit=limit)]
