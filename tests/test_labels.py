"""One set of Chinese labels (services/documents/labels.py) for the pages, the brief and the review.

- every domain event type under events/ has a label, and every label names an event that exists;
- every status or state value shown to people has a label, the values read from where the code
  sets them (events/, projections/, the review's facts) and from the API's published enums;
- the brief (HTML and DOCX), the review (HTML and DOCX) and the pages show the same words for
  the same code, and the brief and review code and templates keep no mapping of their own.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import pkgutil
import re
import typing
from pathlib import Path
from typing import Any

import pytest
from docx import Document
from eventsourcing.domain import Aggregate

import events
from contracts.api_meetings import MeetingOut, TaskOut
from contracts.api_rectifications import Status as RectificationStatus
from events.base import Recorded
from events.stored import OPEN_STATES
from services.documents import brief as brief_doc
from services.documents import labels
from services.documents import review as review_doc
from services.web.base import env as pages_env

ROOT = Path(__file__).parents[1]


# -- event types ----------------------------------------------------------------------------


def domain_event_types() -> set[str]:
    """The class name (the stored topic's last part) of every aggregate's event under events/."""
    found: set[str] = set()
    for info in pkgutil.iter_modules(events.__path__):
        module = importlib.import_module(f"events.{info.name}")
        for _, aggregate in inspect.getmembers(module, inspect.isclass):
            if not issubclass(aggregate, Aggregate) or aggregate.__module__ != module.__name__:
                continue
            for name, member in vars(aggregate).items():
                if inspect.isclass(member) and issubclass(member, Recorded):
                    found.add(name)
    return found


def test_the_walk_finds_the_events_of_every_context() -> None:
    found = domain_event_types()
    assert {"DutyPerformed", "DeadlineExtended", "CampaignPhaseReminderIssued", "PetitionClosed",
            "ReviewAppealDecided", "TaskEscalated", "WarningAcknowledged", "SchoolUpdated"} <= found
    assert len(found) >= 45


def test_every_event_type_has_a_chinese_label() -> None:
    missing = sorted(domain_event_types() - set(labels.EVENT_TYPES))
    assert not missing, f"event types without a label (they would show in English): {missing}"


def test_every_event_label_names_an_event_that_exists() -> None:
    stale = sorted(set(labels.EVENT_TYPES) - domain_event_types())
    assert not stale, f"labels keyed by no event type (the real event shows unlabelled): {stale}"


# -- statuses and states ----------------------------------------------------------------------


def _constants(node: ast.expr) -> set[str]:
    """The string a status is set to, through ``a if cond else b``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _constants(node.body) | _constants(node.orelse)
    return set()


def set_values(path: str, field: str) -> set[str]:
    """Every value the module at ``path`` gives ``field``: ``x.field = "v"``, ``{"field": "v"}``,
    ``f(field="v")``."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    values: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == field:
                    values |= _constants(node.value)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == field:
                    values |= _constants(value)
        elif isinstance(node, ast.Call):
            values |= {v for kw in node.keywords if kw.arg == field for v in _constants(kw.value)}
    return values


def _literal(annotation: Any) -> set[str]:
    return {a for a in typing.get_args(annotation) if isinstance(a, str)}


STATUS_SOURCES: list[tuple[str, dict[str, str], set[str]]] = [
    ("rectification (events)", labels.RECT_STATUS, set_values("events/rectifications.py", "status")),
    ("rectification (API)", labels.RECT_STATUS, _literal(RectificationStatus)),
    ("task (events)", labels.TASK_STATUS, set_values("events/meetings.py", "status") | set(OPEN_STATES)),
    ("task (API)", labels.TASK_STATUS, _literal(TaskOut.model_fields["status"].annotation)),
    ("meeting (API)", labels.MEETING_STATUS, _literal(MeetingOut.model_fields["status"].annotation)),
    ("campaign phase", labels.PHASE_STATE, set_values("projections/campaign_progress.py", "state")),
    ("petition", labels.PETITION_STATUS, set_values("projections/petitions.py", "status")),
    ("review appeal", labels.APPEAL_STATUS, set_values("services/reviews/facts.py", "status")),
    ("member-unit role", labels.ROLE_NAMES, {"liaison", "lead", "auditor"}),
]


@pytest.mark.parametrize(("what", "table", "values"), STATUS_SOURCES, ids=[s[0] for s in STATUS_SOURCES])
def test_every_status_shown_to_people_has_a_label(what: str, table: dict[str, str], values: set[str]) -> None:
    assert len(values) >= 2, f"found no {what} statuses: the scan lost its source"
    missing = sorted(values - set(table))
    assert not missing, f"{what} statuses without a label: {missing}"


def test_the_scan_reads_the_values_the_code_sets() -> None:
    assert set_values("events/rectifications.py", "status") == {
        "reported", "assigned", "in_progress", "completed", "closed", "reopened"}
    assert set_values("projections/campaign_progress.py", "state") == {"closed", "open", "not-started"}
    assert set_values("services/reviews/facts.py", "status") == {"pending", "upheld", "rejected"}


# -- the same words on the pages, in the brief and in the review -------------------------------


def small_brief() -> dict[str, Any]:
    """A brief with one item of each named code: a reopened rectification, a verified task,
    an open campaign phase, a major hazard."""
    item = {"school_id": "S1", "description": "围墙破损", "severity": "major", "deadline": "2025-03-01",
            "days_overdue": 5, "escalation_name": None, "status": "reopened", "ref": 1, "event_ids": ["e1"],
            "id": "r1"}
    task = {"name": "旗公安局", "description": "护学岗", "deadline": "2025-03-10", "status": "verified",
            "completed_on": "2025-03-09", "days_overdue": 0, "ref": 2, "unit": "public-security"}
    phase = {"name": "自查", "code": "self-check", "state": "open", "deadline": "2025-04-01", "on_time": 3,
             "schools": 5, "late": 1, "missed": 1, "problems": 2}
    unit = {"code": "public-security", "name": "旗公安局", "records": 3, "schools": 2, "findings": 1, "rect_open": 1,
            "rect_overdue": 1, "rect_escalated": 0, "on_time_rate": 0.5, "warnings_acknowledged": 1,
            "warnings_received": 1, "blind_spots": 0}
    chart = {"title": "履职记录数", "unit": "条", "rows": [("旗公安局", 3.0, "3")], "max": 3.0, "color": "#b22222"}
    return {
        "issuer": "旗校园安全局际联席会议办公室", "number": 1, "date": "2025-03-15", "convener": "旗教育局",
        "meeting": {"meeting_id": "m1", "year": 2025, "number": 1, "title": "第一季度联席会议", "status": "held",
                    "held_on": "2025-03-15", "scheduled_for": "2025-03-15", "place": None},
        "period_start": "2025-01-01", "period_end": "2025-03-31", "as_of": "2025-03-15",
        "attendance": ["旗公安局"], "absent": [], "units": [unit],
        "totals": {"records": 3, "findings": 1, "overdue": 1, "escalated": 0, "overdue_tasks": 0, "critical": 1},
        "overdue_groups": [{"unit": "public-security", "name": "旗公安局", "count": 1, "escalated": 0,
                            "items": [item]}],
        "overdue_tasks": [],
        "critical": [{**item, "found_on": "2025-01-05", "unit_name": "旗公安局", "ref": 3}],
        "campaigns": [{"name": "春季校园安全专项整治", "campaign_id": "c1", "ref": 4, "current_name": "自查",
                       "phases": [phase], "behind_schools": []}],
        "warning_summary": {"count": 0, "recipients": 0, "acknowledged": 0, "rate": None,
                            "median_latency_minutes": None, "escalated": 0, "slow": 0},
        "warnings": [], "blind_spots": [], "proposals": [], "decisions": [],
        "follow_up": {"total": 1, "completed": 1, "completed_on_time": 1, "overdue": 0, "items": [task]},
        "refs": [{"n": 1, "label": "整改事项", "event_ids": ["e1"], "href": None}],
        "charts": {"activity": chart, "on_time": {**chart, "title": "按期完成率", "unit": "%"}},
    }


def small_review() -> dict[str, Any]:
    """A review with an upheld appeal and a backdated extension of a deadline."""
    appeal = {"appeal_id": "a1", "unit": "fire", "clause": "5", "item": "event:e9", "reason": "已按期整改",
              "status": "upheld", "decision_reason": "证据充分"}
    entry = {"item": "event:e9", "label": "整改事项逾期", "points": 1.0, "detail": {}, "event_ids": ["e9"],
             "event_count": 1, "counted": False, "appeal": {k: appeal[k] for k in ("status", "decision_reason")}}
    unit = {"unit": "fire", "name": "旗消防大队", "rank": 1, "score": 99.0, "credit": 100.0, "deductions": 1.0,
            "clauses": [{"clause": "5", "kind": "deduction", "text": "逾期扣分", "points": 0.0, "max_points": 10,
                         "capped": False, "items": [entry]}]}
    checkpoint = {"position": 9, "head_hash": "ab", "time": "2026-01-01T00:00:00+00:00", "public_key": "pk",
                  "signature": "sig"}
    return {
        "format": "lianxi-review/1", "title": "2025年度成员单位考核结果", "year": 2025, "as_of": "2026-01-31",
        "rules": {"name": "review-2025", "title": "考核细则", "version": 1, "scale": 100}, "checkpoint": checkpoint,
        "log": {"events_read": 9, "events_used": 9, "head_position": 9, "schools": 1},
        "ranking": [{"rank": 1, "unit": "fire", "name": "旗消防大队", "score": 99.0}], "units": [unit],
        "backdated": {"grace_days": 7, "count": 1, "by_unit": {"fire": 1},
                      "columns": ["unit", "event_id", "type", "occurred_on", "recorded_at", "days_late"],
                      "entries": [["fire", "e7", "DeadlineExtended", "2025-03-01", "2025-03-20T00:00:00+00:00", 19]]},
        "appeals": [appeal],
    }


def docx_text(data: bytes) -> str:
    doc = Document(io.BytesIO(data))
    cells = [c.text for t in doc.tables for row in t.rows for c in row.cells]
    return "\n".join([p.text for p in doc.paragraphs] + cells)


@pytest.mark.parametrize("fmt", ["html", "docx"])
def test_the_brief_names_codes_as_the_pages_do(fmt: str) -> None:
    body = brief_doc.render(small_brief(), fmt)
    text = body.decode() if fmt == "html" else docx_text(body)
    names = [labels.name_of(labels.RECT_STATUS, "reopened"), labels.name_of(labels.TASK_STATUS, "verified"),
             labels.name_of(labels.PHASE_STATE, "open"), labels.name_of(labels.SEVERITY, "major")]
    for name in names:
        assert name in text, f"{name!r} missing from the brief ({fmt})"
    for code in ("reopened", "verified", "major"):
        assert f">{code}<" not in text and f"\n{code}\n" not in text  # never the raw code


@pytest.mark.parametrize("fmt", ["html", "docx"])
def test_the_review_names_appeals_and_event_types_from_the_labels(fmt: str) -> None:
    body = review_doc.render(small_review(), fmt)
    text = body.decode() if fmt == "html" else docx_text(body)
    assert labels.name_of(labels.APPEAL_STATUS, "upheld") in text
    assert labels.name_of(labels.EVENT_TYPES, "DeadlineExtended") in text
    assert "DeadlineExtended" not in text


def test_the_pages_show_the_same_status_names() -> None:
    macros: Any = pages_env.get_template("macros.html.j2").module
    rect = str(macros.rect_status({"status": "reopened", "overdue": False, "escalation_level": 0}))
    task = str(macros.task_status({"status": "verified", "overdue": False, "escalation_level": 0}))
    assert labels.name_of(labels.RECT_STATUS, "reopened") in rect
    assert labels.name_of(labels.TASK_STATUS, "verified") in task


STATUS_TABLES = [labels.RECT_STATUS, labels.TASK_STATUS, labels.PHASE_STATE, labels.MEETING_STATUS,
                 labels.PETITION_STATUS, labels.APPEAL_STATUS]
OWN_CODE = ["services/documents/brief.py", "services/documents/review.py", "services/meetings/brief_data.py",
            "services/templates/brief.html.j2", "services/templates/review.html.j2"]


@pytest.mark.parametrize("path", OWN_CODE)
def test_the_brief_and_the_review_keep_no_mapping_of_their_own(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    codes = {code for table in [*STATUS_TABLES, labels.SEVERITY, labels.EVENT_TYPES] for code in table}
    # a code mapped to a text (``"reopened": "重新整改"``), in Python or in a template
    keyed = sorted({m for m in re.findall(r"""["']([\w-]+)["']\s*:\s*["']""", text) if m in codes})
    assert not keyed, f"{path} maps codes itself: {keyed}"
    names = sorted({name for table in STATUS_TABLES for name in table.values() if name in text})
    assert not names, f"{path} spells out label text instead of reading documents/labels.py: {names}"
