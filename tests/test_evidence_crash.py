"""kill -9 during evidence uploads, on the file backend (where a half-written file could exist)
over SQLite and PostgreSQL: after every kill, every acknowledged upload is readable with the
bytes its digest names and its EvidenceUploaded event is in the log, and no file under a digest
name holds anything but the bytes of that digest (a killed write leaves at most a ``.tmp-``
file, which nothing serves and the next put of that digest does not reuse)."""

from __future__ import annotations

import hashlib
import os
import random
import time
from pathlib import Path

from contracts.catalogue import default_catalogue
from events.evidence import evidence_id
from services.evidence.storage import TMP_PREFIX, FileBlobs
from tests.conftest import make_platform
from tests.test_crash_kill import Child
from tests.zygote import Zygote

CYCLES = int(os.environ.get("LIANXI_EVIDENCE_KILL_CYCLES", "8"))


def test_kill_during_uploads_loses_no_acknowledged_blob_and_leaves_no_partial_one(
        database_url: str, tmp_path: Path) -> None:
    blob_dir = tmp_path / "evidence"
    platform = make_platform(database_url, evidence_dir=str(blob_dir))
    platform.app.register_catalogue(default_catalogue(), now=platform.clock().replace(year=2024))
    env = {**os.environ, "LIANXI_DATABASE_URL": database_url, "LIANXI_EVIDENCE_DIR": str(blob_dir),
           "LIANXI_INPROCESS_PROJECTIONS": "false"}
    rng = random.Random(18)
    blobs = FileBlobs(blob_dir)
    acked: set[str] = set()
    log = tmp_path / "child.log"
    # Children start forked from a warm parent, not from a cold interpreter.
    zygote = Zygote(["tests.evidence_crash_writer", "services.api.main"], env)
    try:
        for cycle in range(CYCLES):
            child = Child.fork(zygote, ["tests.evidence_crash_writer", f"s{cycle}"], tmp_path / f"s{cycle}.out", log)
            child.wait_for("READY")
            time.sleep(rng.uniform(0.3, 2.0))
            child.kill()
            acked.update(child.acknowledged())
            for digest in acked:
                data = blobs.get(digest)
                assert data is not None, f"acknowledged upload {digest} is not readable"
                assert hashlib.sha256(data).hexdigest() == digest
                assert platform.app.maybe(evidence_id("fire-rescue", digest)) is not None, f"no event for {digest}"
            stored = list(blobs.blobs())
            for blob in stored:
                data = blobs.get(blob.digest)
                assert data is not None and hashlib.sha256(data).hexdigest() == blob.digest, \
                    f"partial or foreign bytes under {blob.digest}"
    finally:
        zygote.close()
        platform.close()
    leftovers = list(blob_dir.rglob(f"{TMP_PREFIX}*"))
    print(f"{CYCLES} kills, {len(acked)} acknowledged uploads, {len(stored)} blobs, {len(leftovers)} .tmp- files")
    assert len(acked) >= CYCLES, "the child acknowledged too few uploads for the kills to mean much"

