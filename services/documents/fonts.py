"""The font map the brief and the review are set in (HTML/PDF through CSS, DOCX on every run).

A 公文 is set in 方正小标宋简体 (title), 黑体 (一级标题), 楷体_GB2312 (二级标题) and 仿宋_GB2312 (body).
Government PCs have those faces; this server usually has only the configured families
(Debian's Noto CJK). So each role names a chain: the official face first, then the configured
family. CSS lists the chain (fontconfig takes the first face present); the DOCX names the
official face on every run and declares the configured family as its w:altName with the GB2312
charset in the font table, so Word, WPS and LibreOffice all land on a Chinese face.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.settings import Settings, get_settings

OFFICIAL_FACES = {"title": "方正小标宋简体", "heading": "黑体", "kai": "楷体_GB2312", "body": "仿宋_GB2312"}
GENERIC = {"title": "serif", "heading": "sans-serif", "kai": "serif", "body": "serif"}


@dataclass(frozen=True)
class Fonts:
    """Font families by role, and the font file the DOCX charts are drawn with (``index``
    picks a face in a .ttc). The templates read ``fonts.font_title`` and friends, or
    ``fonts.css('body')`` for the whole chain."""

    font_title: str
    font_heading: str
    font_body: str
    chart_font_file: str | None = None
    chart_font_index: int = 0
    official: bool = True

    @classmethod
    def of(cls, settings: Settings | None = None) -> Fonts:
        s = settings or get_settings()
        return cls(s.brief_font_title, s.brief_font_heading, s.brief_font_body, s.brief_chart_font_file,
                   s.brief_chart_font_index, s.brief_official_faces)

    def configured(self, role: str) -> str:
        """The configured family for a role (楷体 falls back to the body family)."""
        return {"title": self.font_title, "heading": self.font_heading, "kai": self.font_body,
                "body": self.font_body}[role]

    def chain(self, role: str) -> list[str]:
        """Official face first (when enabled), then the configured family, without repeats."""
        faces = [OFFICIAL_FACES[role]] if self.official else []
        return list(dict.fromkeys([*faces, self.configured(role)]))

    def face(self, role: str) -> str:
        """The face a DOCX run names for this role."""
        return self.chain(role)[0]

    def css(self, role: str) -> str:
        return ", ".join([f'"{f}"' for f in self.chain(role)] + [GENERIC[role]])

    def alternates(self) -> dict[str, str]:
        """Each face a DOCX may name → the face to use when it is missing (w:altName)."""
        return {self.face(role): self.configured(role) for role in OFFICIAL_FACES
                if self.face(role) != self.configured(role)}
