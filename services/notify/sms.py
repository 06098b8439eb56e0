"""Text messages (短信) through an SMS gateway.

The platform speaks to a gateway through ``SmsGateway`` only. ``LoggingSmsGateway`` (the
default, ``LIANXI_SMS_GATEWAY=log``) writes each message to the server log with the numbers
masked and reports it sent: for development and for a county without a provider contract.

Adding a provider (阿里云短信, 腾讯云短信, a province's 政务短信平台…) — the one place:
1. write ``services/notify/sms_<provider>.py`` with a class that has ``send(phones, text)``
   returning ``SendResult`` and posts through ``services.security.outbound.policy_from(settings)``
   (never its own HTTP client: the outbound policy keeps internal addresses and redirects out);
   a provider needing a registered template and sign puts ``text`` in the template's variable;
2. add its settings to services/settings.py as ``LIANXI_SMS_<PROVIDER>_…`` (and README.md);
3. register a factory in ``GATEWAYS`` below and set ``LIANXI_SMS_GATEWAY=<provider>``.

Recipients: the unit's enabled accounts that have a mobile number (``receivers``), read at each
send, so a person added, disabled or given a new number is reached (or not) from the next message
on; plus the extra numbers the channel lists (its target, optional: a duty phone nobody signs in
with). Numbers are personal data: kept in the accounts table and the channel's row, never in an
event, a Kafka message or a log line (``masked`` everywhere they are shown).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa

from events.errors import InvariantViolated
from services.notify.channels import SendResult
from services.settings import Settings
from services.store.accounts import accounts

log = logging.getLogger(__name__)

MOBILE = re.compile(r"^1[3-9]\d{9}$")  # a mainland mobile number
MAX_RECIPIENTS = 20


class SmsGateway(Protocol):
    def send(self, phones: Sequence[str], text: str) -> SendResult: ...


def masked(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 8 else "****"


class LoggingSmsGateway:
    """Sends nothing: logs the message with the numbers masked."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, phones: Sequence[str], text: str) -> SendResult:
        log.info("sms (logging gateway) to %s: %s", ",".join(masked(p) for p in phones), text)
        return SendResult(True)


GATEWAYS: dict[str, Callable[[Settings], SmsGateway]] = {"log": LoggingSmsGateway}


def gateway_for(settings: Settings) -> SmsGateway:
    try:
        return GATEWAYS[settings.sms_gateway](settings)
    except KeyError:
        raise InvariantViolated(f"unknown SMS gateway {settings.sms_gateway!r} (LIANXI_SMS_GATEWAY); "
                                f"one of {', '.join(GATEWAYS)}") from None


def parse_phones(text: str) -> list[str]:
    """The channel's extra numbers, separated by commas, spaces or line breaks (full-width commas
    too); none is fine (the unit's accounts receive)."""
    phones = list(dict.fromkeys(p for p in re.split(r"[\s,，、;；]+", text.strip()) if p))
    bad = [p for p in phones if not MOBILE.match(p)]
    if bad:
        raise InvariantViolated(f"not a mobile number: {', '.join(masked(p[:20]) for p in bad[:3])}")
    if len(phones) > MAX_RECIPIENTS:
        raise InvariantViolated(f"at most {MAX_RECIPIENTS} numbers per unit")
    return phones


def mobile_of(phone: str | None) -> str | None:
    """An account's phone as a gateway takes it (separators and +86 dropped), or None when it is
    no mainland mobile number (a landline cannot receive a text)."""
    digits = re.sub(r"[\s()-]", "", phone or "")
    digits = digits.removeprefix("+86") if digits.startswith("+86") else digits
    return digits if MOBILE.match(digits) else None


@dataclass(frozen=True)
class Receiver:
    phone: str
    account_id: str | None = None  # None: one of the channel's extra numbers
    display_name: str | None = None

    @property
    def shown(self) -> str:
        return masked(self.phone)


def receivers(conn: sa.Connection, agency: str, extra: str) -> list[Receiver]:
    """Who the unit's text messages go to: its enabled accounts with a mobile number, then the
    channel's extra numbers not already among them."""
    rows = conn.execute(sa.select(accounts.c.account_id, accounts.c.display_name, accounts.c.phone).where(
        accounts.c.unit == agency, accounts.c.enabled.is_(True), accounts.c.phone.is_not(None))
        .order_by(accounts.c.account_name)).all()
    out: dict[str, Receiver] = {}
    for r in rows:
        phone = mobile_of(r.phone)
        if phone and phone not in out:
            out[phone] = Receiver(phone, r.account_id, r.display_name)
    for p in extra.split(","):
        if p and p not in out:
            out[p] = Receiver(p)
    return list(out.values())
