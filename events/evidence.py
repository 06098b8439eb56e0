"""Evidence (佐证材料): photos and documents a unit uploads, stored once under the SHA-256 of
their cleaned bytes. The log holds what was uploaded (digest, media type, size, original file
name, the uploading unit), never the bytes; records name a blob in their ``evidence`` lists as
``sha256:<hex>``.

One aggregate per (unit, digest): the same bytes uploaded twice by one unit are one upload, and
a unit may attach only what its own unit uploaded."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime

from eventsourcing.domain import Aggregate

from events.base import RecordedCreated, derive_id, local_date
from events.errors import InvariantViolated

PREFIX = "sha256:"
MAX_REFS = 50
_REF = re.compile(r"sha256:([0-9a-f]{64})")
MAX_NAME = 200


def evidence_id(agency: str, digest: str) -> uuid.UUID:
    return derive_id("evidence", agency, digest)


def blob_digests(refs: Iterable[str]) -> list[str]:
    """The digests (hex) of the ``sha256:`` references among an evidence list (other references,
    links written before uploads existed, are left as they are)."""
    out: list[str] = []
    for ref in refs:
        m = _REF.fullmatch(ref.strip().lower())
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def clean_refs(refs: Iterable[str], limit: int = MAX_REFS) -> list[str]:
    """A record's evidence list: trimmed, without blanks or repeats, at most ``limit`` references
    (URIs or ``sha256:`` content hashes, no spaces)."""
    out = list(dict.fromkeys(r.strip() for r in refs if r.strip()))
    if len(out) > limit:
        raise InvariantViolated(f"at most {limit} evidence references")
    if any(len(r) > 500 or any(c.isspace() for c in r) for r in out):
        raise InvariantViolated("evidence references are URIs or content hashes without spaces")
    return out


def is_blob_ref(ref: str) -> bool:
    return ref.strip().lower().startswith(PREFIX)


def clean_name(name: str) -> str:
    """The original file name as people gave it, without a path or control characters."""
    base = re.split(r"[\\/]", name)[-1]
    text = "".join(ch for ch in base if ch.isprintable()).strip()
    return text[:MAX_NAME] or "file"


class Evidence(Aggregate):
    class EvidenceUploaded(RecordedCreated):
        digest: str  # hex SHA-256 of the stored (cleaned) bytes
        media_type: str
        size: int
        name: str
        thumbnail: str  # hex SHA-256 of the stored JPEG thumbnail, "" when there is none
        logged_by: str

    def __init__(self, event_id: str, agency: str, occurred_on: str, digest: str, media_type: str, size: int,
                 name: str, thumbnail: str, logged_by: str) -> None:
        self.agency = agency
        self.digest = digest
        self.media_type = media_type
        self.size = size
        self.name = name
        self.thumbnail = thumbnail

    @classmethod
    def upload(cls, *, agency: str, digest: str, media_type: str, size: int, name: str, thumbnail: str,
               logged_by: str, now: datetime) -> Evidence:
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or (thumbnail and not re.fullmatch(r"[0-9a-f]{64}", thumbnail)):
            raise InvariantViolated("an evidence digest is 64 lower-case hex digits of SHA-256")
        if size <= 0:
            raise InvariantViolated("an evidence file is not empty")
        agg_id = evidence_id(agency, digest)
        return cls._create(
            cls.EvidenceUploaded, id=agg_id, timestamp=now, event_id=str(agg_id), agency=agency,
            occurred_on=local_date(now).isoformat(), digest=digest, media_type=media_type, size=size,
            name=clean_name(name), thumbnail=thumbnail, logged_by=logged_by,
        )
