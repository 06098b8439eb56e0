"""GET /api/v1/reviews/{year} (lead and auditor), a unit's own part, and the appeal endpoints."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Api, Clock
from tests.test_review import build_county

NOW = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)
AS_OF = "2026-01-31T08:00:00+00:00"


@pytest.fixture(autouse=True)
def checkpoint_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANXI_CHECKPOINT_KEY", str(tmp_path / "checkpoint.key"))


@pytest.fixture
def county(api: Api, clock: Clock) -> Api:
    build_county(api.platform)
    clock.now = NOW
    return api


@pytest.fixture
def sqlite_county(sqlite_api: Api, clock: Clock) -> Api:
    build_county(sqlite_api.platform)
    clock.now = NOW
    return sqlite_api


def deduction(api: Api, unit: str, clause: str) -> dict[str, Any]:
    r = api.client.get(f"/api/v1/reviews/2025/units/{unit}", headers=api.as_(unit))
    assert r.status_code == 200, r.text
    c = next(c for c in r.json()["unit"]["clauses"] if c["clause"] == clause)
    return dict(c["items"][0])


def test_lead_and_auditor_read_the_review_byte_identically(county: Api) -> None:
    url, q = "/api/v1/reviews/2025", {"as_of": AS_OF}
    lead = county.client.get(url, params=q, headers=county.as_("education", "lead"))
    auditor = county.client.get(url, params=q, headers=county.as_("education", "auditor"))
    assert lead.status_code == 200 and lead.headers["content-type"] == "application/json"
    again = county.client.get(url, params=q, headers=county.as_("education", "lead"))
    assert lead.content == auditor.content == again.content
    doc = orjson.loads(lead.content)
    assert doc["format"] == "lianxi-review/1" and len(doc["ranking"]) == 21
    assert doc["checkpoint"]["position"] > 0 and doc["rules"]["name"] == "review-2025.v1"


def test_who_may_read_the_review(sqlite_county: Api) -> None:
    c = sqlite_county.client
    assert c.get("/api/v1/reviews/2025").status_code == 401
    assert c.get("/api/v1/reviews/2025", headers=sqlite_county.as_("fire-rescue")).status_code == 403
    own = c.get("/api/v1/reviews/2025/units/fire-rescue", headers=sqlite_county.as_("fire-rescue"))
    assert own.status_code == 200 and own.json()["unit"]["unit"] == "fire-rescue"
    other = c.get("/api/v1/reviews/2025/units/public-security", headers=sqlite_county.as_("fire-rescue"))
    assert other.status_code == 403 and other.headers["content-type"] == "application/problem+json"
    assert c.get("/api/v1/reviews/2025/units/nowhere",
                 headers=sqlite_county.as_("education", "lead")).status_code == 404


def test_formats_rules_and_bad_input(sqlite_county: Api) -> None:
    c, h = sqlite_county.client, sqlite_county.as_("education", "auditor")
    html = c.get("/api/v1/reviews/2025", params={"format": "html", "as_of": AS_OF}, headers=h)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "考核排名" in html.text
    docx = c.get("/api/v1/reviews/2025?format=docx&as_of=2026-01-31", headers=h)
    assert docx.status_code == 200 and "attachment" in docx.headers["content-disposition"]
    assert "word/document.xml" in zipfile.ZipFile(io.BytesIO(docx.content)).namelist()
    compare = c.get("/api/v1/reviews/2025?compare_rules=review-2025.v1", headers=h)
    assert compare.status_code == 200 and compare.json()["format"] == "lianxi-review-compare/1"
    for bad in ("rules=../../etc/passwd", "rules=review-1999.v1", "as_of=yesterday", "as_of=2026-01-31T08:00"):
        r = c.get(f"/api/v1/reviews/2025?{bad}", headers=h)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", bad
    assert c.get("/api/v1/reviews/1066", headers=h).status_code == 422


def test_a_unit_appeals_its_own_deduction_and_the_lead_decides(county: Api) -> None:
    c = county.client
    item = deduction(county, "public-security", "10")
    url = "/api/v1/reviews/2025/units/public-security/appeals"
    body = {"clause": "10", "item": item["item"], "reason": "会议通知未送达"}
    assert c.post(url, json=body).status_code == 401
    assert c.post(url, json=body, headers=county.as_("fire-rescue")).status_code == 403  # another unit
    assert c.post(url, json=body, headers=county.as_("public-security", "auditor")).status_code == 403
    assert c.post(url, json={**body, "unit": "fire-rescue"},
                  headers=county.as_("public-security")).status_code == 422  # the unit comes from the token
    not_ours = {**body, "item": deduction(county, "fire-rescue", "2")["item"], "clause": "2"}  # a fire duty
    assert c.post(url, json=not_ours, headers=county.as_("public-security")).status_code == 422
    filed = c.post(url, json=body, headers=county.as_("public-security"))
    assert filed.status_code == 201, filed.text
    appeal_id = filed.json()["id"]
    assert c.post(url, json=body, headers=county.as_("public-security")).status_code == 409

    decide = f"/api/v1/reviews/2025/appeals/{appeal_id}/decision"
    verdict = {"upheld": True, "reason": "经核实通知未送达"}
    assert c.post(decide, json=verdict).status_code == 401
    assert c.post(decide, json=verdict, headers=county.as_("public-security")).status_code == 403
    assert c.post(decide, json=verdict, headers=county.as_("education", "auditor")).status_code == 403
    assert c.post("/api/v1/reviews/2025/appeals/not-a-uuid/decision", json=verdict,
                  headers=county.as_("education", "lead")).status_code == 404
    assert c.post(f"/api/v1/reviews/2024/appeals/{appeal_id}/decision", json=verdict,
                  headers=county.as_("education", "lead")).status_code == 404
    assert c.post(decide, json={"upheld": True}, headers=county.as_("education", "lead")).status_code == 422
    ok = c.post(decide, json=verdict, headers=county.as_("education", "lead"))
    assert ok.status_code == 200, ok.text
    assert c.post(decide, json=verdict, headers=county.as_("education", "lead")).status_code == 409

    after = c.get("/api/v1/reviews/2025/units/public-security", headers=county.as_("public-security")).json()
    entry = next(i for cl in after["unit"]["clauses"] if cl["clause"] == "10" for i in cl["items"])
    assert entry["counted"] is False and entry["appeal"]["status"] == "upheld"
    assert after["appeals"][0]["decision_reason"] == "经核实通知未送达"


def test_a_tampered_log_gets_409_and_no_review(sqlite_county: Api) -> None:
    with sqlite_county.platform.write_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE stored_events SET topic = topic || 'x' WHERE rowid = 40")
    r = sqlite_county.client.get("/api/v1/reviews/2025", headers=sqlite_county.as_("education", "lead"))
    assert r.status_code == 409 and "position 40" in r.json()["detail"]
