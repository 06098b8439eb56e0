"""What is kept of an uploaded file: its type taken from its bytes (``filetype``, never the
name), only types on the allow-list, and images re-encoded by Pillow without a single metadata
block (EXIF with GPS and device serials, XMP, embedded thumbnails, comments): school photos show
minors and where they are. The ICC profile stays (colours), EXIF orientation is applied first.
A small JPEG thumbnail is made for pages and documents.

HEIC (iPhone photos) is decoded by pillow-heif and kept as JPEG, which every browser shows.
DOCX and XLSX lose the author names of their core properties (services/evidence/office.py);
PDFs are kept as uploaded."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import filetype
from PIL import Image, ImageOps

from services.evidence.office import Unreadable, strip_authors

try:  # HEIC decoding where the wheel installs; without it HEIC is simply not on the allow-list
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIC = True
except ImportError:  # pragma: no cover - depends on the platform's wheels
    HEIC = False

IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", **({"image/heic": "JPEG"} if HEIC else {})}
DOCUMENT_TYPES = {
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
ALLOWED = (*IMAGE_TYPES, *DOCUMENT_TYPES)
THUMB_SIZE = (320, 320)
MAX_PIXELS = 60_000_000  # a 60 MP photo; larger images are refused, not decoded (decompression bombs)


class Refused(Exception):
    """A file that is not kept: ``status`` 415 (type) or 413 (size)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Cleaned:
    data: bytes
    media_type: str
    digest: str  # hex SHA-256 of ``data``
    thumbnail: bytes | None  # JPEG, images only


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sniff(data: bytes) -> str | None:
    kind = filetype.guess(data[:8192]) if data else None
    if kind is None:
        return None
    if kind.mime in ("application/zip",):  # OOXML sniffing needs the zip's directory further in
        kind = filetype.guess(data)
    return str(kind.mime) if kind else None


def clean(data: bytes, *, max_bytes: int) -> Cleaned:
    """The bytes to store for an upload, or ``Refused``."""
    if len(data) > max_bytes:
        raise Refused(413, f"文件超过{max_bytes // 1024 // 1024}MB的上限")
    mime = sniff(data)
    if mime not in ALLOWED:
        raise Refused(415, f"不接受此类文件（识别为 {mime or '未知类型'}）；"
                           "可上传 JPEG、PNG、HEIC 照片或 PDF、DOCX、XLSX 文件")
    if mime in DOCUMENT_TYPES:
        kept = data if mime == "application/pdf" else _office(data)
        return Cleaned(data=kept, media_type=mime, digest=sha256(kept), thumbnail=None)
    image, out_format = _open(data), IMAGE_TYPES[mime]
    try:
        stored = _reencode(image, out_format)
        thumb = _thumbnail(image)
    finally:
        image.close()
    media_type = "image/jpeg" if out_format == "JPEG" else "image/png"
    return Cleaned(data=stored, media_type=media_type, digest=sha256(stored), thumbnail=thumb)


def _office(data: bytes) -> bytes:
    try:
        return strip_authors(data)
    except Unreadable as e:
        if e.too_large:
            raise Refused(413, "文档解压后过大") from None
        raise Refused(415, "文档无法读取，可能已损坏") from None


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise Refused(413, f"图片像素过多（{image.width}×{image.height}）")
            image.load()
    except Refused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Refused(413, "图片像素过多") from None
    except Exception:
        raise Refused(415, "图片无法解码，可能已损坏") from None
    icc = image.info.get("icc_profile")
    upright = ImageOps.exif_transpose(image)  # a new image: no EXIF, no info carried over
    image.close()
    # Only the pixels and the colour profile go on: a fresh image holds no other block.
    if upright.mode not in ("RGB", "RGBA", "L", "LA"):
        upright = upright.convert("RGBA" if "A" in upright.getbands() else "RGB")
    fresh = Image.new(upright.mode, upright.size)
    fresh.paste(upright)
    upright.close()
    if icc:
        fresh.info["icc_profile"] = icc
    return fresh


def _reencode(image: Image.Image, out_format: str) -> bytes:
    buf = io.BytesIO()
    icc = image.info.get("icc_profile")
    extra = {"icc_profile": icc} if icc else {}
    if out_format == "JPEG":
        rgb = image.convert("RGB") if image.mode != "RGB" else image
        rgb.save(buf, "JPEG", quality=88, optimize=True, **extra)
    else:
        image.save(buf, "PNG", optimize=True, **extra)
    return buf.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    thumb = image.convert("RGB")
    thumb.thumbnail(THUMB_SIZE)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=80)
    return buf.getvalue()
