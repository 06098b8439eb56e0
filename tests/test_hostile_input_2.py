"""Issue 17, hostile input round two, the remaining classes, each on SQLite and PostgreSQL:

6. a write's audit row commits in the write's own transaction (group commit included);
7. assignments only by the lead, whatever path creates a rectification;
8. every create with an Idempotency-Key replays the first answer for the same body;
9. pinned checkpoint trust;
10. the smaller mismatches.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contracts.catalogue import default_catalogue
from services.platform import Platform
from services.security.audit import audit_log
from services.web.session import SIGNIN_COOKIE
from tests.conftest import FIXED_NOW, Api, Clock, make_platform, register_schools
from tests.zygote import run_cli

DUTY = {"duty_code": "fire-rescue.inspection", "school_ids": ["T001"], "occurred_on": "2025-06-01",
        "summary": "消防安全检查"}
HAZARD = {"reported_by": {"kind": "unit", "units": []}, "school_id": "T001", "category": "fire",
          "severity": "general", "description": "灭火器过期", "found_on": "2025-06-01"}


@pytest.fixture(params=["direct", "group-commit"])
def county(request: pytest.FixtureRequest, database_url: str, clock: Clock) -> Iterator[Api]:
    """An API over a platform with two schools; with and without the group commit."""
    p = make_platform(database_url, clock=clock, group_commit=request.param == "group-commit")
    p.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    p.runner.catch_up()
    api = Api(p)
    register_schools(api, 2)
    yield api
    p.close()


def audit_rows(api: Api) -> list[dict[str, Any]]:
    with api.platform.write_engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.id)).mappings()]


# -- 6. the audit row in the write's transaction ----------------------------------------------------


def lose_the_middlewares_own_rows(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The middleware's own commit (after the answer is known) never happens, as when the
    process dies right after the write's commit. Returns the rows it would have written."""
    lost: list[dict[str, Any]] = []

    async def dies(row: dict[str, Any]) -> None:
        lost.append(row)
        raise RuntimeError("killed before the audit commit")

    monkeypatch.setattr(api.platform.audit, "append_async", dies)
    return lost


def test_every_kind_of_write_commits_its_audit_row_with_the_write(county: Api,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    c = county.client
    fire = county.as_("fire-rescue")
    county.token("fire-rescue")  # issued before the middleware's commits are cut off
    lost = lose_the_middlewares_own_rows(county, monkeypatch)
    before = len(audit_rows(county))
    duty = c.post("/api/v1/duty-logs", json=DUTY, headers=fire)  # async route, awaits the commit
    hazard = c.post("/api/v1/hazards", json=HAZARD, headers=fire)  # sync route, decide/commit
    email = c.put("/api/v1/inbox/channels/webhook", json={"url": "https://hooks.example.org/lx"}, headers=fire)
    marked = c.post("/api/v1/inbox/read", json={"all": True}, headers=fire)  # a table write, no event
    assert [r.status_code for r in (duty, hazard, email, marked)] == [201, 201, 200, 200], [
        r.text for r in (duty, hazard, email, marked)]
    rows = audit_rows(county)[before:]
    got = [(r["action"], r["status"], r["outcome"], r["unit"]) for r in rows]
    assert got == [
        ("POST /api/v1/duty-logs", 201, "ok", "fire-rescue"),
        ("POST /api/v1/hazards", 201, "ok", "fire-rescue"),
        ("PUT /api/v1/inbox/channels/webhook", 200, "ok", "fire-rescue"),
        ("POST /api/v1/inbox/read", 200, "ok", "fire-rescue"),
    ]
    assert rows[0]["resource_id"] == duty.json()["id"] and rows[1]["resource_id"] == hazard.json()["id"]
    assert not lost  # nothing was left for the middleware to write


def test_requests_that_wrote_nothing_still_get_the_middlewares_row(county: Api) -> None:
    c = county.client
    fire = county.as_("fire-rescue")
    first = c.post("/api/v1/duty-logs", json=DUTY, headers={**fire, "Idempotency-Key": "k1"})
    replay = c.post("/api/v1/duty-logs", json=DUTY, headers={**fire, "Idempotency-Key": "k1"})
    refused = c.post("/api/v1/duty-logs", json=DUTY, headers=county.as_("education", "auditor"))
    wrong = c.post("/api/v1/duty-logs", json={**DUTY, "school_ids": ["NOPE"]}, headers=fire)
    assert (first.status_code, replay.status_code, refused.status_code, wrong.status_code) == (201, 201, 403, 422)
    rows = [r for r in audit_rows(county) if r["action"] == "POST /api/v1/duty-logs"]
    # one row per request: the write's (carried by its commit), the replay's, the refusal's, the rejection's
    assert [(r["status"], r["outcome"]) for r in rows] == [(201, "ok"), (201, "ok"), (403, "refused"),
                                                           (422, "rejected")]
    assert rows[0]["resource_id"] == rows[1]["resource_id"] == first.json()["id"]


def test_a_commit_that_fails_leaves_no_row_and_the_refusal_is_recorded(county: Api) -> None:
    """A write whose commit is refused (here: the same school registered twice) leaves no
    carried row behind; the middleware records the failure instead."""
    lead = county.as_("education", "lead")
    school = {"id": "T001", "name": "重名学校", "town": "满都拉图镇", "kind": "primary"}
    again = county.client.post("/api/v1/schools", json=school, headers=lead)
    assert again.status_code == 409, again.text
    rows = [r for r in audit_rows(county) if r["action"] == "POST /api/v1/schools"]
    assert [(r["status"], r["outcome"]) for r in rows][-1] == (409, "rejected")
    assert sum(r["outcome"] == "ok" for r in rows) == 2  # the fixture's two schools, one row each


def test_a_page_form_write_carries_its_row(county: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page's POST (sign-in creates a session, a table write) carries its row too; its
    status is the page's redirect."""
    token = county.token("fire-rescue")
    lose_the_middlewares_own_rows(county, monkeypatch)
    county.client.get("/signin")
    csrf = county.client.cookies.get(SIGNIN_COOKIE) or ""
    signed = county.client.post("/signin", data={"token": token, "csrf_token": csrf}, follow_redirects=False)
    assert signed.status_code == 303, signed.text[:300]
    row = [r for r in audit_rows(county) if r["action"] == "POST /signin"][-1]
    assert (row["status"], row["outcome"]) == (303, "ok")


# -- 9. pinned checkpoint trust -----------------------------------------------------------------------


def lianxi(args: list[str], url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(args, env={**os.environ, "LIANXI_DATABASE_URL": url, "LIANXI_CHECKPOINT_TRUSTED_KEY": "", **env},
                   timeout=180)


def resigned(cp_file: Path, out: Path) -> Path:
    """The same checkpoint (position, head, time), signed by some other key: valid in itself."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from services.security.checkpoint import Checkpoint, public_hex

    cp = Checkpoint.read(cp_file)
    other = Ed25519PrivateKey.generate()
    forged = Checkpoint(position=cp.position, head_hash=cp.head_hash, time=cp.time, public_key=public_hex(other),
                        signature=other.sign(Checkpoint.payload(cp.position, cp.head_hash, cp.time)).hex())
    forged.check_signature()  # a well-formed, correctly signed checkpoint
    out.write_bytes(forged.to_json())
    return out


def test_a_checkpoint_is_trusted_only_when_signed_by_the_pinned_key(platform: Platform, database_url: str,
                                                                    tmp_path: Path) -> None:
    register_schools(Api(platform), 2)
    signing = {"LIANXI_CHECKPOINT_KEY": str(tmp_path / "platform" / "checkpoint.key")}
    elsewhere = {"LIANXI_CHECKPOINT_KEY": str(tmp_path / "auditor" / "no-key-here")}  # a machine with no key file
    cp_file, pem = tmp_path / "cp.json", tmp_path / "platform.pub"
    made = lianxi(["checkpoint", "-o", str(cp_file), "--public-key-out", str(pem)], database_url, **signing)
    assert made.returncode == 0, made.stderr
    hex_key = json.loads(cp_file.read_text())["public_key"]
    assert f"signed with public key {hex_key}" in made.stderr and b"BEGIN PUBLIC KEY" in pem.read_bytes()
    forged = resigned(cp_file, tmp_path / "forged.json")

    # pinned on the command line (the exported PEM, or the hex digits)
    for pin in (str(pem), hex_key):
        ok = lianxi(["verify", "--checkpoint", str(cp_file), "--public-key", pin], database_url, **elsewhere)
        assert ok.returncode == 0 and f"signed by the trusted key {hex_key[:16]}" in ok.stdout, ok.stderr
        bad = lianxi(["verify", "--checkpoint", str(forged), "--public-key", pin], database_url, **elsewhere)
        assert bad.returncode == 1 and "not by this platform's key" in bad.stderr, bad.stdout + bad.stderr
    # pinned in the configuration
    configured = {**elsewhere, "LIANXI_CHECKPOINT_TRUSTED_KEY": str(pem)}
    bad = lianxi(["verify", "--checkpoint", str(forged)], database_url, **configured)
    assert bad.returncode == 1 and "not by this platform's key" in bad.stderr
    ok = lianxi(["verify", "--checkpoint", str(cp_file)], database_url, **configured)
    assert ok.returncode == 0 and "LIANXI_CHECKPOINT_TRUSTED_KEY" in ok.stdout
    # the platform's own machine trusts its signing key file
    bad = lianxi(["verify", "--checkpoint", str(forged)], database_url, **signing)
    assert bad.returncode == 1 and "not by this platform's key" in bad.stderr


def test_verify_without_a_pinned_key_says_the_signature_was_not_checked(platform: Platform, database_url: str,
                                                                          tmp_path: Path) -> None:
    register_schools(Api(platform), 1)
    cp_file = tmp_path / "cp.json"
    assert lianxi(["checkpoint", "-o", str(cp_file)], database_url,
                  LIANXI_CHECKPOINT_KEY=str(tmp_path / "k" / "checkpoint.key")).returncode == 0
    forged = resigned(cp_file, tmp_path / "forged.json")
    nowhere = {"LIANXI_CHECKPOINT_KEY": str(tmp_path / "none" / "checkpoint.key")}
    for f in (cp_file, forged):
        out = lianxi(["verify", "--checkpoint", str(f)], database_url, **nowhere)
        assert out.returncode == 0, out.stderr
        assert "NOT checked against a trusted key" in out.stdout and "signed by the trusted key" not in out.stdout
    for wrong in ("abc", str(tmp_path / "cp.json")):  # neither hex digits nor a key file
        out = lianxi(["verify", "--checkpoint", str(cp_file), "--public-key", wrong], database_url, **nowhere)
        lines = [x for x in out.stderr.splitlines() if x.strip()]
        assert out.returncode == 1 and len(lines) == 1 and "public key" in lines[0], out.stderr


# -- 7. assignments only by the lead; 8. every Idempotency-Key create replays ------------------------

FIXED_NOW_DAY = FIXED_NOW
LAUNCH = datetime(2025, 3, 22, 1, 0, tzinfo=UTC)
INSPECTION_DAY = datetime(2025, 3, 28, 2, 0, tzinfo=UTC)
FIRE_ASPECTS = [a.code for a in next(c for c in default_catalogue().campaigns.campaigns
                                     if c.code == "fire-safety").aspects]


@pytest.fixture
def campaign(api: Api, clock: Clock) -> str:
    clock.now = LAUNCH - timedelta(days=1)
    register_schools(api, 3)
    clock.now = LAUNCH
    r = api.client.post("/api/v1/campaigns", json={"year": 2025, "template": "fire-safety"},
                        headers=api.as_("education", "lead"))
    assert r.status_code == 201, r.text
    clock.now = INSPECTION_DAY
    return str(r.json()["id"])


def inspection_body(**over: Any) -> dict[str, Any]:
    return {"units": ["public-security"], "school_ids": ["T001", "T002"], "occurred_on": "2025-03-28",
            "summary": "联合督查",
            "findings": [
                # the liaison names a unit outside the inspection and a deadline of today
                {"school_id": "T001", "aspect": FIRE_ASPECTS[0], "description": "责任书未签",
                 "responsible_unit": "urban-management", "deadline": "2025-03-28"},
                {"school_id": "T002", "aspect": FIRE_ASPECTS[1], "description": "消防通道堵塞", "severity": "major"},
            ], **over}


def assignments(api: Api) -> list[dict[str, Any]]:
    """Every RectificationAssigned event in the log."""
    recorder = api.platform.app.recorder
    return [json.loads(n.state) for n in recorder.select_notifications(0, 100_000)
            if n.topic.endswith("RectificationAssigned")]


def test_a_joint_inspections_findings_are_reported_not_assigned(api: Api, campaign: str) -> None:
    r = api.client.post(f"/api/v1/campaigns/{campaign}/joint-inspections", json=inspection_body(),
                        headers=api.as_("fire-rescue"))
    assert r.status_code == 201, r.text
    findings = r.json()["related"]
    assert len(findings) == 2 and assignments(api) == []
    api.settle()
    lead = api.as_("education", "lead")
    for item in findings:
        got = api.client.get(f"/api/v1/rectifications/{item}", headers=lead).json()
        assert (got["status"], got["lead_unit"], got["deadline"]) == ("reported", None, None), got
        assert got["reported_by"] == {"kind": "joint-inspection", "units": ["fire-rescue", "public-security"]}
    proposal = api.client.get(f"/api/v1/rectifications/{findings[0]}", headers=lead).json()["description"]
    assert "督查组建议责任单位" in proposal and "2025-03-28" in proposal  # the proposal, for the lead to weigh
    assignment = {"lead_unit": "fire-rescue", "deadline": "2025-04-27", "measures": ["签订责任书"],
                  "funds": {"amount_cny": "0", "source": "自筹"}}
    for unit in ("fire-rescue", "public-security"):  # the inspectors may not assign what they found
        refused = api.client.post(f"/api/v1/rectifications/{findings[0]}/assignment", json=assignment,
                                  headers=api.as_(unit))
        assert refused.status_code == 403, refused.text
    ok = api.client.post(f"/api/v1/rectifications/{findings[0]}/assignment", json=assignment, headers=lead)
    assert ok.status_code == 200 and ok.json()["status"] == "assigned", ok.text
    [assigned] = assignments(api)
    assert assigned["agency"] == "education" and assigned["logged_by"].startswith("lead:")


def test_no_other_path_assigns_a_rectification(api: Api, campaign: str) -> None:
    """Self-check problems and hazards reported by units are reported, never assigned, whoever
    relays them; only the lead's assignment is in the log."""
    check = api.client.post(f"/api/v1/campaigns/{campaign}/self-checks", headers=api.as_("education"), json={
        "school_id": "T003", "occurred_on": "2025-03-28",
        "results": [{"aspect": a, "passed": i != 0, "problems": [{"description": "制度不健全"}] if i == 0 else []}
                    for i, a in enumerate(FIRE_ASPECTS)]})
    assert check.status_code == 201, check.text
    joint = {**HAZARD, "reported_by": {"kind": "joint-inspection", "units": ["fire-rescue", "urban-management"]}}
    hazard = api.client.post("/api/v1/hazards", json={**joint, "found_on": "2025-03-28"},
                             headers=api.as_("fire-rescue"))
    assert hazard.status_code == 201 and hazard.json()["status"] == "reported", hazard.text
    assert assignments(api) == []


def test_every_create_with_an_idempotency_key_replays_the_first_answer(api: Api, campaign: str,
                                                                        clock: Clock) -> None:
    clock.now = FIXED_NOW_DAY
    warning = {"warning_type": "rainstorm", "level": "yellow", "title": "暴雨黄色预警", "towns": ["满都拉图镇"],
               "valid_from": "2025-06-30T10:00:00+08:00", "valid_until": "2025-07-01T10:00:00+08:00",
               "measures": ["减少户外活动"]}
    creates = [
        ("/api/v1/warnings", warning, {"title": "暴雨橙色预警"}, "meteorology"),
        (f"/api/v1/campaigns/{campaign}/joint-inspections", inspection_body(), {"summary": "另一次督查"},
         "fire-rescue"),
        ("/api/v1/duty-logs", {**DUTY, "occurred_on": "2025-06-29"}, {"summary": "另一条"}, "fire-rescue"),
        ("/api/v1/hazards", HAZARD, {"description": "另一处"}, "fire-rescue"),
        ("/api/v1/compliance-records", {"school_id": "T001", "kind": "drinking-water-test-report",
                                        "period": "2025-Q2", "occurred_on": "2025-06-20",
                                        "evidence": ["https://docs.example/report-0620.pdf"]},
         {"school_id": "T002"}, "housing-construction"),
    ]
    for path, body, change, unit in creates:
        if "joint-inspections" in path:
            clock.now = INSPECTION_DAY
        headers = {**api.as_(unit), "Idempotency-Key": f"retry-{path}"}
        first = api.client.post(path, json=body, headers=headers)
        assert first.status_code == 201, (path, first.text)
        clock.now = FIXED_NOW_DAY + timedelta(days=3)  # later: the warning expired, the phase moved on
        again = api.client.post(path, json=body, headers=headers)
        assert again.status_code == 201, (path, again.text)
        strip = {"replayed"}
        assert {k: v for k, v in again.json().items() if k not in strip} == {
            k: v for k, v in first.json().items() if k not in strip}, path
        other = api.client.post(path, json={**body, **change}, headers=headers)
        assert other.status_code == 409 and "different request body" in other.json()["detail"], (path, other.text)
        clock.now = FIXED_NOW_DAY


# -- 10. smaller mismatches -------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/api/v1/meetings", {"GET", "HEAD", "POST"}),  # one path, a GET route and a POST route
    ("PATCH", "/api/v1/inbox/channels/webhook", {"PUT", "DELETE"}),  # PUT, and DELETE /channels/{channel}
    ("DELETE", "/api/v1/duty-logs", {"POST"}),
])
def test_a_405_lists_every_method_the_path_allows(api: Api, method: str, path: str, allowed: set[str]) -> None:
    r = api.client.request(method, path, headers=api.as_("education", "lead"))
    assert r.status_code == 405 and r.headers["content-type"].startswith("application/problem+json")
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed
