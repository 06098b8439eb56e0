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

Recipients: for now a unit lists the mobile numbers its messages go to (the ``sms`` channel's
target). When people have accounts with their phone numbers, the recipients are to come from
the unit's accounts instead; numbers are personal data, kept in this table, never in an event.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Protocol

from events.errors import InvariantViolated
from services.notify.channels import SendResult
from services.settings import Settings

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
    """Numbers separated by commas, spaces or line breaks (full-width commas too)."""
    phones = list(dict.fromkeys(p for p in re.split(r"[\s,，、;；]+", text.strip()) if p))
    bad = [p for p in phones if not MOBILE.match(p)]
    if bad:
        raise InvariantViolated(f"not a mobile number: {', '.join(p[:20] for p in bad[:3])}")
    if not phones:
        raise InvariantViolated("give at least one mobile number")
    if len(phones) > MAX_RECIPIENTS:
        raise InvariantViolated(f"at most {MAX_RECIPIENTS} numbers per unit")
    return phones
