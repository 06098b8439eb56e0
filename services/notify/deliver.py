"""Outbound notification delivery: signed webhooks, (optionally) email, DingTalk and WeCom group
robots and text messages (services/notify/channels.py), from the delivery records the
notifications projection plans (projections/notifications.py).

Exactly once per (notification, channel):
- the projection plans a delivery record with INSERT ... ON CONFLICT DO NOTHING in a table no
  rebuild drops, so replaying the log never plans a second one;
- a sender claims a record with a conditional UPDATE (status and attempt count must still be
  what it read), so two delivery workers never send the same record;
- a record is marked delivered in the same statement that ends the claim.
A crash after the receiver got the request but before the record was marked leaves a claim
that expires and is retried: receivers deduplicate on ``X-Lianxi-Delivery`` (the
notification id), which never changes between attempts.

Webhook requests go out through the outbound policy (services/security/outbound.py: https,
public addresses only, no redirects, errors as categories) and are signed:
``X-Lianxi-Signature: sha256=HMAC(secret, f"{timestamp}." + body)`` with ``X-Lianxi-Timestamp``
in Unix seconds; ``verify_signature`` is what a receiver runs.
Failures are retried with exponential back-off and every attempt is recorded
(``notify_delivery_attempts``) and visible through the inbox API. Every channel goes through
the same claim, retry and record steps; only ``_send`` tells them apart.

A channel's secrets (a webhook's signing key, a DingTalk robot's secret, the robots' tokens in
their URLs, extra SMS numbers) live in ``notify_channels`` only, never in an event, and are shown back
masked (``channels.shown_target``); only a new webhook key is shown, once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from uuid import uuid4

import orjson
import sqlalchemy as sa

from events.errors import InvariantViolated, NotFound, NotPermitted
from projections.base import insert_ignore, upsert_add, utc_text
from projections.catalogue_view import list_agencies
from projections.notifications import attempts, channels, deliveries, notifications, reads, recipients_of
from services.documents.labels import CHANNEL
from services.documents.timefmt import local_time
from services.notify import robots
from services.notify.channels import ROBOTS, HttpPost, SendResult, SmsSend, send_robot, send_sms, shown_target
from services.notify.messages import for_people, test_payload
from services.notify.sms import Receiver, gateway_for, parse_phones, receivers
from services.security.outbound import policy_from
from services.settings import Settings
from services.store.request_rows import begin_carrying

log = logging.getLogger(__name__)

CHANNELS = ("webhook", "email", *ROBOTS, "sms")
USER_AGENT = "lianxi-notify/1"


# -- signing ---------------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *, now: float,
                     tolerance_s: float = 300.0) -> bool:
    """What a receiver checks: the signature matches, and the timestamp is recent (replays of
    an old request are refused)."""
    try:
        age = abs(now - float(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


# -- senders ---------------------------------------------------------------------------------------


MailSend = Callable[[Settings, str, str, str], SendResult]


def smtp_send(settings: Settings, to: str, subject: str, text: str) -> SendResult:
    if not settings.smtp_host:
        return SendResult(False, None, "email is not configured (LIANXI_SMTP_HOST)")
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as e:
        return SendResult(False, None, f"{type(e).__name__}: {e}"[:500])
    return SendResult(True)


# -- channels --------------------------------------------------------------------------------------


def set_channel(engine: sa.Engine, agency: str, channel: str, target: str, *, now: datetime,
                settings: Settings | None = None, secret: str | None = None) -> dict[str, Any]:
    """Configures a unit's webhook (returns a new signing secret, shown once), email address,
    DingTalk robot (its URL and the ``secret`` it signs with), WeCom robot (its URL) or text
    messages (to the unit's accounts with a phone, plus the extra numbers ``target`` lists).
    Reconfiguring keeps the channel's start time, so nothing already planned is dropped and
    nothing older is replayed. Only a webhook's new key is ever returned."""
    cfg = settings or Settings()
    if channel in ROBOTS:
        policy_from(cfg).check_url(target)
        target = robots.check_url(channel, target)
        if channel == "dingtalk" and not secret:  # a new URL alone keeps the robot's stored secret
            secret = stored_secret(engine, agency, channel)
        secret = robots.check_secret(secret) if channel == "dingtalk" else None
    elif channel == "sms":
        gateway_for(cfg)  # a misconfigured gateway is refused now, not at the first message
        target = ",".join(parse_phones(target))
        secret = None
    elif channel == "webhook":
        policy_from(cfg).check_url(target)
        target = target.strip()
        secret = "whsec_" + secrets.token_urlsafe(32)
    elif channel == "email":
        if not cfg.email_enabled:
            raise InvariantViolated("email delivery is not configured on this server (LIANXI_SMTP_HOST)")
        if "@" not in target or any(c.isspace() for c in target) or len(target) > 254:
            raise InvariantViolated(f"{target!r} is not an email address")
        secret = None
    else:
        raise NotFound(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    stamp = utc_text(now)
    with begin_carrying(engine) as conn:
        # one statement, so twenty concurrent settings cannot collide on the key; the last wins
        # and the channel keeps its first start time
        upsert_add(conn, channels, [{"agency": agency, "channel": channel, "target": target, "secret": secret,
                                     "created_at": stamp, "updated_at": stamp}],
                   keys=("agency", "channel"), replace=("target", "secret", "updated_at"))
    return {"channel": channel, "target": shown_target(channel, target),
            "secret": secret if channel == "webhook" else None}


def stored_secret(engine: sa.Engine, agency: str, channel: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(channels.c.secret).where(
            channels.c.agency == agency, channels.c.channel == channel)).scalar()


def delete_channel(engine: sa.Engine, agency: str, channel: str) -> None:
    """Stops a channel; its undelivered records are cancelled (never sent later)."""
    with begin_carrying(engine) as conn:
        done = conn.execute(channels.delete().where(channels.c.agency == agency, channels.c.channel == channel))
        if not done.rowcount:
            raise NotFound(f"no {channel} channel is configured for {agency!r}")
        conn.execute(deliveries.update().where(
            deliveries.c.agency == agency, deliveries.c.channel == channel,
            deliveries.c.status.in_(("pending", "retry"))).values(status="cancelled",
                                                                   last_error="channel removed"))


def sms_receivers(engine: sa.Engine, agency: str) -> list[Receiver]:
    """Who the unit's text messages go to now (its accounts with a mobile number and the sms
    channel's extra numbers), for the page to show by name with masked numbers."""
    extra = stored_target(engine, agency, "sms") or ""
    with engine.connect() as conn:
        return receivers(conn, agency, extra)


def stored_target(engine: sa.Engine, agency: str, channel: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(channels.c.target).where(
            channels.c.agency == agency, channels.c.channel == channel)).scalar()


def list_channels(engine: sa.Engine, agency: str) -> list[dict[str, Any]]:
    """Channels with their delivery counts by status and the latest failed attempts."""
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(
            sa.select(channels.c.channel, channels.c.target, channels.c.created_at, channels.c.updated_at)
            .where(channels.c.agency == agency).order_by(channels.c.channel)).mappings()]
        for r in rows:
            r["target"] = shown_target(r["channel"], r["target"])
            counts = conn.execute(
                sa.select(deliveries.c.status, sa.func.count()).where(
                    deliveries.c.agency == agency, deliveries.c.channel == r["channel"])
                .group_by(deliveries.c.status)).all()
            r["deliveries"] = {s: int(n) for s, n in counts}
            r["recent_failures"] = [dict(f) for f in conn.execute(
                sa.select(attempts.c.notification_id, attempts.c.attempt, attempts.c.attempted_at,
                          attempts.c.status_code, attempts.c.error)
                .where(attempts.c.agency == agency, attempts.c.channel == r["channel"], attempts.c.ok.is_(False))
                .order_by(attempts.c.id.desc()).limit(10)).mappings()]
    return rows


def list_deliveries(engine: sa.Engine, agency: str, *, status: str | None = None, limit: int = 100,
                    before: str | None = None) -> list[dict[str, Any]]:
    q = (sa.select(deliveries.c.notification_id, deliveries.c.channel, deliveries.c.status,
                   deliveries.c.attempts, deliveries.c.next_attempt_at, deliveries.c.last_error,
                   deliveries.c.delivered_at, deliveries.c.created_at)
         .where(deliveries.c.agency == agency)
         .order_by(deliveries.c.created_at.desc(), deliveries.c.notification_id).limit(limit))
    if status:
        q = q.where(deliveries.c.status == status)
    if before:
        q = q.where(deliveries.c.created_at < before)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


# -- read marks --------------------------------------------------------------------------------------


def mark_read(engine: sa.Engine, agency: str, ids: Sequence[str] | None, *, now: datetime) -> int:
    """Marks the unit's notifications read (``ids`` None: all of them). Naming another unit's
    notification is refused; naming an unknown one is a 404."""
    stamp = utc_text(now)
    with begin_carrying(engine) as conn:
        if ids is None:
            joined = notifications.outerjoin(reads, reads.c.notification_id == notifications.c.notification_id)
            q = (sa.select(notifications.c.notification_id).select_from(joined)
                 .where(notifications.c.recipient == agency, reads.c.read_at.is_(None)))
            todo = [r[0] for r in conn.execute(q)]
        else:
            wanted = list(dict.fromkeys(ids))
            owners = recipients_of(conn, wanted)
            unknown = [i for i in wanted if i not in owners]
            if unknown:
                raise NotFound(f"unknown notification(s): {', '.join(unknown[:5])}")
            foreign = [i for i in wanted if owners[i] != agency]
            if foreign:
                raise NotPermitted(f"notification(s) {', '.join(foreign[:5])} belong to another unit")
            already = {r[0] for r in conn.execute(sa.select(reads.c.notification_id).where(
                reads.c.notification_id.in_(wanted)))}
            todo = [i for i in wanted if i not in already]
        rows = [{"notification_id": i, "agency": agency, "read_at": stamp} for i in todo]
        for start in range(0, len(rows), 500):  # a concurrent mark of the same ones is not an error
            insert_ignore(conn, reads, rows[start:start + 500])
    return len(rows)


# -- the deliverer -----------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0  # attempts that failed this run (will be retried unless given up)
    gave_up: int = 0
    expired: int = 0
    cancelled: int = 0
    sent_ids: list[tuple[str, str]] = field(default_factory=list)


class Deliverer:
    """Sends due delivery records. ``run_once`` is what the scheduler calls; it is safe to run
    from several processes at once."""

    def __init__(self, engine: sa.Engine, settings: Settings | None = None, *,
                 post: HttpPost | None = None, mail: MailSend = smtp_send, sms: SmsSend | None = None) -> None:
        self.engine = engine
        self.settings = settings or Settings()
        self.post = post or self._post_by_policy
        self.mail = mail
        self.sms = sms
        self._names: dict[str, str] | None = None

    def backoff(self, attempt: int) -> timedelta:
        """Delay before attempt ``attempt + 1``: base * 2^(attempt-1), capped."""
        s = self.settings
        return timedelta(seconds=min(s.delivery_backoff_max_s, s.delivery_backoff_s * 2 ** max(0, attempt - 1)))

    def run_once(self, now: datetime) -> DeliveryReport:
        report = DeliveryReport()
        self._names = None  # a unit renamed since the last run is named anew
        stamp = utc_text(now)
        oldest = utc_text(now - timedelta(hours=self.settings.delivery_max_age_h))
        with self.engine.connect() as conn:
            due = conn.execute(
                sa.select(deliveries.c.notification_id, deliveries.c.channel, deliveries.c.agency,
                          deliveries.c.status, deliveries.c.attempts, deliveries.c.created_at,
                          deliveries.c.payload)
                .where(sa.or_(
                    sa.and_(deliveries.c.status.in_(("pending", "retry")), deliveries.c.next_attempt_at <= stamp),
                    sa.and_(deliveries.c.status == "sending", deliveries.c.lease_until < stamp)))
                .order_by(deliveries.c.next_attempt_at).limit(self.settings.delivery_batch)).mappings().all()
        for d in due:
            self._one(dict(d), now, stamp, oldest, report)
        return report

    def _claim(self, d: dict[str, Any], values: dict[str, Any]) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(deliveries.update().where(
                deliveries.c.notification_id == d["notification_id"], deliveries.c.channel == d["channel"],
                deliveries.c.status == d["status"], deliveries.c.attempts == d["attempts"]).values(**values))
            return bool(done.rowcount == 1)

    def _one(self, d: dict[str, Any], now: datetime, stamp: str, oldest: str, report: DeliveryReport) -> None:
        if d["created_at"] < oldest:
            if self._claim(d, {"status": "expired", "last_error": "too old to send"}):
                report.expired += 1
            return
        with self.engine.connect() as conn:
            ch = conn.execute(sa.select(channels.c.target, channels.c.secret).where(
                channels.c.agency == d["agency"], channels.c.channel == d["channel"])).first()
        if ch is None:
            if self._claim(d, {"status": "cancelled", "last_error": "channel removed"}):
                report.cancelled += 1
            return
        attempt = d["attempts"] + 1
        lease = utc_text(now + timedelta(seconds=2 * max(self.settings.webhook_timeout_s,
                                                         self.settings.smtp_timeout_s) + 30))
        if not self._claim(d, {"status": "sending", "attempts": attempt, "lease_until": lease}):
            return  # another worker has it
        result = self._send(d, ch.target, ch.secret, now)
        claimed = {**d, "status": "sending", "attempts": attempt}
        with self.engine.begin() as conn:
            conn.execute(attempts.insert().values(
                notification_id=d["notification_id"], channel=d["channel"], agency=d["agency"], attempt=attempt,
                attempted_at=stamp, ok=result.ok, status_code=result.status_code, error=result.error))
        if result.ok:
            self._claim(claimed, {"status": "delivered", "delivered_at": stamp, "lease_until": None,
                                  "last_error": None})
            report.delivered += 1
            report.sent_ids.append((d["notification_id"], d["channel"]))
            return
        report.failed += 1
        if attempt >= self.settings.delivery_max_attempts:
            self._claim(claimed, {"status": "failed", "lease_until": None, "last_error": result.error})
            report.gave_up += 1
            log.warning("delivery %s/%s failed for good after %d attempts: %s", d["notification_id"],
                        d["channel"], attempt, result.error)
        else:
            self._claim(claimed, {"status": "retry", "lease_until": None, "last_error": result.error,
                                  "next_attempt_at": utc_text(now + self.backoff(attempt))})

    def _post_by_policy(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
        # the URL was checked when it was set; it is checked again (and resolved) for each send,
        # since the policy or the name's addresses may have changed since
        r = policy_from(self.settings).post(url, body, headers, timeout)
        return SendResult(r.ok, r.status_code, r.error, r.body)

    def names(self) -> dict[str, str]:
        """Units by name, for the messages people read."""
        if self._names is None:
            with self.engine.connect() as conn:
                self._names = {a["code"]: a["name"] for a in list_agencies(conn)}
        return self._names

    def send_test(self, agency: str, channel: str, now: datetime) -> SendResult:
        """发送测试消息: one message through the unit's configured channel, now, recorded nowhere
        but the result the caller shows."""
        with self.engine.connect() as conn:
            ch = conn.execute(sa.select(channels.c.target, channels.c.secret).where(
                channels.c.agency == agency, channels.c.channel == channel)).first()
        if ch is None:
            raise NotFound(f"no {channel} channel is configured for {agency!r}")
        unit = self.names().get(agency, agency)
        payload = test_payload(agency, CHANNEL[channel], unit, now_text=utc_text(now), test_id=f"test-{uuid4()}")
        return self._send({"channel": channel, "agency": agency, "notification_id": payload["id"],
                           "payload": orjson.dumps(payload)},
                          ch.target, ch.secret, now)

    def _send(self, d: dict[str, Any], target: str, secret: str | None, now: datetime) -> SendResult:
        payload = orjson.loads(d["payload"])
        if d["channel"] in ROBOTS:
            return send_robot(d["channel"], target, secret, payload, self.names(), now=now, post=self.post,
                              timeout=self.settings.webhook_timeout_s, public_url=self.settings.public_url,
                              user_agent=USER_AGENT)
        if d["channel"] == "sms":
            try:
                sms = self.sms or gateway_for(self.settings).send
            except InvariantViolated:  # the operator changed LIANXI_SMS_GATEWAY to a name no adapter has
                return SendResult(False, None, "短信网关未配置")
            with self.engine.connect() as conn:
                phones = [r.phone for r in receivers(conn, d["agency"], target)]
            return send_sms(phones, payload, self.names(), sms)
        if d["channel"] == "webhook":
            body = orjson.dumps(payload)
            ts = str(int(now.timestamp()))
            headers = {
                "Content-Type": "application/json", "User-Agent": USER_AGENT,
                "X-Lianxi-Delivery": d["notification_id"], "X-Lianxi-Event": payload["kind"],
                "X-Lianxi-Timestamp": ts, "X-Lianxi-Signature": sign(secret or "", ts, body),
            }
            return self.post(target, body, headers, self.settings.webhook_timeout_s)
        names = self.names()
        title, message = for_people(payload["title"], names), for_people(payload["body"], names)
        text = f"{title}\n\n{message}\n\n通知编号：{payload['id']}\n时间：{local_time(payload['created_at'])}\n"
        return self.mail(self.settings, target, f"【联席】{title}", text)
