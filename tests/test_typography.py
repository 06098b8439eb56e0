"""Official Chinese typography in what people read (issue 16): full-width punctuation beside Chinese
in the brief (HTML and Word), the review (HTML and Word) and the texts the demo stores; Chinese
numerals in meeting titles and the brief's issue number."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
from docx import Document

from contracts.rules import named_rules
from contracts.typography import ascii_punctuation_beside_cjk, full_width, official_text
from services.documents import brief as brief_doc
from services.documents import labels
from services.documents import review as review_doc
from services.platform import Platform
from services.reviews.document import compute_review
from tests.test_brief import brief, demo  # noqa: F401  (module fixtures: a demo year and its last brief)
from tests.test_web_readable import visible

# Payload fields that hold codes, ids, digests or times, never sentences.
NOT_TEXT = {"event_id", "agency", "school_id", "school_ids", "code", "duty_code", "category", "severity", "kind",
            "status", "template", "phase", "occurred_on", "recorded_at", "logged_by", "actor", "evidence", "towns",
            "scope"}


def docx_text(data: bytes) -> str:
    doc = Document(io.BytesIO(data))
    cells = [p.text for t in doc.tables for row in t.rows for c in row.cells for p in c.paragraphs]
    return "\n".join([p.text for p in doc.paragraphs] + cells)


def strings(value: Any, key: str = "") -> list[str]:
    """Every string a payload holds, except under fields that hold codes."""
    if key in NOT_TEXT:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings(v, k)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v, key)]
    return []


def test_the_helpers_find_and_fix_what_they_must() -> None:
    assert len(ascii_punctuation_beside_cjk("(一)旗教育局:逾期19项,已升级19项")) == 4
    assert full_width("(一)旗教育局:逾期19项,已升级19项") == "（一）旗教育局：逾期19项，已升级19项"
    assert full_width("1,000 items (QS), a:b") == "1,000 items (QS), a:b"  # Latin text and numbers stay
    assert full_width("生产许可(QS)") == "生产许可（QS）"
    assert official_text("嚴格落實管理人員及從業(yè)人員持證上崗制度。") == "严格落实管理人员及从业人员持证上岗制度。"
    assert official_text("学生(幼儿)平安保险,要严格") == "学生（幼儿）平安保险，要严格"
    assert [labels.chinese_number(n) for n in (1, 4, 10, 11, 20, 21, 99, 100)] == [
        "一", "四", "十", "十一", "二十", "二十一", "九十九", "100"]
    assert labels.meeting_title(2026, 4) == "旗校园安全局际联席会议2026年第四次会议"
    assert labels.brief_issue(2026, 12) == "2026年第十二期"


def test_the_brief_in_html_and_word_uses_full_width_punctuation(brief: dict[str, Any]) -> None:  # noqa: F811
    html = visible(brief_doc.render_html(brief))
    word = docx_text(brief_doc.render_docx(brief))
    assert ascii_punctuation_beside_cjk(html) == []
    assert ascii_punctuation_beside_cjk(word) == []
    issue = labels.brief_issue(brief["meeting"]["year"], brief["number"])
    assert issue in html and issue in word and f"第{labels.chinese_number(brief['number'])}期" in issue
    assert "第四次会议" in brief["meeting"]["title"]  # the demo's fourth meeting of the year, by its default title


@pytest.fixture(scope="module")
def review(demo: Platform) -> dict[str, Any]:  # noqa: F811
    doc: dict[str, Any] = compute_review(demo, year=2024, rules=named_rules("review-2026.v1"))
    return doc


def test_the_review_in_html_and_word_uses_full_width_punctuation(review: dict[str, Any]) -> None:
    assert review["units"] and review["method"]["clauses"]
    html = visible(review_doc.render_html(review))
    word = docx_text(review_doc.render_docx(review))
    assert ascii_punctuation_beside_cjk(html) == []
    assert ascii_punctuation_beside_cjk(word) == []
    assert "第一条" in html


def test_the_texts_the_demo_stores_use_full_width_punctuation(demo: Platform) -> None:  # noqa: F811
    wrong: dict[str, list[str]] = {}
    head = demo.app.recorder.max_notification_id() or 0
    texts = 0
    for n in demo.app.recorder.select_notifications(start=1, limit=head):
        payload = orjson.loads(n.state)
        for s in strings(payload):
            texts += 1
            found = ascii_punctuation_beside_cjk(s)
            if found:
                wrong.setdefault(n.topic.rsplit(".", 1)[-1], []).extend(found)
    assert texts > 1000
    assert wrong == {}
