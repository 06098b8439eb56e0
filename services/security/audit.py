"""Audit trail (等保 2.0 安全审计): who, when, what, outcome.

Recorded for every write, every refusal (401/403), every read of the raw log or of the audit
trail, and every read of another unit's data (the read guards in services/api/deps.py mark
those). Rows go to ``audit_log``, an append-only table beside the event store: it is not a
read model (no projection writes it, a rebuild never drops it), the platform has no update
or delete path for it, and database triggers refuse UPDATE, DELETE (and on PostgreSQL
TRUNCATE) from anyone.

A write's row commits in the write's own transaction: the middleware prepares the row for
each request, and the first commit the request makes carries it (services/store/request_rows.py;
event commits, group commit included, and table writes through ``begin_carrying``), so no
crash can keep the write and lose its row. Such a row is written before the answer exists:
its status is the route's success status (201, or 303 for a page's redirect) and its
resource id the first aggregate written. A request that wrote nothing (a read, a refusal, a
replay) gets its row from the middleware, committed before the response leaves the server;
so does a request whose answer failed after its write had committed (a second row, with
the failure). Rows ride the application's group commit (see ``AuditTrail``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from projections.base import utc_text
from services.kernel.principal import Principal
from services.store.database import SideRows
from services.store.request_rows import RequestRows, close_request, open_request

if TYPE_CHECKING:  # the web stack is imported where the middleware is installed, not by every CLI command
    from starlette.types import Message, Scope, Send

log = logging.getLogger(__name__)

audit_metadata = sa.MetaData()

audit_log = sa.Table(
    "audit_log",
    audit_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(32), nullable=False),  # utc_text
    sa.Column("actor", sa.String(200), nullable=False),  # Principal.actor, or anonymous / token:<hash8>
    sa.Column("token_id", sa.String(36), nullable=True),
    sa.Column("role", sa.String(16), nullable=True),
    sa.Column("unit", sa.String(64), nullable=True),  # the acting principal's unit
    sa.Column("action", sa.String(200), nullable=False),  # "POST /api/v1/duty-logs" (route template)
    sa.Column("target", sa.String(1000), nullable=False),  # the concrete path and query
    sa.Column("target_unit", sa.String(64), nullable=True),  # whose data, when not the actor's; "*" = all
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # ok | refused | rejected | error
    sa.Column("resource_id", sa.String(200), nullable=True),  # id a write answered with
    sa.Column("detail", sa.String(500), nullable=True),  # the problem detail of a failure
    sa.Column("client", sa.String(64), nullable=True),
    sa.Index("ix_audit_log_unit", "unit", "id"),
    sa.Index("ix_audit_log_target_unit", "target_unit", "id"),
)

_APPEND_ONLY_MESSAGE = "audit_log is append-only"

_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS audit_log_no_{op.lower()} BEFORE {op} ON audit_log
        BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MESSAGE}'); END"""
    for op in ("UPDATE", "DELETE")
]

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '{_APPEND_ONLY_MESSAGE}'; END $$"""

_PG_TRIGGERS = {
    "audit_log_no_change": "BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW",
    "audit_log_no_truncate": "BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT",
}

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Reads that are always audited: the raw log and the audit trail itself (API and pages).
SENSITIVE_READ_PREFIXES = ("/api/v1/events", "/api/v1/audit", "/api/v1/evidence", "/events", "/audit", "/evidence")
MAX_CAPTURE_BYTES = 64 * 1024
UNIT_PATH_PARAMS = frozenset({"code", "unit", "agency"})


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "refused"
    if status < 500:
        return "rejected"
    return "error"


# Every column but the id, in the order ``AuditTrail.side_rows`` and ``RequestAudit._row`` bind them.
AUDIT_COLUMNS = tuple(c.name for c in audit_log.c if c.name != "id")


class AuditTrail:
    """The append-only store. A row is committed through the application's group commit,
    in the same transaction as a batch of events (services/store/database.py ``SideRowsInTransaction``),
    so auditing a write costs no commit of its own."""

    def __init__(self, engine: sa.Engine, app: Any) -> None:
        self.engine = engine
        self.app = app

    @staticmethod
    def side_rows(row: Mapping[str, Any]) -> SideRows:
        return ("audit_log", AUDIT_COLUMNS, [tuple(row[c] for c in AUDIT_COLUMNS)])

    async def append_async(self, row: Mapping[str, Any]) -> None:
        """Returns once the row is committed."""
        await self.app.commit_side_rows_async(self.side_rows(row))

    def setup_tables(self) -> None:
        """Under the caller's DDL lock (services/platform.py)."""
        audit_metadata.create_all(self.engine, checkfirst=True)
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                for ddl in _SQLITE_TRIGGERS:
                    conn.exec_driver_sql(ddl)
                return
            conn.exec_driver_sql(_PG_FUNCTION)
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
            existing = set(conn.execute(sa.text(
                "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'audit_log' AND n.nspname = :s"
            ), {"s": schema}).scalars())
            for name, when in _PG_TRIGGERS.items():
                if name not in existing:
                    conn.exec_driver_sql(f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION audit_log_append_only()")

    def page(
        self, *, after: int = 0, limit: int = 100, unit: str | None = None, target_unit: str | None = None,
        token_id: str | None = None, outcome: str | None = None, since: str | None = None,
        until: str | None = None, before: int | None = None, newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Rows after ``after`` (and before ``before``), oldest first as the API pages them, or
        newest first as a person reads them (the page pages back with ``before``)."""
        q = sa.select(audit_log).where(audit_log.c.id > after)
        if before is not None:
            q = q.where(audit_log.c.id < before)
        if unit is not None:
            q = q.where(audit_log.c.unit == unit)
        if target_unit is not None:
            q = q.where(audit_log.c.target_unit == target_unit)
        if token_id is not None:
            q = q.where(audit_log.c.token_id == token_id)
        if outcome is not None:
            q = q.where(audit_log.c.outcome == outcome)
        if since is not None:
            q = q.where(audit_log.c.at >= since)
        if until is not None:
            q = q.where(audit_log.c.at < until)
        with self.engine.connect() as conn:
            order = audit_log.c.id.desc() if newest_first else audit_log.c.id
            return [dict(r) for r in conn.execute(q.order_by(order).limit(limit)).mappings()]


# -- what the request handlers tell the trail ------------------------------------------------


@dataclass
class RequestNote:
    principal: Principal | None = None
    presented_token: str | None = None  # hash prefix of a token that did not authenticate
    target_units: list[str] = field(default_factory=list)


_note: ContextVar[RequestNote | None] = ContextVar("lianxi_audit_note", default=None)


def note_principal(principal: Principal) -> None:
    note = _note.get()
    if note is not None:
        note.principal = principal


def note_unknown_token(token: str) -> None:
    note = _note.get()
    if note is not None:
        note.presented_token = hashlib.sha256(token.encode()).hexdigest()[:8]


def note_target_unit(unit: str) -> None:
    """The request touches ``unit``'s data ("*" for every unit's). Reads of a unit other than
    the caller's own are audited."""
    note = _note.get()
    if note is not None and unit not in note.target_units:
        note.target_units.append(unit)


# -- the middleware ----------------------------------------------------------------------------


def _route_template(scope: Scope, routes: Callable[[], Sequence[Any]]) -> str:
    from starlette.routing import Match

    route = scope.get("route")
    if route is None:  # refused before routing (413, 429): find the route it was meant for
        route = next((r for r in routes() if r.matches(scope)[0] == Match.FULL), None)
    path = getattr(route, "path", None)
    return str(path) if path else "(no route)"


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


# Paths whose query carries a credential (the identity provider's one-time code): not kept.
SECRET_QUERY_PATHS = frozenset({"/sso/callback"})


def _target(scope: Scope) -> str:
    path: str = scope.get("path", "")
    query = scope.get("query_string", b"").decode("latin-1")
    if query and path in SECRET_QUERY_PATHS:
        query = "(omitted)"
    return (path + ("?" + query if query else ""))[:1000]


def _parse(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


class RequestAudit:
    """The audit side of the one request middleware (services/api/limits.py ``RequestGate``,
    outermost, so the limits' 413/429/503 answers are recorded too): ``open`` starts a
    request's record, and its ``send`` is the audit part of the gate's one send wrapper."""

    def __init__(
        self, trail: AuditTrail, clock: Callable[[], datetime], tokens: Any,
        routes: Callable[[], Sequence[Any]],
    ) -> None:
        self.trail = trail
        self.clock = clock
        self.tokens = tokens  # services/security/tokens.py TokenStore: cached() and authenticate()
        self.routes = routes

    def open(self, scope: Scope) -> AuditedRequest:
        return AuditedRequest(self, scope)

    def _audited(self, scope: Scope, note: RequestNote, status: int) -> bool:
        method = scope.get("method", "GET")
        path: str = scope.get("path", "")
        if method not in SAFE_METHODS or status in (401, 403) or path.startswith(SENSITIVE_READ_PREFIXES):
            return True
        own = note.principal.agency if note.principal is not None else None
        return any(u != own for u in note.target_units)

    @staticmethod
    def _note_path_units(scope: Scope, note: RequestNote) -> None:
        """A unit named in the path (/agencies/{code}, /units/{unit}, ...) is whose data the
        request touches, whether or not the handler's guard said so."""
        params = scope.get("path_params")
        if not params:
            return
        for name, value in params.items():
            if name in UNIT_PATH_PARAMS and isinstance(value, str) and value not in note.target_units:
                note.target_units.append(value[:64])

    @staticmethod
    def _success_status(scope: Scope) -> int:
        """The status a write's answer will have when it succeeds: the route's declared one, or
        a page's redirect after a POST (services/web/base.py ``redirect``)."""
        declared = getattr(scope.get("route"), "status_code", None)
        if declared:
            return int(declared)
        return 200 if str(scope.get("path", "")).startswith("/api/") else 303

    def _row(self, scope: Scope, note: RequestNote, status: int, body: bytes,
             resource_id: str | None = None) -> tuple[Any, ...]:
        """The row's values in AUDIT_COLUMNS order. A request refused before authentication
        that was not resolved beforehand (``_resolve``) looks its token up here."""
        if note.principal is None and not note.presented_token:
            token = _bearer(scope)
            if token is not None:  # refused before authentication ran (413, 429, 503): still name who asked
                self._named(note, token, self.tokens.authenticate(token))
        p = note.principal
        if p is not None:
            actor = p.actor
        elif note.presented_token:
            actor = f"token:{note.presented_token}"
        else:
            actor = "anonymous"
        parsed = _parse(body) if body else {}
        if resource_id is None and status < 300 and scope.get("method") not in SAFE_METHODS:
            resource_id = parsed.get("id")
        detail = parsed.get("detail") if status >= 400 else None
        own = p.agency if p is not None else None
        others = [u for u in note.target_units if u != own] if note.target_units else ()
        client = scope.get("client")
        return (  # AUDIT_COLUMNS
            utc_text(self.clock()), actor[:200], p.token_id if p else None, p.role if p else None, own,
            f"{scope.get('method', '?')} {_route_template(scope, self.routes)}"[:200], _target(scope),
            ("*" if "*" in others else ",".join(others)[:64]) or None,
            status, outcome_of(status),
            str(resource_id)[:200] if resource_id is not None else None,
            str(detail)[:500] if detail is not None else None,
            str(client[0])[:64] if client else None,
        )

    @staticmethod
    def _named(note: RequestNote, token: str, principal: Principal | None) -> None:
        note.principal = principal
        if principal is None:
            note.presented_token = hashlib.sha256(token.encode()).hexdigest()[:8]

    async def _resolve(self, scope: Scope, note: RequestNote) -> None:
        """Who sent a request refused before authentication: a cached answer, else the
        database in the thread pool (never a query on the event loop every request shares)."""
        if note.principal is not None or note.presented_token:
            return
        token = _bearer(scope)
        if token is None:
            return
        hit = self.tokens.cached(token)
        if hit is None:
            from starlette.concurrency import run_in_threadpool

            hit = (await run_in_threadpool(self.tokens.authenticate, token),)
        self._named(note, token, hit[0])

    async def _write(self, scope: Scope, note: RequestNote, status: int, body: bytes, carried: RequestRows) -> None:
        if carried.carried and status < 400:
            return  # the write's own transaction holds the row
        values: tuple[Any, ...] = ()
        try:
            await self._resolve(scope, note)
            values = self._row(scope, note, status, body)
            await self.trail.append_async(dict(zip(AUDIT_COLUMNS, values, strict=True)))
        except Exception:  # an audit failure is logged loudly; the answer still goes
            log.exception("audit row not recorded: %s", values)


class AuditedRequest:
    """One request's audit record: its note for the handlers, the row its write carries
    (services/store/request_rows.py), and the answer held until its row is committed."""

    __slots__ = (
        "_note_token",
        "_rows_token",
        "audit",
        "audited",
        "captured",
        "carried",
        "flushed",
        "held",
        "note",
        "scope",
        "status",
    )

    def __init__(self, audit: RequestAudit, scope: Scope) -> None:
        self.audit = audit
        self.scope = scope
        self.note = RequestNote()
        self.carried = RequestRows(self._carried_rows)
        self._note_token = _note.set(self.note)
        self._rows_token = open_request(self.carried)
        self.held: list[Message] = []
        self.captured = bytearray()
        self.audited: bool | None = None
        self.status = 0
        self.flushed = False

    def _carried_rows(self, resource_id: str | None) -> list[SideRows]:
        audit, scope = self.audit, self.scope
        audit._note_path_units(scope, self.note)
        row = audit._row(scope, self.note, audit._success_status(scope), b"", resource_id=resource_id)
        return [("audit_log", AUDIT_COLUMNS, [row])]

    async def _flush(self, send: Send) -> None:
        self.flushed = True
        await self.audit._write(self.scope, self.note, self.status, bytes(self.captured), self.carried)
        for m in self.held:
            await send(m)
        self.held.clear()

    async def send(self, message: Message, send: Send) -> None:
        """Passes ``message`` on to ``send``, holding an audited answer until its row is written."""
        if message["type"] == "http.response.start":
            scope = self.scope
            self.audit._note_path_units(scope, self.note)
            self.status = status = int(message["status"])
            self.audited = self.audit._audited(scope, self.note, status)
            if not self.audited:
                await send(message)
                return
            self.held.append(message)
            # Only writes and failures carry something worth keeping from the body.
            if scope.get("method") in SAFE_METHODS and status < 400:
                await self._flush(send)
            return
        if not self.audited or self.flushed:
            await send(message)
            return
        self.held.append(message)
        if message["type"] == "http.response.body":
            captured = self.captured
            if len(captured) < MAX_CAPTURE_BYTES:
                captured.extend(message.get("body", b"")[: MAX_CAPTURE_BYTES - len(captured)])
            if not message.get("more_body", False) or len(captured) >= MAX_CAPTURE_BYTES:
                await self._flush(send)

    async def failed(self) -> None:
        """The app raised: record what the answer was, or a 500 if none had started."""
        if self.audited is None:
            self.status = 500
            await self.audit._write(self.scope, self.note, 500, b"", self.carried)
        elif self.audited and not self.flushed:
            await self.audit._write(self.scope, self.note, self.status, bytes(self.captured), self.carried)

    def close(self) -> None:
        close_request(self._rows_token)
        _note.reset(self._note_token)


def request_audit(app: Any, platform: Any) -> RequestAudit:
    """The audit for the app's request middleware (services/api/limits.py ``install``)."""
    from fastapi.routing import iter_route_contexts

    return RequestAudit(platform.audit, clock=lambda: platform.clock(), tokens=platform.tokens,
                        routes=lambda: list(iter_route_contexts(app.routes)))
