"""Evidence on the pages: the photos and documents a form attaches (the same cleaning and
storage as POST /api/v1/evidence), the thumbnails shown beside a record, and the blob URLs a
signed-in browser opens (the same access rule and audit as the API's, on the session cookie)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from events.errors import DomainError, NotPermitted
from projections.evidence import EvidenceIndex, record_evidence
from services.api.deps import PlatformDep
from services.api.routes.evidence import blob_response
from services.evidence.cleaning import Refused
from services.evidence.use_cases import read_evidence
from services.platform import Platform
from services.security.audit import note_target_unit
from services.web.base import Posted, SessionDep, WebError
from services.web.forms import Form

router = APIRouter(include_in_schema=False)
FIELD = "evidence_files"  # the file inputs of every form that takes evidence (macros.html.j2 evidence_files)
Digest = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


def attach_files(platform: Platform, post: Posted, f: Form) -> list[str]:
    """Cleans and stores the files chosen on the form; their refs (``sha256:<hex>``) go into the
    record's evidence. A refused file is the field's message (and nothing is recorded)."""
    limit = platform.settings.evidence_max_file_bytes
    files = []
    for part in post.form.getlist(FIELD):
        if isinstance(part, UploadFile) and part.filename:  # not an input left empty
            part.file.seek(0)
            files.append((part.file.read(limit + 1), part.filename))
    if not files:
        return []
    try:
        done = platform.app.upload_evidence(post.session.principal, platform.blobs, files=files, max_bytes=limit,
                                            now=platform.clock())
    except Refused as e:
        f.fail(FIELD, e.detail)
        return []
    return [u.ref for u in done]


def evidence_of(platform: Platform, ids: Sequence[str], *, by: str = "record_id") -> dict[str, list[dict[str, Any]]]:
    """record id (or event id) -> its uploaded blobs (digest, media type, name, thumbnail, event type)."""
    if not ids:
        return {}
    platform.runner.catch_up(EvidenceIndex.name)
    with platform.read_engine.connect() as conn:
        return record_evidence(conn, list(ids), by=by)


def _read(platform: Platform, session: Any, digest: str, thumbnail: bool) -> Response:
    note_target_unit("*")
    platform.runner.catch_up(EvidenceIndex.name)
    try:
        with platform.read_engine.connect() as conn:
            blob = read_evidence(conn, platform.blobs, session.principal, digest, thumbnail=thumbnail)
    except NotPermitted:
        raise WebError(403, "无权查看此佐证材料", "只有上报和承办该事项的单位、牵头单位和考核组可以查看。") from None
    except DomainError:
        raise WebError(404, "未找到该佐证材料") from None
    return blob_response(blob, thumbnail=thumbnail)


@router.get("/evidence/{digest}")
def evidence_file(digest: Digest, session: SessionDep, platform: PlatformDep) -> Response:
    return _read(platform, session, digest, False)


@router.get("/evidence/{digest}/thumbnail")
def evidence_thumbnail(digest: Digest, session: SessionDep, platform: PlatformDep) -> Response:
    return _read(platform, session, digest, True)
