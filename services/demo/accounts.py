"""The demo county's people: one account per role, marked as demo data (演示·…), no phone numbers.
They share one published password (README) and are not made to change it: demo stores only."""

from __future__ import annotations

from datetime import datetime

from services.accounts.service import Accounts
from services.kernel.principal import REVIEW_GROUP

DEMO_PASSWORD = "lianxi-demo-2025"
DEMO_ACCOUNTS = (  # account name, display name, unit, role
    ("demo.education", "演示·教育局管理员", "education", "lead"),
    ("demo.fire-rescue", "演示·消防联络员", "fire-rescue", "liaison"),
    ("demo.market", "演示·市场监管联络员", "market-supervision", "liaison"),
    ("demo.review", "演示·考核组成员", REVIEW_GROUP, "auditor"),
)


def create_demo_accounts(accounts: Accounts, known_units: dict[str, bool], now: datetime) -> list[str]:
    """Creates the demo accounts that are missing (whose unit exists); returns their names."""
    made = []
    for name, display, unit, role in DEMO_ACCOUNTS:
        if accounts.by_name(name) is None and (unit in known_units or unit == REVIEW_GROUP):
            accounts.create("demo", account_name=name, display_name=display, unit=unit, role=role, phone=None,
                            known_units=known_units, now=now, password=DEMO_PASSWORD)
            made.append(name)
    return made
