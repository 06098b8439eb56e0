"""Evidence uploads (佐证材料): POST one or more files (multipart), then name each answer's
``ref`` in a record's ``evidence`` list; GET a blob or its thumbnail with the same bearer
credential. Type, size and metadata rules are services/evidence/cleaning.py's; who reads is
services/evidence/use_cases.py's. Every read is in the audit trail."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from contracts.api_evidence import EvidenceOut, EvidenceUploadOut
from services.api.deps import PlatformDep, PrincipalDep, require_writer
from services.api.problems import ProblemError
from services.evidence.cleaning import Refused
from services.evidence.use_cases import EvidenceBlob, Uploaded, read_evidence
from services.platform import Platform
from services.security.audit import note_target_unit
from services.settings import get_settings

router = APIRouter(prefix="/api/v1", tags=["evidence"])
Digest = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 (the ref without `sha256:`)")]
MAX_FILES = 20
# Documented bound of one file (LIANXI_EVIDENCE_MAX_FILE_BYTES, read once: it shapes the OpenAPI document).
FilePart = Annotated[UploadFile, WithJsonSchema({"type": "string", "contentMediaType": "application/octet-stream",
                                                 "maxLength": get_settings().evidence_max_file_bytes})]


class UploadIn(BaseModel):
    """The multipart form: only ``files`` parts (a form, like a JSON body, forbids other fields)."""

    model_config = ConfigDict(extra="forbid")
    files: list[FilePart] = Field(min_length=1, max_length=MAX_FILES, description="one or more photos or documents")


FilesIn = Annotated[UploadIn, Form(media_type="multipart/form-data")]


def evidence_out(u: Uploaded, base: str = "/api/v1/evidence") -> EvidenceOut:
    return EvidenceOut(ref=u.ref, digest=u.digest, media_type=u.media_type, size=u.size, name=u.name,
                       url=f"{base}/{u.digest}", thumbnail_url=f"{base}/{u.digest}/thumbnail" if u.thumbnail else None,
                       replayed=u.written.replayed)


def store_uploads(platform: Platform, principal: Any, files: list[UploadFile]) -> list[Uploaded]:
    """Each file cleaned and stored; a refused file refuses the request and nothing is kept."""
    limit = platform.settings.evidence_max_file_bytes
    if len(files) > MAX_FILES:
        raise ProblemError(413, f"一次最多上传{MAX_FILES}个文件")
    for f in files:
        if f.size is not None and f.size > limit:
            raise ProblemError(413, f"“{f.filename}”：文件超过{limit // 1024 // 1024}MB的上限")
    try:
        return platform.app.upload_evidence(
            principal, platform.blobs, files=[(f.file.read(limit + 1), f.filename or "file") for f in files],
            max_bytes=limit, now=platform.clock())
    except Refused as e:
        raise ProblemError(e.status, e.detail) from None


@router.post("/evidence", status_code=201, response_model=EvidenceUploadOut, responses={
    401: {"description": "no or unknown token"}, 403: {"description": "read-only credential"},
    413: {"description": "a file or the request is larger than the limits (LIANXI_EVIDENCE_MAX_*)"},
    415: {"description": "a file's bytes are not JPEG, PNG, HEIC, PDF, DOCX or XLSX"},
})
def upload(platform: PlatformDep, principal: PrincipalDep, files: FilesIn) -> EvidenceUploadOut:
    """Stores photos (JPEG, PNG, HEIC; metadata such as GPS removed) and documents (PDF, DOCX,
    XLSX) under the SHA-256 of the stored bytes, and answers each file's `ref` to name in a
    record's `evidence` list. The type is read from the bytes, never from the name."""
    require_writer(principal)
    return EvidenceUploadOut(files=[evidence_out(u) for u in store_uploads(platform, principal, files.files)])


def blob_response(blob: EvidenceBlob, *, thumbnail: bool) -> Response:
    name = quote(blob.name if not thumbnail else f"thumbnail-{blob.name}.jpg")
    disposition = "inline" if blob.media_type.startswith("image/") or blob.media_type == "application/pdf" \
        else "attachment"
    return Response(blob.data, media_type=blob.media_type, headers={
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{name}",
        "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox"})


def _read(platform: Platform, principal: Any, digest: str, thumbnail: bool) -> Response:
    note_target_unit("*")  # evidence reads are always audited (the path prefix is too)
    platform.runner.catch_up("evidence")
    with platform.read_engine.connect() as conn:
        blob = read_evidence(conn, platform.blobs, principal, digest, thumbnail=thumbnail)
    return blob_response(blob, thumbnail=thumbnail)


_READ: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}, "application/octet-stream": {}}},
         401: {"description": "no or unknown token"},
         403: {"description": "the unit may not read this record's evidence"}, 404: {"description": "unknown"}}


@router.get("/evidence/{digest}", response_class=Response, responses=_READ)
def get_evidence(digest: Digest, platform: PlatformDep, principal: PrincipalDep) -> Response:
    """The stored bytes. A unit reads what it uploaded, the evidence of its own records and of
    the hazards and rectifications assigned to it; the lead unit and auditors read all."""
    return _read(platform, principal, digest, False)


@router.get("/evidence/{digest}/thumbnail", response_class=Response, responses=_READ)
def get_thumbnail(digest: Digest, platform: PlatformDep, principal: PrincipalDep) -> Response:
    """A small JPEG of an image (404 for documents); the same access rule as the blob."""
    return _read(platform, principal, digest, True)
