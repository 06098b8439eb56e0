"""Resource limits (OWASP API4), as one plain ASGI middleware, each set by one LIANXI_* setting
(0 turns it off):

- body size (LIANXI_MAX_BODY_BYTES): a declared Content-Length over the limit gets 413 before
  anything is read; a chunked body is counted as it arrives and stopped at the limit. File
  uploads (multipart/form-data: evidence photos and documents) have their own, larger limit
  (LIANXI_EVIDENCE_MAX_REQUEST_BYTES).
- rate (LIANXI_RATE_LIMIT_PER_MINUTE, LIANXI_RATE_LIMIT_BURST): a token bucket per credential
  (the bearer token, hashed; the client address for requests without one) on /api/ paths;
  an empty bucket gets 429 with Retry-After. Failed authentications (401) also drain a
  bucket of the client address, so guessing or rotating made-up tokens is limited too
  (credentials that already worked from there are not held back).
  Buckets live in the process: with N API processes a credential gets up to N times the rate.
- time (LIANXI_REQUEST_TIMEOUT_S): a request that has not started its response by then gets
  503 with Retry-After. The handler's thread cannot be killed, so a write may still commit:
  the detail says so, and an Idempotency-Key makes the retry safe.

Page size is capped where pages are read (deps.MAX_PAGE, LIANXI_MAX_PAGE_SIZE) and text
lengths in the request models (contracts/api.py).

``document_problem_responses`` lists these problem answers in the OpenAPI document, so
clients (and the schemathesis run) see every status the API can give.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.api import Problem
from contracts.text import find_control_character
from services.api.problems import MEDIA_TYPE, problem
from services.security.audit import AuditedRequest, RequestAudit
from services.settings import Settings

API_PREFIX = "/api/"


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_upload_bytes: int
    rate_per_minute: int
    burst: int
    timeout_s: float

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(max_body_bytes=s.max_body_bytes, max_upload_bytes=s.evidence_max_request_bytes,
                   rate_per_minute=s.rate_limit_per_minute,
                   burst=s.rate_limit_burst or s.rate_limit_per_minute, timeout_s=s.request_timeout_s)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


# -- body size ---------------------------------------------------------------------------------


def body_limit(scope: Scope, limits: Limits) -> int:
    """The body size limit for this request (0: none): file uploads have their own."""
    content_type = _header(scope, b"content-type") or b""
    if limits.max_upload_bytes and content_type.lower().startswith(b"multipart/form-data"):
        return limits.max_upload_bytes
    return limits.max_body_bytes


def counted(receive: Receive, limit: int, detail: str) -> Receive:
    """``receive`` that stops a body (chunked or lying about its length) at ``limit`` bytes."""
    seen = 0

    async def receive_counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # FastAPI re-raises an HTTPException met while reading the body; the
                # problem handler turns it into problem+json.
                raise HTTPException(413, detail)
        return message

    return receive_counted


# -- text the store cannot hold ---------------------------------------------------------------


def unstorable_refusal(scope: Scope) -> ASGIApp | None:
    """A 400 for a path or query value holding a control character (NUL above all: PostgreSQL's
    text cannot hold it, so a filter with one ended in a 500) or bytes that are not UTF-8,
    before any route runs. Bodies are checked by the request models (contracts/text.py)."""
    detail = _unstorable(scope)
    if detail is None:
        return None
    path = str(scope.get("path", ""))
    if path.startswith(API_PREFIX):
        return problem(400, detail, instance=path)
    return PlainTextResponse("请求地址或查询参数中含有不允许的控制字符。", status_code=400)


def _unstorable(scope: Scope) -> str | None:
    problem_in_path = find_control_character(str(scope.get("path", "")))
    if problem_in_path is not None:
        return f"the path: {problem_in_path}"
    raw = bytes(scope.get("query_string", b""))
    if not raw:
        return None
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        return "the query string is not valid UTF-8"
    for name, value in pairs:
        found = find_control_character(name) or find_control_character(value, name)
        if found is not None:
            return f"query parameter {name[:40]!r}: {found}"
    return None


# -- rate --------------------------------------------------------------------------------------


class TokenBuckets:
    """``rate_per_minute`` tokens a minute, at most ``burst`` saved up, one per request."""

    MAX_KEYS = 50_000

    def __init__(self, rate_per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(max(burst, 1))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = self.clock()
        tokens = self._level(key, now)
        if tokens >= 1.0:
            self._remember(key, tokens - 1.0, now)
            return 0.0
        self._remember(key, tokens, now)
        return (1.0 - tokens) / self.rate

    def wait(self, key: str) -> float:
        """Like ``take`` without using a token."""
        tokens = self._level(key, self.clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def _remember(self, key: str, tokens: float, now: float) -> None:
        if len(self._buckets) >= self.MAX_KEYS and key not in self._buckets:
            # Drop buckets that have refilled: forgetting them changes nothing.
            full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst]
            for k in full:
                del self._buckets[k]
        self._buckets[key] = (tokens, now)


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def credential_key(scope: Scope) -> str:
    auth = _header(scope, b"authorization")
    if auth:
        return "cred:" + hashlib.sha256(auth).hexdigest()[:32]
    return "addr:" + client_address(scope)


class RateLimiter:
    """Per credential. So that made-up tokens are no way around it, each 401 also uses a
    token of the client address's failure bucket; while that is empty the address may use
    only credentials that have already worked here (a colleague behind the same NAT with a
    valid token is not locked out)."""

    KNOWN_GOOD = 10_000

    def __init__(self, rate_per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.buckets = TokenBuckets(rate_per_minute, burst, clock)
        self.failures = TokenBuckets(rate_per_minute, burst, clock)
        self.good: OrderedDict[str, None] = OrderedDict()  # credential keys that authenticated

    def admit(self, scope: Scope) -> tuple[float, tuple[str, str]]:
        """(seconds to wait, 0 to go ahead; the keys ``outcome`` takes)."""
        address = "fail:" + client_address(scope)
        key = credential_key(scope)
        wait = 0.0 if key in self.good else self.failures.wait(address)
        return wait or self.buckets.take(key), (key, address)

    def outcome(self, keys: tuple[str, str], status: int) -> None:
        key, address = keys
        if status == 401:
            self.failures.take(address)
            self.good.pop(key, None)
        elif key.startswith("cred:"):
            self.good[key] = None
            self.good.move_to_end(key)
            if len(self.good) > self.KNOWN_GOOD:
                self.good.popitem(last=False)


# -- time --------------------------------------------------------------------------------------


class RequestLimits:
    """Every limit and the audit trail as one ASGI middleware: the audit outermost (it records
    the limits' refusals too), then the limits in the order of the old four (rate, the
    cheapest refusal; storable text; body size; then the timeout around the app). One layer
    and one send wrapper per request instead of five of each (bench/RESULTS.md §1). Every
    answer, the refusals included, counts for the rate limiter's 401 bookkeeping."""

    def __init__(self, app: ASGIApp, limits: Limits, audit: RequestAudit | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.limits = limits
        self.audit = audit
        self.rate = RateLimiter(limits.rate_per_minute, limits.burst, clock) if limits.rate_per_minute > 0 else None
        self._abandoned: set[asyncio.Task[None]] = set()  # keep references until they end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        audited = self.audit.open(scope) if self.audit is not None else None
        try:
            await self._limited(_Exchange(send, audited), scope, receive)
        except BaseException:
            if audited is not None:
                await audited.failed()
            raise
        finally:
            if audited is not None:
                audited.close()

    async def _limited(self, exchange: _Exchange, scope: Scope, receive: Receive) -> None:
        rate = self.rate
        if rate is not None and str(scope.get("path", "")).startswith(API_PREFIX):
            wait, exchange.watched = rate.admit(scope)
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                await problem(429, f"too many requests for this credential; retry after {retry_after} s",
                              instance=scope.get("path"), headers={"Retry-After": str(retry_after)},
                              )(scope, receive, exchange.answer)
                return
            exchange.rate = rate
        refusal = unstorable_refusal(scope)
        limit = body_limit(scope, self.limits)
        if refusal is None and limit > 0:
            detail = f"request body is larger than {limit} bytes"
            declared = _header(scope, b"content-length")
            if declared is not None and declared.strip().isdigit() and int(declared) > limit:
                refusal = problem(413, detail, instance=scope.get("path"))
            receive = counted(receive, limit, detail)
        if refusal is not None:
            await refusal(scope, receive, exchange.answer)
        elif self.limits.timeout_s > 0:
            await self._timed(scope, receive, exchange)
        else:
            await self.app(scope, receive, exchange.answer)

    async def _timed(self, scope: Scope, receive: Receive, exchange: _Exchange) -> None:
        """A request that has not started its response within the timeout gets a 503."""
        # One future settles the race between the response starting, the handler ending and
        # the clock (no waiter task and no asyncio.wait per request: this is on every call).
        timeout_s = self.limits.timeout_s
        loop = asyncio.get_running_loop()
        exchange.first = first = loop.create_future()
        task = asyncio.ensure_future(self.app(scope, receive, exchange.guarded))
        task.add_done_callback(exchange.settle)
        timer = loop.call_later(timeout_s, exchange.settle)
        try:
            await first
        finally:
            timer.cancel()
        if task.done() or exchange.started:
            await task
            return
        exchange.timed_out = True
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)
        detail = (f"no response within {timeout_s:g} s; the request may still complete "
                  "(retry a write with the same Idempotency-Key)")
        await problem(503, detail, slug="timeout", instance=scope.get("path"),
                      headers={"Retry-After": "1"})(scope, receive, exchange.answer)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # nobody awaits an abandoned request: mark its failure as seen


class _Exchange:
    """One request's answer on its way out: the one send wrapper of ``RequestLimits``."""

    __slots__ = ("audited", "first", "rate", "send", "started", "timed_out", "watched")

    def __init__(self, send: Send, audited: AuditedRequest | None) -> None:
        self.send = send
        self.audited = audited
        self.rate: RateLimiter | None = None
        self.watched: tuple[str, str] | None = None
        self.first: asyncio.Future[None] | None = None
        self.started = self.timed_out = False

    def settle(self, *_: Any) -> None:
        first = self.first
        if first is not None and not first.done():
            first.set_result(None)

    async def guarded(self, message: Message) -> None:
        """``answer`` for the app under a timeout: nothing after the client had its 503."""
        if self.timed_out:
            return
        if message["type"] == "http.response.start":
            self.started = True
            self.settle()
        await self.answer(message)

    async def answer(self, message: Message) -> None:
        if self.rate is not None and message["type"] == "http.response.start":
            self.rate.outcome(self.watched, int(message["status"]))  # type: ignore[arg-type]
        if self.audited is not None:
            await self.audited.send(message, self.send)
        else:
            await self.send(message)


# -- wiring ------------------------------------------------------------------------------------


def install(app: FastAPI, settings: Settings, audit: RequestAudit | None = None) -> None:
    """The one request middleware: the audit (outermost) and every limit."""
    app.add_middleware(RequestLimits, limits=Limits.from_settings(settings), audit=audit)
    document_problem_responses(app)


_DESCRIPTIONS = {
    400: "malformed request (for example a cursor this API did not issue)",
    401: "missing, unknown or revoked bearer token",
    403: "the credential may not do this",
    404: "not found",
    409: "conflicts with what is already recorded",
    413: "request body too large (LIANXI_MAX_BODY_BYTES)",
    422: "invalid request or a broken business rule",
    429: "rate limit for this credential reached (LIANXI_RATE_LIMIT_PER_MINUTE); see Retry-After",
    503: "unavailable or no response within LIANXI_REQUEST_TIMEOUT_S; see Retry-After",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
_WRITE_METHODS = {"post", "put", "patch", "delete"}


def _problem_codes(path: str, method: str) -> list[int]:
    if not path.startswith(API_PREFIX):
        return []  # health probes document their own answers
    codes = [400, 401, 403, 422, 429, 503]
    if "{" in path:
        codes.append(404)
    if method in _WRITE_METHODS:
        codes += [409, 413]
    return sorted(codes)


def document_problem_responses(app: FastAPI) -> None:
    """Every 4xx/5xx answer is problem+json (services/api/problems.py); say so in OpenAPI,
    replacing FastAPI's default 422 shape, which this API never sends."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components["Problem"] = problem_schema
        ref = {"$ref": "#/components/schemas/Problem"}
        for path, operations in schema.get("paths", {}).items():
            for method, op in operations.items():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                responses: dict[str, Any] = op["responses"]
                for status in _problem_codes(path, method):
                    responses.setdefault(str(status), {"description": _DESCRIPTIONS.get(status, "problem")})
                for key, response in responses.items():
                    if not key.isdigit() or int(key) < 400 or not path.startswith(API_PREFIX):
                        continue
                    response["content"] = {MEDIA_TYPE: {"schema": ref}}
                    if key in ("429", "503"):
                        response.setdefault("headers", {}).update(_RETRY_AFTER)
        for name in ("HTTPValidationError", "ValidationError"):
            if not _referenced(schema, name):
                components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _referenced(schema: dict[str, Any], name: str) -> bool:
    import orjson

    return f'"#/components/schemas/{name}"'.encode() in orjson.dumps(schema)
