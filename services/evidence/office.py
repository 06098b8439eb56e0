"""Author names out of DOCX and XLSX uploads: the package's core properties (docProps/core.xml)
name who wrote and who last saved a file (``dc:creator``, ``cp:lastModifiedBy``), often a
teacher's or an official's own name. Those two elements are removed; every other part of the
package keeps its exact bytes, name, date and order (parts are recompressed, so the zip's
compressed stream may differ; their contents do not). A package with no author names is kept
as uploaded, byte for byte.

Names inside the document itself (comment and tracked-change authors) are its content and stay."""

from __future__ import annotations

import io
import zipfile
import zlib
from typing import Any

from lxml import etree

CORE_REL = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"
REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
AUTHOR_TAGS = ("{http://purl.org/dc/elements/1.1/}creator",
               "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}lastModifiedBy")
# What a package may expand to while it is rewritten (a zip bomb is refused, not inflated).
MAX_EXPANDED = 256 * 1024 * 1024
_CHUNK = 1 << 20


class Unreadable(Exception):
    """Not a package that can be read (corrupt, or a part that inflates past MAX_EXPANDED)."""

    def __init__(self, detail: str, *, too_large: bool = False) -> None:
        super().__init__(detail)
        self.too_large = too_large


def _parser() -> Any:
    # No DTDs, entities or network: a core.xml is a handful of elements.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _core_parts(z: zipfile.ZipFile) -> set[str]:
    """Where the package says its core properties are (``docProps/core.xml`` by convention)."""
    parts = {"docProps/core.xml"}
    try:
        if z.getinfo("_rels/.rels").file_size > _CHUNK:  # a few relationships, not megabytes
            return parts
        rels = etree.fromstring(z.read("_rels/.rels"), _parser())
    except (KeyError, etree.XMLSyntaxError):
        return parts
    for rel in rels.iter(f"{{{REL_NS}}}Relationship"):
        if rel.get("Type") == CORE_REL and rel.get("Target"):
            parts.add(str(rel.get("Target")).lstrip("/"))
    return parts


def _without_authors(xml: bytes) -> bytes | None:
    """core.xml without its author elements, or None when it names nobody."""
    root = etree.fromstring(xml, _parser())
    found = [el for tag in AUTHOR_TAGS for el in root.iter(tag)]
    if not found:
        return None
    for el in found:
        el.getparent().remove(el)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
    return out


def strip_authors(data: bytes) -> bytes:
    """The package without author names in its core properties (``data`` itself when none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = set(z.namelist())
            cleaned = {}
            for part in _core_parts(z) & names:
                if z.getinfo(part).file_size > _CHUNK:
                    raise Unreadable("core properties larger than a megabyte")
                new = _without_authors(z.read(part))
                if new is not None:
                    cleaned[part] = new
            if not cleaned:
                return data
            return _rewrite(z, cleaned)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, etree.XMLSyntaxError) as e:
        raise Unreadable(f"the package cannot be read: {e}") from None


def _rewrite(z: zipfile.ZipFile, replaced: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    expanded = 0
    with zipfile.ZipFile(out, "w") as w:
        for info in z.infolist():
            copy = zipfile.ZipInfo(info.filename, info.date_time)
            copy.compress_type, copy.external_attr = info.compress_type, info.external_attr
            copy.create_system, copy.comment = info.create_system, info.comment
            if info.filename in replaced:
                w.writestr(copy, replaced[info.filename])
                continue
            if info.is_dir():
                w.writestr(copy, b"")
                continue
            copy.file_size = info.file_size
            with z.open(info) as src, w.open(copy, "w") as dst:
                while chunk := src.read(_CHUNK):
                    expanded += len(chunk)
                    if expanded > MAX_EXPANDED:
                        raise Unreadable("the package expands past its limit", too_large=True)
                    dst.write(chunk)
    return out.getvalue()
