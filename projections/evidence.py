"""The evidence index: every uploaded blob (digest, media type, size, name, thumbnail, who
uploaded it), every record that names a blob in its ``evidence`` list, and the units that may
read each record's evidence: the unit that wrote it, and for a hazard also its reporting units
and the units its rectification is assigned to; for a joint inspection the units that took part
and those its findings name as responsible; for a self-check or an inspection also the units
the hazards it found are assigned to (they rectify what its photos show). The lead unit and
auditors read everything (decided by the caller)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from events.evidence import blob_digests
from events.stored import (
    COMPLIANCE_RECORD,
    DUTY_RECORD,
    EVIDENCE,
    JOINT_INSPECTION,
    RECOGNITION,
    RECTIFICATION,
    SELF_CHECK,
    TASK,
    event_topic,
    event_topics,
)
from projections.base import LoggedEvent, Projection, insert_ignore, metadata

uploads = sa.Table(
    "rm_evidence_uploads",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("unit", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("media_type", sa.String(100), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("thumbnail", sa.String(64), nullable=False),  # "" when none
    sa.Column("uploaded_at", sa.String(32), nullable=False),
    sa.Index("ix_rm_evidence_uploads_thumbnail", "thumbnail"),
)

refs = sa.Table(
    "rm_evidence_refs",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("record_id", sa.String(36), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("event_type", sa.String(60), nullable=False),
    sa.Column("unit", sa.String(64), nullable=False),  # the unit that wrote the referencing event
    sa.Index("ix_rm_evidence_refs_record", "record_id"),
)

readers = sa.Table(
    "rm_evidence_readers",
    metadata,
    sa.Column("record_id", sa.String(36), primary_key=True),
    sa.Column("unit", sa.String(64), primary_key=True),
)

# hazard -> the self-check or inspection (with evidence) that found it
origins = sa.Table(
    "rm_evidence_origins",
    metadata,
    sa.Column("hazard_id", sa.String(36), primary_key=True),
    sa.Column("record_id", sa.String(36), nullable=False),
)

REFERRING = (event_topic(DUTY_RECORD, "DutyPerformed"),
             *event_topics(RECTIFICATION, "HazardReported", "RectificationProgressReported", "RectificationCompleted"),
             event_topic(TASK, "TaskCompleted"), event_topic(COMPLIANCE_RECORD, "ComplianceRecordLogged"),
             event_topic(RECOGNITION, "SchoolRecognised"), event_topic(SELF_CHECK, "SelfCheckSubmitted"),
             event_topic(JOINT_INSPECTION, "JointInspectionConducted"))


class EvidenceIndex(Projection):
    name = "evidence"
    version = 2
    topics = (event_topic(EVIDENCE, "EvidenceUploaded"), event_topic(RECTIFICATION, "RectificationAssigned"),
              *REFERRING)
    tables = (uploads, refs, readers, origins)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        """Collects the batch's rows per table and writes each table once (a statement per
        event was most of a rebuild's time here). Every insert keeps the first row of a key,
        as one statement per event in log order did."""
        rows: dict[sa.Table, list[dict[str, Any]]] = {uploads: [], refs: [], readers: [], origins: []}
        # hazard -> the record that found it: from earlier batches (read once), then this one's
        known = _origins_of(conn, [e.record_id for e in events if e.type == "RectificationAssigned"])
        found: dict[str, str] = {}
        for e in events:
            d = e.data
            kind = e.type
            if kind == "EvidenceUploaded":
                rows[uploads].append({
                    "digest": d["digest"], "unit": d["agency"], "event_id": d["event_id"], "position": e.position,
                    "media_type": d["media_type"], "size": d["size"], "name": d["name"],
                    "thumbnail": d["thumbnail"], "uploaded_at": e.recorded_at})
                continue
            listed = d.get("evidence")  # v1 hazard reports carry no list
            digests = blob_digests(listed) if listed else []
            if not digests and kind not in _ALWAYS:
                continue  # most records carry no upload: no rows for them
            record = e.record_id
            units = {d["agency"]}
            if kind == "HazardReported":
                units.update(d["reported_by"]["units"])
            elif kind == "RectificationAssigned":
                units.update([d["lead_unit"], *d["cooperating_units"]])
                origin = known.get(record) or found.get(record)  # the first origin recorded wins
                if origin is not None:
                    rows[readers].extend({"record_id": origin, "unit": u} for u in sorted(units))
            elif kind == "JointInspectionConducted":
                units.update([*d["units"], *(f["responsible_unit"] for f in d["findings"])])
                self._found(rows, found, record, (f["hazard_id"] for f in d["findings"]))
            elif kind == "SelfCheckSubmitted":
                self._found(rows, found, record, (p["hazard_id"] for r in d["results"] for p in r["problems"]))
            rows[readers].extend({"record_id": record, "unit": u} for u in sorted(units))
            rows[refs].extend({
                "digest": digest, "event_id": d["event_id"], "record_id": record, "position": e.position,
                "event_type": kind, "unit": d["agency"]} for digest in digests)
        for table, batch in rows.items():
            insert_ignore(conn, table, batch)

    @staticmethod
    def _found(rows: dict[sa.Table, list[dict[str, Any]]], found: dict[str, str], record: str,
               hazards: Iterable[str]) -> None:
        for hazard in hazards:
            rows[origins].append({"hazard_id": hazard, "record_id": record})
            found.setdefault(hazard, record)


def _origins_of(conn: sa.Connection, hazards: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(0, len(hazards), 500):
        q = sa.select(origins.c.hazard_id, origins.c.record_id).where(origins.c.hazard_id.in_(hazards[i:i + 500]))
        out.update((str(h), str(r)) for h, r in conn.execute(q))
    return out


# Types whose rows do not depend on carrying evidence: a hazard's reporters and an assignment's
# units read the hazard's evidence even when the report itself names none.
_ALWAYS = frozenset({"HazardReported", "RectificationAssigned"})


# -- queries -------------------------------------------------------------------------------------


def upload_of(conn: sa.Connection, digest: str) -> dict[str, Any] | None:
    """The first upload of a blob (its media type, size, name and thumbnail)."""
    row = conn.execute(sa.select(uploads).where(uploads.c.digest == digest)
                       .order_by(uploads.c.position).limit(1)).mappings().first()
    return dict(row) if row else None


def may_read(conn: sa.Connection, digest: str, unit: str) -> bool:
    """Whether ``unit`` uploaded the blob or may read a record that names it."""
    uploaded = sa.select(uploads.c.digest).where(uploads.c.digest == digest, uploads.c.unit == unit)
    named = (sa.select(refs.c.digest).join(readers, readers.c.record_id == refs.c.record_id)
             .where(refs.c.digest == digest, readers.c.unit == unit))
    return conn.execute(uploaded.union_all(named).limit(1)).first() is not None


def references(conn: sa.Connection, digests: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """digest -> the events naming it (event id, type, position, record, unit), in log order."""
    q = sa.select(refs).order_by(refs.c.position)
    if digests is not None:
        q = q.where(refs.c.digest.in_(list(digests)))
    out: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(q).mappings():
        out.setdefault(row["digest"], []).append(dict(row))
    return out


def all_uploads(conn: sa.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(sa.select(uploads).order_by(uploads.c.position)).mappings()]


def record_evidence(conn: sa.Connection, record_ids: Sequence[str], *,
                    by: str = "record_id") -> dict[str, list[dict[str, Any]]]:
    """record id (or, with ``by="event_id"``, event id) -> its blobs (digest, media type, name,
    thumbnail, event type), in log order: what pages show beside a record or an event."""
    first = (sa.select(uploads.c.digest, sa.func.min(uploads.c.position).label("position"))
             .group_by(uploads.c.digest).subquery())
    u = uploads.alias("u")
    key = refs.c[by]
    q = (sa.select(key.label("key"), refs.c.digest, refs.c.event_type, refs.c.position, u.c.media_type, u.c.name,
                   u.c.thumbnail)
         .join(first, first.c.digest == refs.c.digest)
         .join(u, sa.and_(u.c.digest == first.c.digest, u.c.position == first.c.position))
         .where(key.in_(list(record_ids))).order_by(refs.c.position))
    out: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(q).mappings():
        out.setdefault(row["key"], []).append(dict(row))
    return out
