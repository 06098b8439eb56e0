"""Resource limits (OWASP API4): body size, page size, text lengths, rate, time. Each is a
LIANXI_* setting; every test sets it explicitly and checks both sides of the limit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.catalogue import default_catalogue
from services.api.deps import MAX_PAGE
from services.api.limits import TokenBuckets
from services.api.main import create_app
from services.platform import Platform
from tests.conftest import FIXED_NOW, Api, make_platform

ROOT = Path(__file__).resolve().parent.parent
DUTY = {"duty_code": "fire-rescue.inspection", "occurred_on": "2025-06-01", "summary": "消防安全检查"}


@pytest.fixture
def limited(sqlite_url: str, request: pytest.FixtureRequest) -> Iterator[Api]:
    """An Api whose platform takes the settings given by ``settings(...)``."""
    settings: dict[str, Any] = getattr(request, "param", {})
    p = make_platform(sqlite_url, **settings)
    p.app.register_catalogue(default_catalogue(), now=FIXED_NOW.replace(year=2024))
    p.runner.catch_up()
    yield Api(p)
    p.close()


def settings(**values: Any) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("limited", [values], indirect=True, ids=[",".join(values)])


def head(p: Platform) -> int:
    return p.app.recorder.max_notification_id() or 0


def is_problem(r: Any, status: int) -> bool:
    return bool(r.status_code == status and r.headers["content-type"].startswith("application/problem+json")
                and r.json()["status"] == status)


# -- body size ---------------------------------------------------------------------------------


@settings(max_body_bytes=2000)
def test_a_body_over_the_limit_is_refused_with_413_and_nothing_is_written(limited: Api) -> None:
    h = limited.as_("fire-rescue")
    before = head(limited.platform)
    big = {**DUTY, "summary": "检" * 1000}  # ~3 kB of UTF-8
    r = limited.client.post("/api/v1/duty-logs", json=big, headers=h)
    assert is_problem(r, 413), r.text
    assert "2000 bytes" in r.json()["detail"]
    # A chunked body (no Content-Length) is counted as it arrives.
    r = limited.client.post("/api/v1/duty-logs", content=(b" " * 500 for _ in range(10)),
                            headers={**h, "Content-Type": "application/json"})
    assert is_problem(r, 413), r.text
    assert head(limited.platform) == before
    # Just under the limit goes through.
    r = limited.client.post("/api/v1/duty-logs", json={**DUTY, "summary": "检" * 300}, headers=h)
    assert r.status_code == 201, r.text


@settings(max_body_bytes=0)
def test_the_body_limit_can_be_turned_off(limited: Api) -> None:
    body = {**DUTY, "summary": "x" * 2_000_000}
    r = limited.client.post("/api/v1/duty-logs", json=body, headers=limited.as_("fire-rescue"))
    assert r.status_code == 422  # the summary's own bound, not the body limit
    assert "4000" in r.text


# -- page size and text lengths ---------------------------------------------------------------


def test_page_size_is_capped(limited: Api) -> None:
    h = limited.as_("education", "auditor")
    for path in ("/api/v1/schools", "/api/v1/events", "/api/v1/audit"):
        assert limited.client.get(f"{path}?limit={MAX_PAGE}", headers=h).status_code == 200, path
        r = limited.client.get(f"{path}?limit={MAX_PAGE + 1}", headers=h)
        assert is_problem(r, 422), path


def test_the_page_cap_comes_from_the_environment(tmp_path: Path) -> None:
    script = (
        "from fastapi.testclient import TestClient\n"
        "from services.api.main import create_app\n"
        "from services.platform import Platform\n"
        "p = Platform()\n"
        "c = TestClient(create_app(p))\n"
        "doc = c.get('/openapi.json').json()\n"
        "limit = next(x for x in doc['paths']['/api/v1/schools']['get']['parameters'] if x['name'] == 'limit')\n"
        "print(limit['schema']['maximum'])\n"
        "p.close()\n"
    )
    env = {**os.environ, "LIANXI_MAX_PAGE_SIZE": "7", "LIANXI_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "7"


def _bounded_pattern(pattern: str | None) -> bool:
    """An anchored pattern with no open-ended repetition bounds the length by itself."""
    if not pattern or not (pattern.startswith("^") and pattern.endswith("$")):
        return False
    bare = re.sub(r"\\.", "", pattern)  # escaped characters
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # character classes
    return not re.search(r"[*+]|\{\d*,\}", bare)


def _unbounded(schema: dict[str, Any], components: dict[str, Any], where: str, seen: set[str]) -> list[str]:
    """Strings without maxLength, arrays without maxItems, free-form objects: anywhere in a
    request schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        return _unbounded(components[name], components, f"{where}", seen | {name})
    out: list[str] = []
    for key in ("anyOf", "oneOf", "allOf"):
        alternatives = schema.get(key, [])
        numeric = any(a.get("type") in ("number", "integer") for a in alternatives)
        for sub in alternatives:
            if numeric and sub == {"type": "string"}:
                continue  # pydantic's Decimal: a number or its text, bounded by max_digits
            out += _unbounded(sub, components, where, seen)
    kind = schema.get("type")
    if kind == "string" and "maxLength" not in schema and "enum" not in schema and "const" not in schema \
            and schema.get("format") not in ("date", "date-time", "uuid") \
            and not _bounded_pattern(schema.get("pattern")):
        out.append(f"{where}: string without maxLength")
    if kind == "array":
        if "maxItems" not in schema:
            out.append(f"{where}: array without maxItems")
        out += _unbounded(schema.get("items", {}), components, f"{where}[]", seen)
    if kind == "object" or "properties" in schema:
        if schema.get("additionalProperties", True) is not False and "maxProperties" not in schema:
            out.append(f"{where}: object open to any property")
        for name, sub in schema.get("properties", {}).items():
            out += _unbounded(sub, components, f"{where}.{name}", seen)
    return out


def test_every_text_field_list_and_parameter_a_client_sends_is_bounded(limited: Api) -> None:
    """A new request model or query parameter without a length bound fails here."""
    doc = limited.client.get("/openapi.json").json()
    components = doc.get("components", {}).get("schemas", {})
    problems: list[str] = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            for param in op.get("parameters", []):
                if param["in"] in ("query", "header"):
                    problems += _unbounded(param.get("schema", {}), components, f"{where} {param['name']}", set())
            for media in op.get("requestBody", {}).get("content", {}).values():
                problems += _unbounded(media.get("schema", {}), components, f"{where} body", set())
    assert problems == [], "\n".join(problems)


def test_over_long_text_is_refused(limited: Api) -> None:
    r = limited.client.post("/api/v1/duty-logs", json={**DUTY, "summary": "长" * 4001},
                            headers=limited.as_("fire-rescue"))
    assert is_problem(r, 422) and r.json()["errors"][0]["loc"] == ["body", "summary"]


# -- rate ----------------------------------------------------------------------------------------


@settings(rate_limit_per_minute=3)
def test_each_credential_has_its_own_rate_limit_with_retry_after(limited: Api) -> None:
    a, b = limited.as_("fire-rescue"), limited.as_("public-security")
    assert [limited.client.get("/api/v1/agencies", headers=a).status_code for _ in range(3)] == [200] * 3
    r = limited.client.get("/api/v1/agencies", headers=a)
    assert is_problem(r, 429)
    assert int(r.headers["Retry-After"]) >= 1
    # Writes count too, and are refused before anything is written.
    before = head(limited.platform)
    assert is_problem(limited.client.post("/api/v1/duty-logs", json=DUTY, headers=a), 429)
    assert head(limited.platform) == before
    # Another credential is not affected; health probes are never limited.
    assert limited.client.get("/api/v1/agencies", headers=b).status_code == 200
    assert all(limited.client.get("/healthz").status_code == 200 for _ in range(10))


@settings(rate_limit_per_minute=2)
def test_requests_without_a_credential_are_limited_by_address(limited: Api) -> None:
    codes = [limited.client.get("/api/v1/agencies").status_code for _ in range(3)]
    assert codes == [401, 401, 429]


@settings(rate_limit_per_minute=3)
def test_rotating_made_up_tokens_does_not_escape_the_limit(limited: Api) -> None:
    valid = limited.as_("fire-rescue")
    assert limited.client.get("/api/v1/agencies", headers=valid).status_code == 200
    forged = [limited.client.get("/api/v1/agencies", headers={"Authorization": f"Bearer lx_forged{i}"}).status_code
              for i in range(4)]
    assert forged == [401, 401, 401, 429]  # a new token each time, one address
    # A credential that already worked from this address is not locked out with them.
    assert limited.client.get("/api/v1/agencies", headers=valid).status_code == 200


@settings(rate_limit_per_minute=0)
def test_the_rate_limit_can_be_turned_off(limited: Api) -> None:
    h = limited.as_("fire-rescue")
    assert all(limited.client.get("/api/v1/agencies", headers=h).status_code == 200 for _ in range(60))


def test_token_buckets_refill_at_the_configured_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate_per_minute=6, burst=2, clock=lambda: now[0])
    assert buckets.take("k") == 0 and buckets.take("k") == 0
    assert buckets.take("k") == pytest.approx(10.0)  # one token every 10 s
    now[0] = 5.0
    assert buckets.take("k") == pytest.approx(5.0)
    now[0] = 10.0
    assert buckets.take("k") == 0
    now[0] = 1000.0  # a long pause saves up at most the burst
    assert [buckets.take("k") == 0 for _ in range(3)] == [True, True, False]


def test_token_buckets_forget_full_buckets_when_crowded() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate_per_minute=60, burst=1, clock=lambda: now[0])
    buckets.MAX_KEYS = 10
    for i in range(10):
        buckets.take(f"k{i}")
    now[0] = 5.0  # all refilled
    buckets.take("new")
    assert len(buckets._buckets) == 1


# -- time ------------------------------------------------------------------------------------------


def _slow_app(platform: Platform, release: threading.Event) -> Any:
    app = create_app(platform)

    def slow() -> dict[str, str]:
        release.wait(timeout=30)
        return {"status": "done"}

    app.add_api_route("/api/v1/_slow", slow, methods=["GET"])
    return app


@settings(request_timeout_s=1.0)
def test_a_request_that_takes_too_long_gets_503(limited: Api) -> None:
    release = threading.Event()
    with TestClient(_slow_app(limited.platform, release)) as client:
        try:
            r = client.get("/api/v1/_slow", headers=limited.as_("fire-rescue"))
            assert is_problem(r, 503), r.text
            assert r.json()["type"] == "urn:lianxi:problem:timeout"
            assert r.headers["Retry-After"] == "1"
            assert "may still complete" in r.json()["detail"]
        finally:
            release.set()
        # Fast requests are untouched.
        assert client.get("/healthz").status_code == 200


@settings(request_timeout_s=0)
def test_the_timeout_can_be_turned_off(limited: Api) -> None:
    release = threading.Event()
    timer = threading.Timer(0.5, release.set)
    timer.start()
    with TestClient(_slow_app(limited.platform, release)) as client:
        r = client.get("/api/v1/_slow")
    timer.join()
    assert r.status_code == 200 and r.json() == {"status": "done"}


def test_limit_problems_are_documented_in_openapi(limited: Api) -> None:
    doc = limited.client.get("/openapi.json").json()
    post = doc["paths"]["/api/v1/duty-logs"]["post"]["responses"]
    for code in ("401", "403", "409", "413", "422", "429", "503"):
        assert "application/problem+json" in post[code]["content"], code
    assert "Retry-After" in post["429"]["headers"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
