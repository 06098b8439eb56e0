"""Evidence use cases: upload (clean, store the bytes, then record the upload), read with the
access rule, and the two checks over the stored blobs (verify, orphans).

The bytes are stored before the event that names them is committed, so an acknowledged upload
is always readable; an upload whose event fails leaves a blob no record names, which the orphan
sweep lists. Who reads: the unit that uploaded a blob, the units that may read a record naming
it (projections/evidence.py), and the lead unit and auditors (everything)."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from events.errors import NotFound, NotPermitted
from events.evidence import Evidence
from projections.evidence import all_uploads, may_read, record_evidence, references, upload_of
from services.evidence.cleaning import Cleaned, Refused, clean, sha256
from services.evidence.storage import BlobStore
from services.kernel.principal import Principal
from services.kernel.results import Written
from services.kernel.use_cases import UseCases


@dataclass(frozen=True)
class Uploaded:
    digest: str
    media_type: str
    size: int
    name: str
    thumbnail: str  # digest of the JPEG thumbnail, "" for documents
    written: Written

    @property
    def ref(self) -> str:
        return f"sha256:{self.digest}"


@dataclass(frozen=True)
class EvidenceBlob:
    data: bytes
    media_type: str
    name: str


class EvidenceUseCases(UseCases):
    def upload_evidence(self, principal: Principal, blobs: BlobStore, *, files: Sequence[tuple[bytes, str]],
                        max_bytes: int, now: datetime) -> list[Uploaded]:
        """Clean and store files (bytes, original name) for the principal's unit; the same bytes
        again are the same upload. Every file is checked before any is kept: one that is refused
        raises ``cleaning.Refused`` (413/415, naming the file) and nothing is stored."""
        self.require_writer(principal)
        cleaned = []
        for data, name in files:
            try:
                cleaned.append((clean(data, max_bytes=max_bytes), name))
            except Refused as e:
                raise Refused(e.status, f"“{name}”：{e.detail}") from None
        return [self._keep_upload(principal, blobs, c, name, now) for c, name in cleaned]

    def _keep_upload(self, principal: Principal, blobs: BlobStore, cleaned: Cleaned, name: str,
                     now: datetime) -> Uploaded:
        thumb = ""
        if cleaned.thumbnail is not None:
            thumb = sha256(cleaned.thumbnail)
            blobs.put(thumb, cleaned.thumbnail)
        blobs.put(cleaned.digest, cleaned.data)  # durable before any event names it
        agg = Evidence.upload(agency=principal.agency, digest=cleaned.digest, media_type=cleaned.media_type,
                              size=len(cleaned.data), name=name, thumbnail=thumb, logged_by=principal.actor, now=now)

        def again(existing: Evidence) -> Written:
            return Written(id=str(existing.id), position=self.position_of(existing.id, 1), event_id=str(existing.id),
                           type="EvidenceUploaded", replayed=True)

        w = self.create_or_replay(agg, again)
        stored = self.load(agg.id, Evidence, "evidence") if w.replayed else agg
        return Uploaded(digest=stored.digest, media_type=stored.media_type, size=stored.size, name=stored.name,
                        thumbnail=stored.thumbnail, written=w)


def read_evidence(conn: sa.Connection, blobs: BlobStore, principal: Principal, digest: str, *,
                  thumbnail: bool = False) -> EvidenceBlob:
    """The bytes of a blob (or its thumbnail) for a principal allowed to read it."""
    upload = upload_of(conn, digest)
    if upload is None:
        raise NotFound(f"no evidence sha256:{digest}")
    if not principal.can_read_all and not may_read(conn, digest, principal.agency):
        raise NotPermitted(f"{principal.agency!r} may not read evidence sha256:{digest}")
    target, media_type = digest, upload["media_type"]
    if thumbnail:
        if not upload["thumbnail"]:
            raise NotFound(f"evidence sha256:{digest} ({media_type}) has no thumbnail")
        target, media_type = upload["thumbnail"], "image/jpeg"
    data = blobs.get(target)
    if data is None:
        raise NotFound(f"the stored bytes of evidence sha256:{target} are missing; run `lianxi verify --evidence`")
    return EvidenceBlob(data=data, media_type=media_type, name=upload["name"])


@dataclass(frozen=True)
class BlobProblem:
    digest: str
    problem: str  # missing | altered
    events: list[dict[str, Any]]  # the events naming the blob (or, unreferenced, its upload)
    thumbnail_of: str = ""


def verify_blobs(conn: sa.Connection, blobs: BlobStore) -> Iterator[tuple[str, BlobProblem | None]]:
    """Each uploaded blob and thumbnail read back and hashed again: (digest, None) when intact,
    else what is wrong with it and which events name it."""
    rows = all_uploads(conn)
    named = references(conn)
    seen: set[str] = set()
    for row in rows:
        cited = named.get(row["digest"]) or [{"event_id": row["event_id"], "event_type": "EvidenceUploaded",
                                              "position": row["position"], "unit": row["unit"]}]
        for digest, of in ((row["digest"], ""), (row["thumbnail"], row["digest"])):
            if not digest or digest in seen:
                continue
            seen.add(digest)
            data = blobs.get(digest)
            if data is None:
                yield digest, BlobProblem(digest, "missing", cited, of)
            elif sha256(data) != digest:
                yield digest, BlobProblem(digest, "altered", cited, of)
            else:
                yield digest, None


def orphan_blobs(conn: sa.Connection, blobs: BlobStore, *, now: datetime, min_age: timedelta) -> list[dict[str, Any]]:
    """Stored blobs no record names (nor are the thumbnail of one that is named), older than
    ``min_age``: failed or abandoned uploads. Listed, never deleted here."""
    named = set(references(conn))
    keep = set(named) | {r["thumbnail"] for r in all_uploads(conn) if r["digest"] in named and r["thumbnail"]}
    return [{"digest": b.digest, "size": b.size, "stored_at": b.stored_at.isoformat()}
            for b in blobs.blobs() if b.digest not in keep and now - b.stored_at >= min_age]


# An upload writes, fsyncs and renames its temporary file within seconds: one an hour old was
# left by a killed process and will never be renamed.
TEMP_MAX_AGE = timedelta(hours=1)


def stale_temps(blobs: BlobStore, *, now: datetime, min_age: timedelta = TEMP_MAX_AGE) -> list[dict[str, Any]]:
    """Temporary files of uploads that never finished, older than ``min_age`` (never under a
    digest name, so no record can name them: safe to remove)."""
    return [{"temp": t.name, "size": t.size, "written_at": t.written_at.isoformat()}
            for t in blobs.temps() if now - t.written_at >= min_age]


def record_thumbnails(conn: sa.Connection, blobs: BlobStore, record_ids: Sequence[str], *,
                      per_record: int) -> dict[str, dict[str, Any]]:
    """What documents show of each record's evidence: up to ``per_record`` files (name, media
    type, stage, the JPEG thumbnail as base64 for photos) and how many more there are."""
    out: dict[str, dict[str, Any]] = {}
    for record, rows in record_evidence(conn, record_ids).items():
        unique = list({r["digest"]: r for r in rows}.values())
        shown = []
        for r in unique[:per_record]:
            thumb = blobs.get(r["thumbnail"]) if r["thumbnail"] else None
            shown.append({"name": r["name"], "media_type": r["media_type"], "stage": r["event_type"],
                          "thumbnail": base64.b64encode(thumb).decode() if thumb else None})
        out[record] = {"items": shown, "more": len(unique) - len(shown)}
    return out
