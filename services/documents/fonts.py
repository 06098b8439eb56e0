"""The font map the brief and the review are set in (HTML/PDF through CSS, DOCX on every run)."""

from __future__ import annotations

from dataclasses import dataclass

from services.settings import Settings, get_settings


@dataclass(frozen=True)
class Fonts:
    """Font families by role, and the font file the DOCX charts are drawn with (``index``
    picks a face in a .ttc). The templates read ``fonts.font_title`` and friends."""

    font_title: str
    font_heading: str
    font_body: str
    chart_font_file: str | None = None
    chart_font_index: int = 0

    @classmethod
    def of(cls, settings: Settings | None = None) -> Fonts:
        s = settings or get_settings()
        return cls(s.brief_font_title, s.brief_font_heading, s.brief_font_body, s.brief_chart_font_file,
                   s.brief_chart_font_index)
