"""People's accounts: the lead creates, disables, re-enables and resets them; a person signs in
with account name and password (and a TOTP code once enrolled), changes the password, enrols
TOTP. Every sign-in, failure and lock-out, and every change the lead makes, is a row in the
audit trail, naming the account by its opaque id only.

Rule refusals raise ``AccountProblem`` whose detail is the Chinese sentence a person reads (pages
and CLI show it as is). A failed sign-in raises ``SignInFailed`` with its reason; the page words it.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from contracts.text import find_control_character
from events.errors import InvariantViolated, NotFound
from projections.base import utc_text
from services.accounts import policy, totp
from services.kernel.principal import REVIEW_GROUP, ROLES, Principal, Role
from services.security.audit import audit_log, outcome_of
from services.security.tokens import tokens
from services.settings import Settings
from services.store.accounts import accounts, web_sessions

_hasher = PasswordHasher()  # Argon2id, the library's current parameters (rehash when they change)
# Verified when the account name is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

NAME_READERS: frozenset[Role] = frozenset({"lead", "auditor"})  # who sees names beside account ids
FailReason = Literal["unknown", "wrong-password", "wrong-code", "locked", "disabled", "no-password"]


class AccountProblem(InvariantViolated):
    """A refused account operation; ``detail`` is the Chinese sentence shown to the person."""


@dataclass(frozen=True)
class SignInFailed(Exception):
    reason: FailReason
    locked_until: datetime | None = None


@dataclass(frozen=True)
class Account:
    account_id: str
    account_name: str
    display_name: str
    unit: str
    role: Role
    phone: str | None
    enabled: bool
    must_change_password: bool
    totp_enabled: bool
    created_at: str
    last_signin_at: str | None
    locked_until: str | None
    oidc_issuer: str | None
    oidc_subject: str | None

    @property
    def principal(self) -> Principal:
        """Who acts for this account: named in the log by its opaque id, never by a name."""
        return Principal(token_id=self.account_id, agency=self.unit, role=self.role, label="account")

    @classmethod
    def of(cls, row: sa.RowMapping) -> Account:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k != "totp_enabled"},
                   totp_enabled=row["totp_secret"] is not None)


def initial_password() -> str:
    """A random first password that meets the policy (the person must change it at first sign-in)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(14))
        if not policy.password_problems(candidate, ""):
            return candidate


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


class Accounts:
    def __init__(self, engine: sa.Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.lockout = policy.Lockout(after=settings.signin_lock_after, base=_seconds(settings.signin_lock_base_s),
                                      cap=_seconds(settings.signin_lock_max_s))

    # -- reads -------------------------------------------------------------------------------

    def get(self, account_id: str) -> Account:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.account_id == account_id[:36])).mappings().first()
        if row is None:
            raise NotFound("没有这个账号。")
        return Account.of(row)

    def by_name(self, account_name: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts)
                               .where(accounts.c.account_name == account_name[:40])).mappings().first()
        return Account.of(row) if row else None

    def list(self, *, unit: str | None = None) -> list[Account]:
        q = sa.select(accounts).order_by(accounts.c.unit, accounts.c.account_name)
        if unit is not None:
            q = q.where(accounts.c.unit == unit)
        with self.engine.connect() as conn:
            return [Account.of(r) for r in conn.execute(q).mappings()]

    def names_for(self, reader: Principal) -> dict[str, str]:
        """People's display names by account id, for reading the audit trail: the lead and
        auditors see who acted; anyone else reads account ids only (data minimisation)."""
        if reader.role not in NAME_READERS:
            return {}
        with self.engine.connect() as conn:
            return {r.account_id: r.display_name
                    for r in conn.execute(sa.select(accounts.c.account_id, accounts.c.display_name))}

    def for_oidc_subject(self, issuer: str, subject: str) -> Account | None:
        """The enabled account the lead mapped to this provider subject, or None (sign-in refused;
        signing in never creates an account)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(
                accounts.c.oidc_issuer == issuer, accounts.c.oidc_subject == subject,
                accounts.c.enabled.is_(True))).mappings().first()
        return Account.of(row) if row else None

    # -- the lead's management -------------------------------------------------------------

    def create(self, actor: str, *, account_name: str, display_name: str, unit: str, role: str,
               phone: str | None, known_units: Mapping[str, bool], now: datetime,
               password: str | None = None) -> tuple[Account, str]:
        """A new account with a random initial password (returned once; the person must change it).
        ``known_units`` maps each member unit's code to whether it is the lead unit. Only the demo
        passes ``password``: then the person is not made to change it."""
        account_name = account_name.strip().lower()
        display_name = display_name.strip()
        phone = (phone or "").strip() or None
        for problem in (policy.account_name_problem(account_name), policy.display_name_problem(display_name),
                        policy.phone_problem(phone or ""), _role_problem(unit, role, known_units)):
            if problem:
                raise AccountProblem(problem)
        chosen = password is not None
        if password is not None and policy.password_problems(password, account_name):
            raise AccountProblem("".join(policy.password_problems(password, account_name)))
        password = password or initial_password()
        account_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            if conn.execute(sa.select(accounts.c.account_id).where(accounts.c.account_name == account_name)).first():
                raise AccountProblem(f"账号名「{account_name}」已被使用，请换一个。")
            conn.execute(accounts.insert().values(
                account_id=account_id, account_name=account_name, display_name=display_name, unit=unit, role=role,
                phone=phone, password_hash=_hasher.hash(password), must_change_password=not chosen, enabled=True,
                failed_signins=0, created_at=utc_text(now)))
            self._audit(conn, now, actor=actor, action="ACCOUNT create", account_id=account_id, unit=unit)
        return self.get(account_id), password

    def set_enabled(self, actor: str, account_id: str, enabled: bool, now: datetime) -> Account:
        """Disabling ends the account's sessions and revokes its API tokens in the same transaction."""
        account = self.get(account_id)
        with self.engine.begin() as conn:
            conn.execute(accounts.update().where(accounts.c.account_id == account.account_id)
                         .values(enabled=enabled, failed_signins=0, locked_until=None))
            if not enabled:
                self._end_sessions(conn, account.account_id, now)
                conn.execute(tokens.update().where(tokens.c.account_id == account.account_id,
                                                   tokens.c.revoked_at.is_(None)).values(revoked_at=now.isoformat()))
            self._audit(conn, now, actor=actor, action="ACCOUNT enable" if enabled else "ACCOUNT disable",
                        account_id=account.account_id, unit=account.unit)
        return self.get(account_id)

    def reset_password(self, actor: str, account_id: str, now: datetime, *, clear_totp: bool = False) -> str:
        """A new random password the person must change at next sign-in; ends their sessions and a lock."""
        account = self.get(account_id)
        password = initial_password()
        values: dict[str, Any] = {"password_hash": _hasher.hash(password), "must_change_password": True,
                                  "failed_signins": 0, "locked_until": None}
        if clear_totp:
            values.update(totp_secret=None, totp_pending=None, totp_last_step=None)
        with self.engine.begin() as conn:
            conn.execute(accounts.update().where(accounts.c.account_id == account.account_id).values(**values))
            self._end_sessions(conn, account.account_id, now)
            self._audit(conn, now, actor=actor, action="ACCOUNT reset-password" + (" clear-totp" if clear_totp else ""),
                        account_id=account.account_id, unit=account.unit)
        return password

    def set_oidc(self, actor: str, account_id: str, issuer: str | None, subject: str | None, now: datetime) -> None:
        """Maps a provider's (issuer, subject) to the account; None for both removes the mapping."""
        account = self.get(account_id)
        if bool(issuer) != bool(subject):
            raise AccountProblem("统一身份认证的签发方和用户标识须同时填写或同时留空。")
        if find_control_character([issuer, subject]):
            raise AccountProblem("签发方或用户标识中含有不可见的控制字符。")
        with self.engine.begin() as conn:
            if issuer and conn.execute(sa.select(accounts.c.account_id).where(
                    accounts.c.oidc_issuer == issuer, accounts.c.oidc_subject == subject,
                    accounts.c.account_id != account.account_id)).first():
                raise AccountProblem("该统一身份认证用户已对应另一个账号。")
            conn.execute(accounts.update().where(accounts.c.account_id == account.account_id)
                         .values(oidc_issuer=issuer or None, oidc_subject=subject or None))
            self._audit(conn, now, actor=actor, action="ACCOUNT set-oidc", account_id=account.account_id,
                        unit=account.unit)

    def end_sessions(self, account_id: str, now: datetime) -> int:
        """Signing out everywhere."""
        with self.engine.begin() as conn:
            return self._end_sessions(conn, account_id, now)

    # -- the person's own --------------------------------------------------------------------

    def sign_in(self, account_name: str, password: str, code: str | None, now: datetime, *,
                via: str = "/signin", client: str | None = None) -> Account:
        """The account, or ``SignInFailed``. Every outcome is audited. During a lock even the
        right password is refused (and not checked)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(
                accounts.c.account_name == account_name.strip().lower()[:40])).mappings().first()
        if row is None:
            _verify(_DUMMY_HASH, password)
            self._audit_now(now, actor="anonymous", action="SIGNIN", status=401, detail="unknown account name",
                            via=via, client=client)
            raise SignInFailed("unknown")
        account = Account.of(row)
        locked_until = _parse_time(row["locked_until"])
        if locked_until is not None and locked_until > now:
            self._audit_now(now, account=account, action="SIGNIN", status=423,
                            detail=f"refused: locked until {utc_text(locked_until)}", via=via, client=client)
            raise SignInFailed("locked", locked_until)
        if row["password_hash"] is None:
            self._audit_now(now, account=account, action="SIGNIN", status=401,
                            detail="no password (single sign-on only)", via=via, client=client)
            raise SignInFailed("no-password")
        if not _verify(row["password_hash"], password):
            raise self._failed(account, now, "wrong-password", via, client)
        if not account.enabled:  # told only to whoever knows the password: a guesser learns nothing
            self._audit_now(now, account=account, action="SIGNIN", status=403, detail="account disabled", via=via,
                            client=client)
            raise SignInFailed("disabled")
        step = None
        if row["totp_secret"] is not None:
            step = totp.matching_step(row["totp_secret"], code or "", now, row["totp_last_step"])
            if step is None:
                raise self._failed(account, now, "wrong-code", via, client)
        values: dict[str, Any] = {"failed_signins": 0, "locked_until": None, "last_signin_at": utc_text(now)}
        if step is not None:
            values["totp_last_step"] = step
        if _hasher.check_needs_rehash(row["password_hash"]):
            values["password_hash"] = _hasher.hash(password)
        where = [accounts.c.account_id == account.account_id]
        if step is not None:  # compare-and-set: of two sign-ins racing with one code, one consumes it
            where.append(sa.or_(accounts.c.totp_last_step.is_(None), accounts.c.totp_last_step < step))
        with self.engine.begin() as conn:
            consumed = conn.execute(accounts.update().where(*where).values(**values)).rowcount == 1
            if consumed:
                self._audit(conn, now, account=account, action="SIGNIN", status=200,
                            detail="password" + (" + totp" if step is not None else ""), via=via, client=client)
        if not consumed:  # another sign-in used this code between our read and this write
            raise self._failed(account, now, "wrong-code", via, client)
        return account

    def record_signin(self, account: Account, now: datetime, *, via: str, client: str | None = None) -> None:
        """An audited sign-in that did not go through the password (single sign-on)."""
        with self.engine.begin() as conn:
            conn.execute(accounts.update().where(accounts.c.account_id == account.account_id)
                         .values(last_signin_at=utc_text(now)))
            self._audit(conn, now, account=account, action="SIGNIN", status=200, detail=via, via=via, client=client)

    def change_password(self, account_id: str, current: str, new: str, now: datetime) -> None:
        account = self.get(account_id)
        with self.engine.connect() as conn:
            stored = conn.execute(sa.select(accounts.c.password_hash)
                                  .where(accounts.c.account_id == account.account_id)).scalar()
        if stored is None or not _verify(stored, current):
            raise AccountProblem("当前密码不正确。")
        problems = policy.password_problems(new, account.account_name)
        if current == new:
            problems.append("新密码不能与当前密码相同。")
        if problems:
            raise AccountProblem("".join(problems))
        with self.engine.begin() as conn:
            conn.execute(accounts.update().where(accounts.c.account_id == account.account_id)
                         .values(password_hash=_hasher.hash(new), must_change_password=False))
            self._audit(conn, now, account=account, action="ACCOUNT change-password", status=200)

    def totp_enrolment(self, account_id: str) -> tuple[str, str]:
        """The pending secret (made on first ask) and its otpauth URI for the enrolment page."""
        account = self.get(account_id)
        with self.engine.begin() as conn:
            secret = conn.execute(sa.select(accounts.c.totp_pending)
                                  .where(accounts.c.account_id == account.account_id)).scalar()
            if secret is None:
                secret = totp.new_secret()
                conn.execute(accounts.update().where(accounts.c.account_id == account.account_id)
                             .values(totp_pending=secret))
        return secret, totp.provisioning_uri(secret, account.account_name, self.settings.totp_issuer)

    def confirm_totp(self, account_id: str, code: str, now: datetime) -> None:
        """Enrolment completes when the person types a code their app shows for the pending secret."""
        account = self.get(account_id)
        with self.engine.connect() as conn:
            pending = conn.execute(sa.select(accounts.c.totp_pending)
                                   .where(accounts.c.account_id == account.account_id)).scalar()
        step = totp.matching_step(pending, code, now, None) if pending else None
        if step is None:
            raise AccountProblem("动态口令不正确，请输入验证器应用当前显示的 6 位数字。")
        with self.engine.begin() as conn:
            conn.execute(accounts.update().where(accounts.c.account_id == account.account_id)
                         .values(totp_secret=pending, totp_pending=None, totp_last_step=step))
            self._audit(conn, now, account=account, action="ACCOUNT enrol-totp", status=200)

    # -- internals -----------------------------------------------------------------------------

    def _failed(self, account: Account, now: datetime, reason: FailReason, via: str,
                client: str | None) -> SignInFailed:
        with self.engine.begin() as conn:
            failures = conn.execute(accounts.update().where(accounts.c.account_id == account.account_id)
                                    .values(failed_signins=accounts.c.failed_signins + 1)
                                    .returning(accounts.c.failed_signins)).scalar_one()
            self._audit(conn, now, account=account, action="SIGNIN", status=401,
                        detail=f"{reason} (failure {failures} in a row)", via=via, client=client)
            lock = self.lockout.lock_for(failures)
            if lock is None:
                return SignInFailed(reason)
            until = now + lock
            conn.execute(accounts.update().where(accounts.c.account_id == account.account_id)
                         .values(locked_until=utc_text(until)))
            self._audit(conn, now, account=account, action="LOCKOUT", status=423,
                        detail=f"locked for {int(lock.total_seconds())} s after {failures} failures", via=via,
                        client=client)
        return SignInFailed("locked", until)

    @staticmethod
    def _end_sessions(conn: sa.Connection, account_id: str, now: datetime) -> int:
        done = conn.execute(web_sessions.update().where(web_sessions.c.account_id == account_id,
                                                        web_sessions.c.ended_at.is_(None))
                            .values(ended_at=utc_text(now))).rowcount
        return int(done or 0)

    def _audit_now(self, now: datetime, **kw: Any) -> None:
        with self.engine.begin() as conn:
            self._audit(conn, now, **kw)

    @staticmethod
    def _audit(conn: sa.Connection, now: datetime, *, action: str, status: int = 200, account: Account | None = None,
               actor: str | None = None, account_id: str | None = None, unit: str | None = None,
               detail: str | None = None, via: str = "", client: str | None = None) -> None:
        """One audit row; ``account`` is who signed in or acted on their own account, ``actor``
        (Principal.actor or ``cli``) who acted on ``account_id``."""
        p = account.principal if account else None
        conn.execute(audit_log.insert().values(
            at=utc_text(now), actor=(p.actor if p else actor or "anonymous")[:200],
            token_id=p.token_id if p else None, role=p.role if p else None, unit=p.agency if p else None,
            action=action, target=(via or f"account:{account_id or (p.token_id if p else '')}")[:1000],
            target_unit=unit if p is None else None, status=status, outcome=outcome_of(status),
            resource_id=account_id or (p.token_id if p else None), detail=detail[:500] if detail else None,
            client=client[:64] if client else None))


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password[: policy.MAX_PASSWORD * 4])
    except (VerificationError, InvalidHashError):
        return False


def _role_problem(unit: str, role: str, known_units: Mapping[str, bool]) -> str | None:
    if role not in ROLES:
        return "角色只能是联络员、牵头单位或考核/纪检。"
    if (unit == REVIEW_GROUP) != (role == "auditor"):
        return "考核/纪检（只读）账号属于考核组/纪检，不属于成员单位；成员单位的账号不能是只读角色。"
    if unit != REVIEW_GROUP and unit not in known_units:
        return "没有这个成员单位。"
    if role == "lead" and not known_units[unit]:
        return "只有牵头单位（教育局）的账号可以是牵头单位角色。"
    return None
