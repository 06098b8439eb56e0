"""Sign-in for the pages: a unit's token is exchanged once for a server-side session.

The browser keeps only a random session id in an HttpOnly, SameSite=Lax cookie; the table
keeps its SHA-256, the principal it stands for, and the session's CSRF token. Every POST form
carries that CSRF token (checked in constant time). Sign-out ends the row, so a copied cookie
is useless afterwards; revoking the unit's token ends its sessions too (checked on every
request). The sign-in form itself is guarded by a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from projections.base import utc_text
from services.kernel.principal import Principal, Role
from services.security.tokens import tokens as tokens_table
from services.store.database import ddl_lock
from services.store.request_rows import begin_carrying

SESSION_COOKIE = "lx_session"
SIGNIN_COOKIE = "lx_signin"  # double-submit token of the sign-in form
SESSION_TTL = timedelta(hours=12)

web_metadata = sa.MetaData()

web_sessions = sa.Table(
    "web_sessions",
    web_metadata,
    sa.Column("session_hash", sa.String(64), primary_key=True),
    sa.Column("token_id", sa.String(36), nullable=False),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("label", sa.String(100), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
    sa.Column("ended_at", sa.String(32), nullable=True),
    sa.Index("ix_web_sessions_token", "token_id"),
)

# One row per form submission the pages have run (services/web/once.py): the key is derived from
# what was submitted, so a double tap, a retry or a Back-and-resubmit finds the first result.
web_submissions = sa.Table(
    "web_submissions",
    web_metadata,
    sa.Column("form_key", sa.String(64), primary_key=True),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("result_url", sa.String(500), nullable=True),  # NULL while the first one is running
    sa.Column("created_at", sa.String(32), nullable=False),
)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two secrets; a missing one never matches."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class WebSession:
    principal: Principal
    csrf: str
    session_hash: str


class SessionStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def setup(self) -> None:
        with ddl_lock(self.engine):
            web_metadata.create_all(self.engine, checkfirst=True)

    def start(self, principal: Principal, now: datetime) -> tuple[str, WebSession]:
        """A new session for ``principal``: returns the cookie value (never stored) and the session."""
        session_id = new_secret()
        csrf = new_secret()
        digest = _digest(session_id)
        with begin_carrying(self.engine) as conn:
            conn.execute(web_sessions.insert().values(
                session_hash=digest, token_id=principal.token_id, agency=principal.agency, role=principal.role,
                label=principal.label[:100], csrf=csrf, created_at=utc_text(now),
                expires_at=utc_text(now + SESSION_TTL),
            ))
        return session_id, WebSession(principal, csrf, digest)

    def get(self, session_id: str | None, now: datetime) -> WebSession | None:
        """The live session for a cookie value: not ended, not expired, its token not revoked."""
        if not session_id or len(session_id) > 200:
            return None
        s = web_sessions.c
        q = (sa.select(s.token_id, s.agency, s.role, s.label, s.csrf, s.session_hash)
             .join(tokens_table, tokens_table.c.token_id == s.token_id)
             .where(s.session_hash == _digest(session_id), s.ended_at.is_(None), s.expires_at > utc_text(now),
                    tokens_table.c.revoked_at.is_(None)))
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        if row is None:
            return None
        role: Role = row["role"]
        principal = Principal(token_id=row["token_id"], agency=row["agency"], role=role, label=row["label"])
        return WebSession(principal, row["csrf"], row["session_hash"])

    def end(self, session_hash: str, now: datetime) -> None:
        with begin_carrying(self.engine) as conn:
            conn.execute(web_sessions.update()
                         .where(web_sessions.c.session_hash == session_hash, web_sessions.c.ended_at.is_(None))
                         .values(ended_at=utc_text(now)))


_stores: weakref.WeakKeyDictionary[Any, SessionStore] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def sessions_for(platform: Any) -> SessionStore:
    """One store per platform, its table created on first use."""
    with _lock:
        store = _stores.get(platform)
        if store is None:
            store = SessionStore(platform.write_engine)
            store.setup()
            _stores[platform] = store
        return store
