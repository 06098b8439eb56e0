"""Official Chinese typography for text people read.

The seeds were copied from web pages: their punctuation is half-width ("工作状况,制定"), and a few
paragraphs are Traditional characters with pinyin glosses ("從業(yè)人員"). ``official_text`` turns
such a seed passage into what a 公文 prints (Simplified, glosses dropped, full-width punctuation);
the catalogue keeps the seed's own words beside it. ``ascii_punctuation_beside_cjk`` finds what a
generated text still gets wrong (the tests scan briefs, reviews and the demo's texts with it).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
# A pinyin gloss: lowercase latin letters with at least one tone mark, in ASCII brackets right after
# a Chinese character (從業(yè) → 從業).
_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ"
_GLOSS = re.compile(rf"(?<=[{_CJK}])\((?=[a-zü{_TONED}]*[{_TONED}])[a-zü{_TONED}]+\)")
_FULL = {",": "，", ";": "；", ":": "：", "?": "？", "!": "！"}
# A Chinese character, or full-width punctuation that only Chinese text uses.
_CHINESE = re.compile(rf"[{_CJK}\u3001\u3002\uff08\uff09\uff0c\uff1a\uff1b\u201c\u201d\u300a\u300b]")
_BESIDE = re.compile(rf"[{_CJK}][(),:;]|[(),:;][{_CJK}]")
_PAREN = re.compile(r"\(([^()]*)\)")


@cache
def _to_simplified() -> Any:
    import opencc  # the OpenCC project's own binding; its t2s tables are the reference conversion

    return opencc.OpenCC("t2s")


def is_chinese(ch: str) -> bool:
    return bool(ch) and _CHINESE.match(ch) is not None


def full_width(text: str) -> str:
    """ASCII , ; : ? ! beside Chinese become full-width, and so do brackets around or beside it;
    numbers and codes ("1,000", "(QS)" in Latin text) are left alone."""
    def paren(m: re.Match[str]) -> str:
        before = text[m.start() - 1] if m.start() else ""
        after = text[m.end()] if m.end() < len(text) else ""
        if any(is_chinese(c) for c in (m.group(1) + before + after)):
            return f"（{m.group(1)}）"
        return m.group(0)

    text = _PAREN.sub(paren, text)
    out = []
    for i, ch in enumerate(text):
        if ch in _FULL and (is_chinese(text[i - 1] if i else "") or is_chinese(text[i + 1:i + 2])):
            ch = _FULL[ch]
        out.append(ch)
    return "".join(out)


def official_text(seed: str) -> str:
    """A seed passage as people read it: pinyin glosses dropped, Simplified, full-width punctuation."""
    return full_width(_to_simplified().convert(_GLOSS.sub("", seed)))


def ascii_punctuation_beside_cjk(text: str) -> list[str]:
    """Each place where an ASCII ( ) , : ; touches a Chinese character, with a little context."""
    return [text[max(m.start() - 6, 0):m.end() + 6] for m in _BESIDE.finditer(text)]
