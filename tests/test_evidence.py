"""Evidence uploads through the API on SQLite and PostgreSQL, with the file and the S3 backend:
a photo carrying EXIF GPS uploaded, attached to a hazard, read back without its metadata by
the lead, the assigned unit (not by another unit, nor without a token); refused types and sizes;
every read audited; and `lianxi verify --evidence` catching a changed byte and a deleted blob."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from contracts.catalogue import default_catalogue
from services.evidence.storage import FileBlobs, S3Blobs
from services.platform import Platform
from services.security.audit import audit_log
from tests.conftest import FIXED_NOW, Api, Clock, make_platform, register_schools
from tests.evidence_fixtures import GPS_IFD, metadata_of, new_bucket, photo_with_gps, s3_endpoint  # noqa: F401
from tests.zygote import run_cli

HAZARD = {"reported_by": {"kind": "unit"}, "school_id": "T001", "category": "fire", "severity": "major",
          "description": "配电箱门锁损坏，线路裸露", "found_on": "2025-06-28"}
ASSIGNMENT = {"lead_unit": "public-security", "cooperating_units": [], "deadline": "2025-07-20",
              "measures": ["更换配电箱门锁"], "funds": {"amount_cny": "300", "source": "学校公用经费"}}
LIMITS = {"evidence_max_file_bytes": 400_000, "evidence_max_request_bytes": 1_000_000}


@pytest.fixture(params=["files", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "files":
        return {"evidence_dir": str(tmp_path / "evidence")}
    endpoint = request.getfixturevalue("s3_endpoint")
    return new_bucket(endpoint, f"ev-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def ev_platform(database_url: str, storage: dict[str, Any]) -> Iterator[Platform]:
    p = make_platform(database_url, clock=Clock(), **storage, **LIMITS)
    p.app.register_catalogue(default_catalogue(), now=FIXED_NOW.replace(year=2024))
    p.runner.catch_up()
    yield p
    p.close()


@pytest.fixture
def ev_api(ev_platform: Platform) -> Api:
    api = Api(ev_platform)
    register_schools(api)
    return api


def upload(api: Api, unit: str, *files: tuple[str, bytes], role: str = "liaison") -> Any:
    return api.client.post("/api/v1/evidence", headers=api.as_(unit, role),
                           files=[("files", (name, data, "application/octet-stream")) for name, data in files])


def uploaded(api: Api, unit: str, name: str, data: bytes) -> dict[str, Any]:
    r = upload(api, unit, (name, data))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()["files"][0]
    return out


def test_a_photo_is_cleaned_attached_to_a_hazard_and_read_only_by_those_allowed(ev_api: Api) -> None:
    api, platform = ev_api, ev_api.platform
    original = photo_with_gps(orientation=6)  # rotated 90°: stored upright
    assert metadata_of(original)["gps"]  # the fixture really carries GPS
    ref = uploaded(api, "fire-rescue", "现场照片.jpg", original)
    assert ref["media_type"] == "image/jpeg" and ref["name"] == "现场照片.jpg"
    assert ref["ref"] == f"sha256:{ref['digest']}" and ref["thumbnail_url"]

    r = api.client.post("/api/v1/hazards", headers=api.as_("fire-rescue"), json={**HAZARD, "evidence": [ref["ref"]]})
    assert r.status_code == 201, r.text
    item = r.json()["id"]
    assert api.client.post(f"/api/v1/rectifications/{item}/assignment", headers=api.as_("education", "lead"),
                           json=ASSIGNMENT).status_code == 200

    # Lead: 200, no metadata left, and the event's digest is the SHA-256 of the served bytes.
    served = api.client.get(ref["url"], headers=api.as_("education", "lead"))
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    meta = metadata_of(served.content)
    assert meta["gps"] == {} and meta["exif"] == {} and "exif" not in meta["info"]
    assert b"SERIAL-0042" not in served.content and b"Canon" not in served.content
    assert meta["size"] == (480, 640)  # the EXIF orientation was applied before the tags went
    reported = next(iter(platform.app.events.get(uuid.UUID(item), lte=1)))
    assert reported.evidence == [f"sha256:{hashlib.sha256(served.content).hexdigest()}"]

    # The assigned unit and the reporter read it (and its thumbnail); another unit and no token do not.
    assert api.client.get(ref["url"], headers=api.as_("public-security")).status_code == 200
    thumb = api.client.get(ref["thumbnail_url"], headers=api.as_("fire-rescue"))
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) <= 320
    other = api.client.get(ref["url"], headers=api.as_("market-supervision"))
    assert other.status_code == 403 and other.headers["content-type"] == "application/problem+json"
    assert api.client.get(ref["url"]).status_code == 401
    assert api.client.get(ref["thumbnail_url"], headers=api.as_("market-supervision")).status_code == 403
    assert api.client.get(ref["url"], headers=api.as_("education", "auditor")).status_code == 200

    # Every read is in the audit trail, the refused ones too.
    with platform.read_engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.unit, audit_log.c.status)
                            .where(audit_log.c.action.like("GET /api/v1/evidence/%"))).all()
    assert sorted(rows, key=str) == sorted([("education", 200), ("public-security", 200), ("fire-rescue", 200),
                                            ("market-supervision", 403), (None, 401), ("market-supervision", 403),
                                            ("education", 200)], key=str)


def test_refused_files_and_references(ev_api: Api) -> None:
    api = ev_api
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(500)
    r = upload(api, "fire-rescue", ("photo.jpg", elf))
    assert r.status_code == 415 and r.json()["type"] == "urn:lianxi:problem:unsupported-media-type"
    exe = b"MZ\x90\x00" + bytes(60) + b"PE\x00\x00" + bytes(400)
    assert upload(api, "fire-rescue", ("scan.pdf", exe)).status_code == 415
    head = api.platform.app.recorder.max_notification_id()
    r = upload(api, "fire-rescue", ("good.jpg", photo_with_gps()), ("bad.pdf", exe))  # one refused: none kept
    assert r.status_code == 415 and "bad.pdf" in r.json()["detail"]
    assert api.platform.app.recorder.max_notification_id() == head
    big = b"\xff\xd8\xff\xe0" + os.urandom(LIMITS["evidence_max_file_bytes"])  # one file over the per-file limit
    r = upload(api, "fire-rescue", ("big.jpg", big))
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    small = photo_with_gps()
    many = [(f"p{i}.jpg", small + os.urandom(300_000)) for i in range(4)]  # each allowed, together too much
    assert upload(api, "fire-rescue", *many).status_code == 413
    assert upload(api, "fire-rescue", ("x.jpg", small), role="auditor").status_code == 403

    # A document is kept as it is; its type comes from its bytes.
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    doc = uploaded(api, "fire-rescue", "检查记录", pdf)
    assert doc["media_type"] == "application/pdf" and doc["thumbnail_url"] is None
    assert doc["digest"] == hashlib.sha256(pdf).hexdigest() and doc["size"] == len(pdf)
    assert uploaded(api, "fire-rescue", "again.pdf", pdf)["replayed"] is True

    # A record may name only blobs its own unit uploaded.
    unknown = "sha256:" + "ab" * 32
    r = api.client.post("/api/v1/hazards", headers=api.as_("fire-rescue"), json={**HAZARD, "evidence": [unknown]})
    assert r.status_code == 422 and "upload it first" in r.json()["detail"]
    r = api.client.post("/api/v1/hazards", headers=api.as_("public-security"),
                        json={**HAZARD, "evidence": [doc["ref"]]})
    assert r.status_code == 422
    assert api.client.get(f"/api/v1/evidence/{'cd' * 32}", headers=api.as_("education", "lead")).status_code == 404
    assert api.client.get("/api/v1/evidence/not-a-digest", headers=api.as_("education", "lead")).status_code == 422


def _blob_path_or_key(platform: Platform, digest: str) -> Any:
    blobs = platform.blobs
    if isinstance(blobs, FileBlobs):
        return blobs.path(digest)
    assert isinstance(blobs, S3Blobs)
    return blobs.key(digest)


def _tamper(platform: Platform, digest: str, *, delete: bool) -> None:
    blobs = platform.blobs
    if isinstance(blobs, FileBlobs):
        path = blobs.path(digest)
        if delete:
            path.unlink()
        else:
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0x01
            path.write_bytes(bytes(data))
        return
    assert isinstance(blobs, S3Blobs)
    if delete:
        blobs.client.delete_object(Bucket=blobs.bucket, Key=blobs.key(digest))
    else:
        data = bytearray(blobs.get(digest) or b"")
        data[len(data) // 2] ^= 0x01
        blobs.client.put_object(Bucket=blobs.bucket, Key=blobs.key(digest), Body=bytes(data))


def _verify(platform: Platform, database_url: str, storage: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIANXI_DATABASE_URL": database_url,
           **{f"LIANXI_{k.upper()}": str(v) for k, v in storage.items()}}
    return run_cli(["verify", "--evidence"], env=env, timeout=180)


def test_verify_evidence_catches_a_changed_byte_and_a_deleted_blob(ev_api: Api, database_url: str,
                                                                  storage: dict[str, Any]) -> None:
    api, platform = ev_api, ev_api.platform
    kept = uploaded(api, "fire-rescue", "a.jpg", photo_with_gps("red"))
    changed = uploaded(api, "fire-rescue", "b.jpg", photo_with_gps("green"))
    gone = uploaded(api, "fire-rescue", "c.pdf", b"%PDF-1.4\n%%EOF\n")
    r = api.client.post("/api/v1/hazards", headers=api.as_("fire-rescue"),
                        json={**HAZARD, "evidence": [kept["ref"], changed["ref"], gone["ref"]]})
    assert r.status_code == 201, r.text
    hazard_event = r.json()["event_id"]
    api.settle()

    ok = _verify(platform, database_url, storage)
    assert ok.returncode == 0, ok.stderr
    assert "5 blobs intact" in ok.stdout  # three files and two thumbnails

    _tamper(platform, changed["digest"], delete=False)
    _tamper(platform, gone["digest"], delete=True)
    bad = _verify(platform, database_url, storage)
    assert bad.returncode == 1
    lines = bad.stderr.splitlines()
    altered = [line for line in lines if changed["digest"] in line]
    missing = [line for line in lines if gone["digest"] in line]
    assert len(altered) == 1 and "内容被改动" in altered[0] and hazard_event in altered[0]
    assert len(missing) == 1 and "缺失" in missing[0] and hazard_event in missing[0] and "HazardReported" in missing[0]
    assert not any(kept["digest"] in line for line in lines)
    assert "2 of 5 evidence blobs missing or altered" in lines[-1]


def test_orphan_sweep_lists_blobs_no_record_names(sqlite_platform: Platform, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An attached photo (and its thumbnail) is no orphan; one never attached, and one whose
    upload event failed after its bytes were stored, are listed once a day old."""
    from datetime import UTC, datetime, timedelta

    from services.evidence.storage import FileBlobs
    from services.evidence.use_cases import orphan_blobs
    from services.scheduler import LianxiScheduler

    platform = sqlite_platform
    platform.blobs = FileBlobs(tmp_path / "orphans")
    api = Api(platform)
    register_schools(api)
    attached = uploaded(api, "fire-rescue", "a.jpg", photo_with_gps("red"))
    loose = uploaded(api, "fire-rescue", "b.pdf", b"%PDF-1.4\n%%EOF\n")
    assert api.client.post("/api/v1/hazards", headers=api.as_("fire-rescue"),
                           json={**HAZARD, "evidence": [attached["ref"]]}).status_code == 201

    def failing_commit(*_: Any, **__: Any) -> Any:
        raise RuntimeError("database went away")

    with monkeypatch.context() as m:
        m.setattr(platform.app, "commit", failing_commit)
        with pytest.raises(RuntimeError):
            upload(api, "fire-rescue", ("c.jpg", photo_with_gps("green")))
    api.settle()

    stored = {b.digest for b in platform.blobs.blobs()}
    assert len(stored) == 5  # a + its thumbnail, b (a PDF has none), c + its thumbnail
    later = datetime.now(UTC) + timedelta(days=2)
    with platform.read_engine.connect() as conn:
        assert orphan_blobs(conn, platform.blobs, now=datetime.now(UTC), min_age=timedelta(days=1)) == []
        found = {o["digest"] for o in orphan_blobs(conn, platform.blobs, now=later, min_age=timedelta(days=1))}
    assert loose["digest"] in found and attached["digest"] not in found
    assert len(found) == 3  # b, and c with its thumbnail; a's thumbnail goes with a
    result = LianxiScheduler(platform).run_job("evidence-orphans", later)
    assert result["orphans"] == 3


def test_cleaning_heic_png_and_office_files() -> None:
    """HEIC (iPhone) photos become JPEG without their EXIF; PNG loses its text and EXIF chunks;
    DOCX and XLSX are told apart from a plain ZIP by their contents, not their names."""
    import zipfile

    from PIL import PngImagePlugin

    from services.evidence.cleaning import HEIC, Refused, clean

    exif = Image.Exif()
    exif[GPS_IFD] = {1: "N", 2: (43.0, 51.0, 12.5)}
    if HEIC:
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), "red").save(buf, "HEIF", exif=exif.tobytes())
        heic = clean(buf.getvalue(), max_bytes=10**7)
        assert heic.media_type == "image/jpeg" and metadata_of(heic.data)["exif"] == {}
    png_info = PngImagePlugin.PngInfo()
    png_info.add_text("Author", "某某老师")
    buf = io.BytesIO()
    Image.new("RGBA", (64, 48), "blue").save(buf, "PNG", pnginfo=png_info, exif=exif.tobytes())
    png = clean(buf.getvalue(), max_bytes=10**7)
    assert png.media_type == "image/png" and "某某老师".encode() not in png.data and b"eXIf" not in png.data
    assert metadata_of(png.data)["gps"] == {} and png.thumbnail is not None

    def office(member: str) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("[Content_Types].xml", "<Types/>")
            z.writestr(member, "<x/>")
        return out.getvalue()

    assert clean(office("word/document.xml"), max_bytes=10**7).media_type.endswith("wordprocessingml.document")
    assert clean(office("xl/workbook.xml"), max_bytes=10**7).media_type.endswith("spreadsheetml.sheet")
    with pytest.raises(Refused) as refused:
        clean(office("payload/run.sh"), max_bytes=10**7)  # a plain ZIP named .docx
    assert refused.value.status == 415
