"""Bearer tokens. Only a SHA-256 of each token is stored; the token is printed once.

A token is a unit's (a system's, issued by the lead) or a person's account's. An account's token
is checked against the account on every request, never cached: disabling the account ends it
at once in every process."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from events.errors import InvariantViolated, NotFound
from services.kernel.principal import REVIEW_GROUP, ROLES, Principal, Role
from services.store.accounts import accounts, add_missing_columns

auth_metadata = sa.MetaData()

tokens = sa.Table(
    "auth_tokens",
    auth_metadata,
    sa.Column("token_id", sa.String(36), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("label", sa.String(100), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("revoked_at", sa.String(32), nullable=True),
    sa.Column("account_id", sa.String(36), nullable=True),  # a person's token; NULL for a system's
)

TOKEN_PREFIX = "lx_"
_CACHE_TTL_S = 5.0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, engine: sa.Engine, read_engine: sa.Engine | None = None) -> None:
        self.engine = engine
        # The check reads through the reader engine: on SQLite the writer engine's BEGIN takes
        # the write lock, so every uncached check would queue behind the group committer.
        self.read_engine = read_engine or engine
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def setup(self) -> None:
        """Under the caller's DDL lock (after the account tables)."""
        auth_metadata.create_all(self.engine, checkfirst=True)
        add_missing_columns(self.engine, tokens)

    def issue(self, *, agency: str, role: str, label: str, known_agencies: dict[str, bool],
              account_id: str | None = None) -> tuple[str, str]:
        """Returns (token_id, token). ``known_agencies`` maps unit code -> is lead."""
        if role not in ROLES:
            raise InvariantViolated(f"role {role!r} must be one of {', '.join(ROLES)}")
        if agency == REVIEW_GROUP and role != "auditor":
            raise InvariantViolated("the review group holds read-only (auditor) credentials only")
        if agency not in known_agencies and agency != REVIEW_GROUP:
            raise NotFound(f"unknown member unit {agency!r} (run `lianxi init` first?)")
        if role == "lead" and not known_agencies[agency]:
            raise InvariantViolated(f"only the lead unit may hold a lead token; {agency!r} is not the lead")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(tokens.insert().values(
                token_id=token_id, token_hash=hash_token(token), agency=agency, role=role,
                label=label[:100] or role, created_at=datetime.now(UTC).isoformat(), account_id=account_id,
            ))
        return token_id, token

    def revoke(self, token_id: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(tokens.update().where(tokens.c.token_id == token_id, tokens.c.revoked_at.is_(None))
                                .values(revoked_at=datetime.now(UTC).isoformat())).rowcount
        if not done:
            raise NotFound(f"no active token with id {token_id!r}")
        with self._lock:
            self._cache.clear()

    def revoke_for_account(self, conn: sa.Connection, account_id: str, at: str) -> int:
        """Revokes every live token of an account, in the caller's transaction."""
        done = conn.execute(tokens.update().where(tokens.c.account_id == account_id, tokens.c.revoked_at.is_(None))
                            .values(revoked_at=at)).rowcount
        with self._lock:
            self._cache.clear()
        return int(done or 0)

    def list(self, *, agency: str | None = None) -> list[dict[str, object]]:
        q = sa.select(tokens.c.token_id, tokens.c.agency, tokens.c.role, tokens.c.label, tokens.c.created_at,
                      tokens.c.revoked_at, tokens.c.account_id)
        if agency is not None:
            q = q.where(tokens.c.agency == agency)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(tokens.c.created_at)).mappings()
            return [dict(r) for r in rows]

    def cached(self, token: str) -> tuple[Principal | None] | None:
        """A system token's fresh cached answer, as a 1-tuple (the principal may be None: a
        known-bad token); None when only the database can tell (a miss, or a person's token,
        which is never cached). Cheap enough for the event loop."""
        digest = hash_token(token)
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and time.monotonic() - hit[0] < _CACHE_TTL_S:
            return (hit[1],)
        return None

    def authenticate(self, token: str) -> Principal | None:
        """The principal for a bearer token, or None. A system's token is cached briefly (a
        revocation takes effect in this process at once and in others within a few seconds);
        a person's token is checked against its account on every request."""
        hit = self.cached(token)
        if hit is not None:
            return hit[0]
        digest = hash_token(token)
        now = time.monotonic()
        with self.read_engine.connect() as conn:
            row = conn.execute(sa.select(tokens, accounts.c.enabled)
                               .outerjoin(accounts, accounts.c.account_id == tokens.c.account_id)
                               .where(tokens.c.token_hash == digest, tokens.c.revoked_at.is_(None))).mappings().first()
        principal = None
        if row is not None and row["account_id"] is not None:
            # A person acts as their account (named by its opaque id, as in a page session); the
            # token's label, free text the lead typed, never reaches the log.
            return Principal(token_id=row["account_id"], agency=row["agency"], role=row["role"],
                             label="account") if row["enabled"] else None
        if row is not None:
            role: Role = row["role"]
            principal = Principal(token_id=row["token_id"], agency=row["agency"], role=role, label=row["label"])
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal
