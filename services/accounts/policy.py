"""The rules of accounts as plain functions: what a password, an account name and a phone must
be, and how long a run of failed sign-ins locks an account. No clock, no database."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

MIN_PASSWORD = 10
MAX_PASSWORD = 128
ACCOUNT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,39}")
PHONE = re.compile(r"\+?[0-9][0-9-]{4,18}")
MAX_DISPLAY_NAME = 40


def _classes(password: str) -> int:
    kinds = set()
    for ch in password:
        kinds.add("lower" if ch.islower() else "upper" if ch.isupper() else "digit" if ch.isdigit() else "other")
    return len(kinds)


def password_problems(password: str, account_name: str) -> list[str]:
    """What is wrong with a new password, in the words the person reads (empty: acceptable)."""
    problems = []
    if len(password) < MIN_PASSWORD:
        problems.append(f"密码至少需要 {MIN_PASSWORD} 个字符。")
    if len(password) > MAX_PASSWORD:
        problems.append(f"密码不能超过 {MAX_PASSWORD} 个字符。")
    if password and _classes(password) < 2:
        problems.append("密码不能只由一类字符组成（如全是数字或全是小写字母），请混合使用字母、数字或符号。")
    if account_name and account_name.lower() in password.lower():
        problems.append("密码不能包含账号名。")
    return problems


def account_name_problem(name: str) -> str | None:
    if not ACCOUNT_NAME.fullmatch(name):
        return "账号名须为 3 至 40 位小写字母、数字或 . _ -，并以字母或数字开头。"
    return None


def display_name_problem(name: str) -> str | None:
    if not name.strip() or len(name) > MAX_DISPLAY_NAME:
        return f"姓名须为 1 至 {MAX_DISPLAY_NAME} 个字符。"
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        return "姓名中含有不可见的控制字符。"
    return None


def phone_problem(phone: str) -> str | None:
    if phone and not PHONE.fullmatch(phone):
        return "手机号码格式不正确，只能包含数字、连字符和开头的 +。"
    return None


@dataclass(frozen=True)
class Lockout:
    """``after`` wrong passwords in a row lock the account for ``base``; each further wrong
    password (once the lock has passed) locks it again for twice as long, up to ``cap``."""

    after: int = 5
    base: timedelta = timedelta(minutes=1)
    cap: timedelta = timedelta(hours=1)

    def lock_for(self, failures: int) -> timedelta | None:
        """How long to lock after the ``failures``-th consecutive failure (None: not yet)."""
        if failures < self.after:
            return None
        doublings = min(failures - self.after, 30)
        lock: timedelta = min(self.cap, self.base * (2 ** doublings))
        return lock
