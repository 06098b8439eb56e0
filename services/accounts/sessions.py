"""Server-side page sessions, for a person's account or (for machines and old habits) a unit's token.

The browser keeps only a random session id in an HttpOnly, SameSite=Lax cookie; the table keeps
its SHA-256, the principal it stands for, and the session's CSRF token. A session ends on sign-out,
after ``idle`` without a request, ``absolute`` after sign-in, when its account is disabled or its
token revoked: all checked on every request, never cached. ``purge`` (a scheduled job) deletes
the rows that can no longer be used.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from projections.base import utc_text
from services.kernel.principal import Principal, Role
from services.security.tokens import tokens as tokens_table
from services.store.accounts import accounts, web_sessions
from services.store.request_rows import begin_carrying

# last_seen_at is written at most this often (a read is not a write on every page view)
TOUCH_EVERY = timedelta(seconds=30)


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class WebSession:
    principal: Principal
    csrf: str
    session_hash: str
    account_id: str | None = None
    display_name: str | None = None
    must_change_password: bool = False


class SessionStore:
    def __init__(self, engine: sa.Engine, *, idle: timedelta, absolute: timedelta) -> None:
        self.engine = engine
        self.idle = idle
        self.absolute = absolute

    def start(self, principal: Principal, now: datetime, *, account_id: str | None = None,
              method: str = "token") -> tuple[str, WebSession]:
        """A new session: returns the cookie value (never stored) and the session. ``method`` is how
        the person proved who they are: only a password sign-in is held to a pending password change."""
        session_id = new_secret()
        csrf = new_secret()
        hashed = digest(session_id)
        with begin_carrying(self.engine) as conn:
            conn.execute(web_sessions.insert().values(
                session_hash=hashed, token_id=principal.token_id, agency=principal.agency, role=principal.role,
                label=principal.label[:100], csrf=csrf, created_at=utc_text(now),
                expires_at=utc_text(now + self.absolute), account_id=account_id, last_seen_at=utc_text(now),
                method=method,
            ))
        return session_id, WebSession(principal, csrf, hashed, account_id)

    def get(self, session_id: str | None, now: datetime) -> WebSession | None:
        """The live session for a cookie value, or None."""
        if not session_id or len(session_id) > 200:
            return None
        s, a, t = web_sessions.c, accounts.c, tokens_table.c
        q = (sa.select(s.token_id, s.agency, s.role, s.label, s.csrf, s.session_hash, s.account_id, s.created_at,
                       s.last_seen_at, s.method, a.enabled, a.display_name, a.must_change_password,
                       t.token_id.label("live_token"))
             .outerjoin(accounts, a.account_id == s.account_id)
             .outerjoin(tokens_table, sa.and_(t.token_id == s.token_id, t.revoked_at.is_(None)))
             .where(s.session_hash == digest(session_id), s.ended_at.is_(None), s.expires_at > utc_text(now)))
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        if row is None:
            return None
        if (not row["enabled"]) if row["account_id"] else row["live_token"] is None:
            return None
        seen = row["last_seen_at"] or row["created_at"]
        if seen <= utc_text(now - self.idle):
            return None
        if seen <= utc_text(now - TOUCH_EVERY):
            with self.engine.begin() as conn:  # not begin_carrying: a page view is not the request's write
                conn.execute(web_sessions.update().where(web_sessions.c.session_hash == row["session_hash"])
                             .values(last_seen_at=utc_text(now)))
        role: Role = row["role"]
        principal = Principal(token_id=row["token_id"], agency=row["agency"], role=role, label=row["label"])
        return WebSession(principal, row["csrf"], row["session_hash"], row["account_id"], row["display_name"],
                          bool(row["must_change_password"]) and row["method"] == "password")

    def end(self, session_hash: str, now: datetime) -> None:
        with begin_carrying(self.engine) as conn:
            conn.execute(web_sessions.update()
                         .where(web_sessions.c.session_hash == session_hash, web_sessions.c.ended_at.is_(None))
                         .values(ended_at=utc_text(now)))

    def end_cookie(self, session_id: str | None, now: datetime) -> None:
        """Ends the session a browser's cookie names, if any (signing in again replaces it)."""
        if session_id and len(session_id) <= 200:
            self.end(digest(session_id), now)

    def purge(self, now: datetime) -> int:
        """Deletes sessions that ended, passed their absolute timeout, or sat idle too long."""
        s = web_sessions.c
        idle_since = utc_text(now - self.idle)
        with self.engine.begin() as conn:
            done = conn.execute(web_sessions.delete().where(sa.or_(
                s.ended_at.is_not(None), s.expires_at <= utc_text(now),
                sa.func.coalesce(s.last_seen_at, s.created_at) <= idle_since))).rowcount
        return int(done or 0)


def session_store(engine: sa.Engine, idle_minutes: float, absolute_hours: float) -> SessionStore:
    return SessionStore(engine, idle=timedelta(minutes=idle_minutes), absolute=timedelta(hours=absolute_hours))
