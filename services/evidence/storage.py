"""Where evidence bytes live, behind one small interface keyed by the hex SHA-256 of the bytes.

- ``FileBlobs`` (the embedded default): files under LIANXI_EVIDENCE_DIR, sharded ``ab/cd/<hex>``.
  A blob is written to a temporary name in its own directory, fsynced, renamed onto its digest
  name and the directory fsynced: a process killed mid-write leaves at most a ``.tmp-`` file,
  never a partial file under a digest.
- ``S3Blobs`` (scale-out): an S3-compatible bucket (MinIO, a cloud bucket) shared by every API
  process; a PUT is atomic there.

Blobs are immutable: putting a digest that is already stored does nothing."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from services.settings import Settings

TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class StoredBlob:
    digest: str
    size: int
    stored_at: datetime


@dataclass(frozen=True)
class TempFile:
    """A temporary file an upload killed mid-write left: its path under the store, size, last write."""
    name: str
    size: int
    written_at: datetime


class BlobStore(Protocol):
    def put(self, digest: str, data: bytes) -> None: ...

    def get(self, digest: str) -> bytes | None: ...

    def blobs(self) -> Iterator[StoredBlob]: ...

    def temps(self) -> Iterator[TempFile]: ...

    def remove_temp(self, name: str) -> None: ...

    def describe(self) -> str: ...


def _hex(digest: str) -> str:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a SHA-256 hex digest: {digest[:80]!r}")
    return digest


class FileBlobs:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        h = _hex(digest)
        return self.root / h[:2] / h[2:4] / h

    def put(self, digest: str, data: bytes) -> None:
        target = self.path(digest)
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == digest:
            return  # stored already (a damaged copy is written again)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f"{TMP_PREFIX}{digest[:16]}-{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def get(self, digest: str) -> bytes | None:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            return None

    def blobs(self) -> Iterator[StoredBlob]:
        if not self.root.is_dir():
            return
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                if name.startswith(TMP_PREFIX) or len(name) != 64:
                    continue
                st = os.stat(os.path.join(dirpath, name))
                yield StoredBlob(name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def temps(self) -> Iterator[TempFile]:
        """The ``.tmp-`` files of uploads that never finished."""
        if not self.root.is_dir():
            return
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                if not name.startswith(TMP_PREFIX):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:  # renamed onto its digest meanwhile
                    continue
                yield TempFile(os.path.relpath(path, self.root), st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def remove_temp(self, name: str) -> None:
        path = (self.root / name).resolve()
        if not path.name.startswith(TMP_PREFIX) or not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"not a temporary file of the evidence store: {name!r}")
        path.unlink(missing_ok=True)

    def describe(self) -> str:
        return f"files under {self.root}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Blobs:
    def __init__(self, bucket: str, *, prefix: str = "", client: Any = None, **client_args: Any) -> None:
        import boto3  # only the scale-out backend needs it

        self.bucket = bucket
        self.prefix = prefix
        self.client = client or boto3.client("s3", **{k: v for k, v in client_args.items() if v})

    def key(self, digest: str) -> str:
        return f"{self.prefix}{_hex(digest)}"

    def put(self, digest: str, data: bytes) -> None:
        if self._size(digest) == len(data):
            return
        self.client.put_object(Bucket=self.bucket, Key=self.key(digest), Body=data)

    def _size(self, digest: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(digest))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    def get(self, digest: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.key(digest))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        data: bytes = obj["Body"].read()
        return data

    def blobs(self) -> Iterator[StoredBlob]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for obj in page.get("Contents", ()):
                name = obj["Key"][len(self.prefix):]
                if len(name) == 64:
                    yield StoredBlob(name, int(obj["Size"]), obj["LastModified"])

    def temps(self) -> Iterator[TempFile]:
        return iter(())  # a PUT is atomic: no half-written objects

    def remove_temp(self, name: str) -> None:
        raise ValueError(f"an S3 store keeps no temporary files: {name!r}")

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def open_blob_store(settings: Settings) -> BlobStore:
    """S3 when a bucket is named, else files under LIANXI_EVIDENCE_DIR."""
    if settings.evidence_s3_bucket:
        return S3Blobs(
            settings.evidence_s3_bucket, prefix=settings.evidence_s3_prefix,
            endpoint_url=settings.evidence_s3_endpoint or None, region_name=settings.evidence_s3_region or None,
            aws_access_key_id=settings.evidence_s3_access_key or None,
            aws_secret_access_key=settings.evidence_s3_secret_key or None,
        )
    return FileBlobs(settings.evidence_dir)
