"""Evidence on campaign records: a school's self-check (自查) and a joint inspection (联合督查)
carry uploaded photos, checked like every other record's (only the writer's own uploads), read
by the writer, the lead, auditors, for an inspection the units that took part and those its
findings name, and the units the hazards found are assigned to; stored v1 events (before the
field) load with no evidence. And the sweep of the temporary files a killed upload leaves."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from events.campaigns import JointInspection, SelfCheck
from services.evidence.storage import TMP_PREFIX, FileBlobs
from services.kernel.results import request_digest
from services.platform import Platform
from services.scheduler import LianxiScheduler
from tests.conftest import Api, Clock
from tests.evidence_fixtures import photo_with_gps
from tests.test_campaigns import ASPECTS, LAUNCH, at, passing
from tests.zygote import run_cli


def _uploaded(api: Api, unit: str, colour: str) -> dict[str, Any]:
    r = api.client.post("/api/v1/evidence", headers=api.as_(unit),
                        files=[("files", (f"{colour}.jpg", photo_with_gps(colour), "application/octet-stream"))])
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()["files"][0]
    return out


def _launched(api: Api, clock: Clock) -> str:
    clock.now = LAUNCH
    for i in (1, 2):
        assert api.client.post("/api/v1/schools", headers=api.as_("education", "lead"), json={
            "id": f"T00{i}", "name": f"测试学校{i}", "town": "满都拉图镇", "kind": "primary", "canteen": False,
            "boarding": False, "school_bus": False}).status_code == 201
    r = api.client.post("/api/v1/campaigns", json={"year": 2025, "template": "fire-safety"},
                        headers=api.as_("education", "lead"))
    assert r.status_code == 201, r.text
    clock.now = at("2025-03-28")
    cid: str = r.json()["id"]
    return cid


def _status(api: Api, url: str, *who: tuple[str, str]) -> list[int]:
    return [api.client.get(url, headers=api.as_(unit, role)).status_code for unit, role in who]


def test_self_checks_and_joint_inspections_carry_evidence_read_by_their_units(api: Api, clock: Clock) -> None:
    cid = _launched(api, clock)
    photo = _uploaded(api, "education", "red")
    r = api.client.post(f"/api/v1/campaigns/{cid}/self-checks", headers=api.as_("education"), json={
        "school_id": "T001", "occurred_on": "2025-03-28", "evidence": [photo["ref"]],
        "results": passing(**{ASPECTS[1]: [{"description": "灭火器过期"}]})})
    assert r.status_code == 201, r.text
    check = api.platform.app.repository.get(uuid.UUID(r.json()["id"]))
    assert isinstance(check, SelfCheck) and check.evidence == [photo["ref"]]

    # Another unit's upload is not the writer's to attach.
    foreign = _uploaded(api, "fire-rescue", "green")
    r = api.client.post(f"/api/v1/campaigns/{cid}/self-checks", headers=api.as_("education"), json={
        "school_id": "T002", "occurred_on": "2025-03-28", "evidence": [foreign["ref"]], "results": passing()})
    assert r.status_code == 422 and foreign["digest"] in r.json()["detail"]

    record = _uploaded(api, "fire-rescue", "blue")
    r = api.client.post(f"/api/v1/campaigns/{cid}/joint-inspections", headers=api.as_("fire-rescue"), json={
        "units": ["education"], "school_ids": ["T001"], "occurred_on": "2025-03-28", "summary": "督查",
        "evidence": [record["ref"]],
        "findings": [{"school_id": "T001", "aspect": ASPECTS[3], "description": "巡查记录缺失",
                      "responsible_unit": "public-security"}]})
    assert r.status_code == 201, r.text
    inspection = api.platform.app.repository.get(uuid.UUID(r.json()["id"]))
    assert isinstance(inspection, JointInspection) and inspection.evidence == [record["ref"]]
    api.settle()

    # The self-check photo: its writer (education, acting for the school), the lead, auditors.
    assert _status(api, photo["url"], ("education", "liaison"), ("education", "lead"), ("court", "auditor"),
                   ("fire-rescue", "liaison"), ("public-security", "liaison")) == [200, 200, 200, 403, 403]
    # The inspection record: the inspecting units and the unit a finding names, nobody else.
    assert _status(api, record["url"], ("fire-rescue", "liaison"), ("education", "liaison"),
                   ("public-security", "liaison"), ("market-supervision", "liaison"),
                   ("court", "auditor")) == [200, 200, 200, 403, 200]
    assert _status(api, record["thumbnail_url"], ("public-security", "liaison"),
                   ("market-supervision", "liaison")) == [200, 403]

    # The unit the lead assigns a finding's hazard to rectifies what the photos show: it reads them.
    [finding] = r.json()["related"]
    assert api.client.post(f"/api/v1/rectifications/{finding}/assignment", headers=api.as_("education", "lead"),
                           json={"lead_unit": "market-supervision", "deadline": "2025-04-27", "measures": ["补齐记录"],
                                 "funds": {"amount_cny": "0", "source": "自筹"}}).status_code == 200
    api.settle()
    assert _status(api, record["url"], ("market-supervision", "liaison"), ("court", "liaison")) == [200, 403]


def test_inspection_retry_without_evidence_hashes_as_before_the_field(api: Api, clock: Clock) -> None:
    """A retry across the upgrade (the first request stored before `evidence` existed) is a retry."""
    cid = _launched(api, clock)
    body = {"units": ["education"], "school_ids": ["T001"], "occurred_on": "2025-03-28", "summary": "督查"}
    headers = {**api.as_("fire-rescue"), "Idempotency-Key": "k-1"}
    first = api.client.post(f"/api/v1/campaigns/{cid}/joint-inspections", headers=headers, json=body)
    again = api.client.post(f"/api/v1/campaigns/{cid}/joint-inspections", headers=headers,
                            json={**body, "evidence": []})
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    stored = api.platform.app.repository.get(uuid.UUID(first.json()["id"]))
    assert stored.request_digest == request_digest({**body, "findings": []})


def test_stored_v1_events_load_with_no_evidence(api: Api, clock: Clock) -> None:
    cid = _launched(api, clock)
    r = api.client.post(f"/api/v1/campaigns/{cid}/self-checks", headers=api.as_("education"), json={
        "school_id": "T001", "occurred_on": "2025-03-28", "results": passing()})
    assert r.status_code == 201, r.text
    app = api.platform.app
    [event] = list(app.events.get(uuid.UUID(r.json()["id"])))
    stored = app.mapper.to_stored_event(event)
    state = orjson.loads(stored.state)
    assert state["class_version"] == 2 and "evidence" in state
    # What a v1 self-check looks like in the store: no class_version, no evidence.
    v1 = {k: v for k, v in state.items() if k not in ("class_version", "evidence")}
    old = type(stored)(originator_id=stored.originator_id, originator_version=stored.originator_version,
                       topic=stored.topic, state=orjson.dumps(v1))
    upcast = app.mapper.to_domain_event(old)
    assert isinstance(upcast, SelfCheck.SelfCheckSubmitted) and upcast.evidence == []
    assert upcast.results == event.results


def test_temporary_files_of_killed_uploads_are_listed_then_removed_after_an_hour(
        sqlite_platform: Platform, sqlite_url: str, tmp_path: Path) -> None:
    """A killed upload's ``.tmp-`` file is no blob (never under a digest): `lianxi evidence
    orphans` lists it once an hour old, and the nightly sweep removes it; a fresh one (an upload
    that may still be writing) and the stored blobs stay."""
    platform = sqlite_platform
    root = tmp_path / "evidence"
    platform.blobs = FileBlobs(root)
    data = b"%PDF-1.4\n%%EOF\n"
    digest = hashlib.sha256(data).hexdigest()
    platform.blobs.put(digest, data)
    shard = platform.blobs.path(digest).parent
    old, fresh = shard / f"{TMP_PREFIX}{digest[:16]}-dead01", shard / f"{TMP_PREFIX}{'ab' * 8}-live01"
    old.write_bytes(b"half a photo")
    fresh.write_bytes(b"still writing")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))

    env = {**os.environ, "LIANXI_DATABASE_URL": sqlite_url, "LIANXI_EVIDENCE_DIR": str(root)}
    listed = run_cli(["evidence", "orphans", "--json"], env=env, timeout=180)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    temps = [r for r in rows if "temp" in r]
    assert [(r["temp"], r["size"]) for r in temps] == [(str(old.relative_to(root)), len(b"half a photo"))]
    assert "1 个中断上传留下的临时文件" in listed.stderr

    result = LianxiScheduler(platform).run_job("evidence-orphans", datetime.now(UTC))
    assert result["temps_removed"] == 1
    assert not old.exists() and fresh.exists() and platform.blobs.get(digest) == data
    assert [b.digest for b in platform.blobs.blobs()] == [digest]
    with pytest.raises(ValueError):
        platform.blobs.remove_temp(f"../{digest}")  # only temporary files, only inside the store
