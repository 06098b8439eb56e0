"""Sign-in for the pages: the session cookie, CSRF helpers and the per-platform session store.

The sessions themselves (a person's account or a unit's token, idle and absolute timeouts,
purge) are services/accounts/sessions.py. Every POST form carries the session's CSRF token
(checked in constant time); the sign-in form itself is guarded by a double-submit cookie.
"""

from __future__ import annotations

import hmac
import threading
import weakref
from typing import Any

import sqlalchemy as sa

from services.accounts.sessions import SessionStore, WebSession, new_secret, session_store
from services.store.accounts import web_sessions
from services.store.database import ddl_lock

__all__ = ["SESSION_COOKIE", "SIGNIN_COOKIE", "SessionStore", "WebSession", "new_secret", "same", "sessions_for",
           "web_sessions", "web_submissions"]

SESSION_COOKIE = "lx_session"
SIGNIN_COOKIE = "lx_signin"  # double-submit token of the sign-in form

web_metadata = sa.MetaData()

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


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two secrets; a missing one never matches."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


_stores: weakref.WeakKeyDictionary[Any, SessionStore] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def sessions_for(platform: Any) -> SessionStore:
    """One store per platform (the session table is the platform's; the submissions table is
    created here on first use)."""
    with _lock:
        store = _stores.get(platform)
        if store is None:
            settings = platform.settings
            store = session_store(platform.write_engine, settings.session_idle_minutes,
                                  settings.session_absolute_hours)
            with ddl_lock(platform.write_engine):
                web_metadata.create_all(platform.write_engine, checkfirst=True)
            _stores[platform] = store
        return store
