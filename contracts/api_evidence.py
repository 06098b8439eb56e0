"""API v1 models for evidence uploads (佐证材料)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EvidenceOut(BaseModel):
    ref: str = Field(description="what a record's `evidence` list names: `sha256:<hex>`")
    digest: str = Field(description="hex SHA-256 of the stored bytes (images: after metadata was removed)")
    media_type: str
    size: int
    name: str = Field(description="the original file name")
    url: str
    thumbnail_url: str | None = Field(description="a small JPEG, for images; none for documents")
    replayed: bool = Field(description="this unit had already uploaded the same bytes")


class EvidenceUploadOut(BaseModel):
    files: list[EvidenceOut]
