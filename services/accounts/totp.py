"""TOTP second factor (RFC 6238 through pyotp) and its enrolment QR as inline SVG (segno): the
secret never leaves the server except on the person's own enrolment page."""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

import pyotp
import segno
from markupsafe import Markup

WINDOW = 1  # one 30 s step either side: a phone clock a little off still works


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account_name: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=issuer)


def qr_svg(uri: str) -> Markup:
    """The enrolment QR as an <svg> element to put in the page (no image request, no external service)."""
    svg = segno.make(uri, error="m").svg_inline(scale=4, title="动态口令绑定二维码", dark="#000", light="#fff")
    return Markup(svg)  # segno's own markup of our URI: no text a person typed is in it


def matching_step(secret: str, code: str, now: datetime, after_step: int | None) -> int | None:
    """The time step ``code`` is valid for around ``now``, if later than ``after_step`` (a code
    is accepted once); None when it matches no such step."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    for offset in range(-WINDOW, WINDOW + 1):
        moment = now + timedelta(seconds=offset * totp.interval)
        step = totp.timecode(moment)
        if (after_step is None or step > after_step) and hmac.compare_digest(totp.at(moment), code):
            return int(step)
    return None
