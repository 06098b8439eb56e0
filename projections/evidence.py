"""The evidence index: every uploaded blob (digest, media type, size, name, thumbnail, who
uploaded it), every record that names a blob in its ``evidence`` list, and the units that may
read each record's evidence: the unit that wrote it, and for a hazard also its reporting units
and the units its rectification is assigned to; for a joint inspection the units that took part
and those its findings name as responsible; for a self-check or an inspection also the units
the hazards it found are assigned to (they rectify what its photos show). The lead unit and
auditors read everything (decided by the caller)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from eventsourcing.utils import get_topic

from events.campaigns import JointInspection, SelfCheck
from events.duty_log import DutyRecord
from events.evidence import Evidence, blob_digests
from events.logistics import ComplianceRecord, Recognition
from events.meetings import Task
from events.rectifications import Rectification
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

REFERRING = (DutyRecord.DutyPerformed, Rectification.HazardReported, Rectification.RectificationProgressReported,
             Rectification.RectificationCompleted, Task.TaskCompleted, ComplianceRecord.ComplianceRecordLogged,
             Recognition.SchoolRecognised, SelfCheck.SelfCheckSubmitted, JointInspection.JointInspectionConducted)


class EvidenceIndex(Projection):
    name = "evidence"
    version = 2
    topics = tuple(get_topic(c) for c in (Evidence.EvidenceUploaded, Rectification.RectificationAssigned,
                                          *REFERRING))
    tables = (uploads, refs, readers, origins)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        for e in events:
            d = e.data
            record = str(e.originator_id)
            if e.type == "EvidenceUploaded":
                insert_ignore(conn, uploads, [{
                    "digest": d["digest"], "unit": d["agency"], "event_id": d["event_id"], "position": e.position,
                    "media_type": d["media_type"], "size": d["size"], "name": d["name"],
                    "thumbnail": d["thumbnail"], "uploaded_at": e.recorded_at}])
                continue
            digests = blob_digests(d.get("evidence", ()))  # v1 hazard reports carry no list
            units = {d["agency"]}
            if e.type == "HazardReported":
                units.update(d["reported_by"]["units"])
            elif e.type == "RectificationAssigned":
                units.update([d["lead_unit"], *d["cooperating_units"]])
                origin = conn.execute(sa.select(origins.c.record_id).where(origins.c.hazard_id == record)).scalar()
                if origin is not None:
                    insert_ignore(conn, readers, [{"record_id": origin, "unit": u} for u in sorted(units)])
            elif not digests:
                continue  # most records carry no upload: no rows for them
            elif e.type == "JointInspectionConducted":
                units.update([*d["units"], *(f["responsible_unit"] for f in d["findings"])])
                insert_ignore(conn, origins, [{"hazard_id": f["hazard_id"], "record_id": record}
                                              for f in d["findings"]])
            elif e.type == "SelfCheckSubmitted":
                insert_ignore(conn, origins, [{"hazard_id": p["hazard_id"], "record_id": record}
                                              for r in d["results"] for p in r["problems"]])
            insert_ignore(conn, readers, [{"record_id": record, "unit": u} for u in sorted(units)])
            insert_ignore(conn, refs, [{
                "digest": digest, "event_id": d["event_id"], "record_id": record, "position": e.position,
                "event_type": e.type, "unit": d["agency"]} for digest in digests])


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
