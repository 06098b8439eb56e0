"""Hazards and rectifications, pure domain: given events -> when command -> then events
(or a clear error). Every invariant of issue 3 has a test here."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts.catalogue import CatalogueError, default_catalogue
from contracts.escalation import default_escalation_rules, load_escalation_rules
from events.base import COUNTY_TZ
from events.errors import InvariantViolated, NotPermitted
from events.escalation import EscalationStep
from events.rectifications import Actor, Rectification, rectification_id, step_event_id

CAT = default_catalogue()
CATEGORIES = [c.code for c in CAT.hazards.categories]
SEVERITIES = [s.code for s in CAT.hazards.severities]
UNITS = {u.code for u in CAT.units.units}
SCHOOLS = {"S00001", "S00002"}
STEPS = default_escalation_rules().domain_steps()

LEAD = Actor("education", True, "lead:t1:安全办")
EDU_LIAISON = Actor("education", False, "liaison:t2:教育局联络员")
FIRE = Actor("fire-rescue", False, "liaison:t3:消防联络员")
POLICE = Actor("public-security", False, "liaison:t4:公安联络员")
MARKET = Actor("market-supervision", False, "liaison:t5:市监联络员")

FOUND = date(2025, 3, 10)


def at(day: date, hour: int = 10) -> datetime:
    """A moment on a county-local day."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=COUNTY_TZ).astimezone(UTC)


def report(actor: Actor = FIRE, *, kind: str = "unit", units: list[str] | None = None, found_on: date = FOUND,
           now: datetime | None = None, **over: Any) -> Rectification:
    kw: dict[str, Any] = {
        "item_id": uuid.uuid4(), "actor": actor, "kind": kind, "units": units or [], "school_id": "S00001",
        "category": "fire", "severity": "major", "description": "疏散通道堆放杂物", "found_on": found_on,
        "categories": CATEGORIES, "severities": SEVERITIES, "known_unit": UNITS.__contains__,
        "school_exists": SCHOOLS.__contains__, "request_digest": "", "now": now or at(found_on + timedelta(days=1)),
    }
    kw.update(over)
    return Rectification.report(**kw)


def assign(agg: Rectification, *, actor: Actor = LEAD, deadline: date = date(2025, 4, 10),
           day: date = date(2025, 3, 12), lead_unit: str = "fire-rescue", coop: list[str] | None = None,
           **over: Any) -> None:
    kw: dict[str, Any] = {
        "actor": actor, "lead_unit": lead_unit, "cooperating_units": ["education"] if coop is None else coop,
        "deadline": deadline, "measures": ["清理疏散通道", "组织疏散演练"],
        "funds": {"amount_cny": "12000", "source": "学校公用经费"}, "known_unit": UNITS.__contains__,
        "now": at(day),
    }
    kw.update(over)
    agg.assign(**kw)


def given(*steps: Callable[[Rectification], Any], agg: Rectification | None = None) -> Rectification:
    """An aggregate after the given steps, with their events already recorded (collected)."""
    agg = agg or report()
    for step in steps:
        step(agg)
    agg.collect_events()
    return agg


def then(agg: Rectification) -> list[Any]:
    return list(agg.collect_events())


def types(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def assigned(**kw: Any) -> Callable[[Rectification], None]:
    return lambda a: assign(a, **kw)


def progressed(actor: Actor = FIRE, day: date = date(2025, 3, 20)) -> Callable[[Rectification], None]:
    return lambda a: a.report_progress(actor=actor, note="已清理一半", percent=50, evidence=[], now=at(day))


def completed(actor: Actor = FIRE, day: date = date(2025, 4, 1)) -> Callable[[Rectification], None]:
    return lambda a: a.complete(actor=actor, summary="已清理完毕", evidence=["sha256:abc"], now=at(day))


def verified(day: date = date(2025, 4, 3)) -> Callable[[Rectification], None]:
    return lambda a: a.verify(actor=LEAD, note="复核合格", now=at(day))


def replay(events: list[Any]) -> Rectification:
    agg: Any = None
    for e in events:
        agg = e.mutate(agg)
    return agg  # type: ignore[no-any-return]


# -- HazardReported ------------------------------------------------------------------------


def test_a_unit_reports_a_hazard_in_its_own_name() -> None:
    agg = report(FIRE)
    [e] = then(agg)
    assert type(e).__name__ == "HazardReported"
    assert e.reported_by == {"kind": "unit", "units": ["fire-rescue"], "school_id": None}
    assert (e.agency, e.school_id, e.category, e.severity, e.found_on, e.occurred_on) == (
        "fire-rescue", "S00001", "fire", "major", "2025-03-10", "2025-03-10")
    assert e.event_id == str(agg.id)
    assert agg.status == "reported"


def test_a_unit_cannot_report_in_another_units_name() -> None:
    with pytest.raises(NotPermitted, match="own name"):
        report(POLICE, units=["fire-rescue"])


def test_a_school_self_check_names_the_school_and_no_units() -> None:
    [e] = then(report(EDU_LIAISON, kind="self-check"))
    assert e.reported_by == {"kind": "self-check", "units": [], "school_id": "S00001"}
    with pytest.raises(InvariantViolated, match="self-check names no units"):
        report(EDU_LIAISON, kind="self-check", units=["education"])


def test_a_joint_inspection_names_several_units_and_is_reported_by_one_of_them_or_the_lead() -> None:
    [e] = then(report(POLICE, kind="joint-inspection", units=["public-security", "market-supervision"]))
    assert e.reported_by["units"] == ["public-security", "market-supervision"]
    then(report(LEAD, kind="joint-inspection", units=["public-security", "market-supervision"]))
    with pytest.raises(NotPermitted, match="took part in the joint inspection"):
        report(FIRE, kind="joint-inspection", units=["public-security", "market-supervision"])
    with pytest.raises(InvariantViolated, match="at least two units"):
        report(POLICE, kind="joint-inspection", units=["public-security"])
    with pytest.raises(InvariantViolated, match="unknown member unit"):
        report(POLICE, kind="joint-inspection", units=["public-security", "no-such-unit"])


@pytest.mark.parametrize(("over", "message"), [
    ({"kind": "rumour"}, "reported_by.kind"),
    ({"category": "earthquake"}, "hazard category 'earthquake'"),
    ({"severity": "一般"}, "severity"),
    ({"school_id": "S99999"}, "unknown school"),
    ({"description": "   "}, "description must not be blank"),
    ({"now": at(FOUND - timedelta(days=1))}, "in the future"),
])
def test_a_bad_report_is_refused_with_a_clear_error(over: dict[str, Any], message: str) -> None:
    with pytest.raises(InvariantViolated, match=message):
        report(**over)


def test_categories_and_severities_come_from_the_catalogue() -> None:
    assert {"fire", "food", "drinking-water", "school-bus", "drowning", "bullying", "surroundings", "dormitory",
            "building", "lab-chemicals", "network", "psychological", "environment"} == set(CATEGORIES)
    assert {s.code: s.name for s in CAT.hazards.severities} == {"general": "一般", "major": "较大", "critical": "重大"}


def test_ids_follow_from_the_idempotency_key() -> None:
    assert rectification_id("fire-rescue", "k1") == rectification_id("fire-rescue", "k1")
    assert rectification_id("fire-rescue", "k1") != rectification_id("public-security", "k1")
    assert rectification_id("fire-rescue", None) != rectification_id("fire-rescue", None)


# -- RectificationAssigned -----------------------------------------------------------------


def test_the_lead_assigns_units_deadline_measures_and_funds() -> None:
    agg = given()
    assign(agg, coop=["education", "public-security"])
    [e] = then(agg)
    assert type(e).__name__ == "RectificationAssigned"
    assert (e.agency, e.lead_unit, e.cooperating_units, e.deadline) == (
        "education", "fire-rescue", ["education", "public-security"], "2025-04-10")
    assert e.funds == {"amount_cny": "12000.00", "source": "学校公用经费"}
    assert e.measures == ["清理疏散通道", "组织疏散演练"]
    assert agg.status == "assigned"
    assert agg.responsible_units == ["fire-rescue", "education", "public-security"]


def test_only_the_lead_assigns() -> None:
    for actor in (FIRE, EDU_LIAISON):
        with pytest.raises(NotPermitted, match="only the lead bureau may assign"):
            assign(given(), actor=actor)


def test_a_deadline_is_never_earlier_than_found_on() -> None:
    agg = given(agg=report(found_on=date(2025, 3, 10), now=at(date(2025, 3, 10))))
    with pytest.raises(InvariantViolated, match=r"earlier than the day the hazard was found \(2025-03-10\)"):
        assign(agg, deadline=date(2025, 3, 9), day=date(2025, 3, 10))
    assert then(agg) == []


def test_a_deadline_is_not_already_past_when_set() -> None:
    with pytest.raises(InvariantViolated, match="already past"):
        assign(given(), deadline=date(2025, 3, 11), day=date(2025, 3, 12))


@pytest.mark.parametrize(("over", "message"), [
    ({"lead_unit": "no-such-unit"}, "unknown member unit"),
    ({"coop": ["fire-rescue"]}, "cannot also be a cooperating unit"),
    ({"measures": []}, "at least one measure"),
    ({"measures": ["  "]}, "blank"),
    ({"funds": {"amount_cny": "-5", "source": "x"}}, "non-negative CNY amount"),
    ({"funds": {"amount_cny": "1.234", "source": "x"}}, "at most 2 decimals"),
    ({"funds": {"amount_cny": "100", "source": " "}}, "funds source"),
])
def test_a_bad_assignment_is_refused(over: dict[str, Any], message: str) -> None:
    with pytest.raises(InvariantViolated, match=message):
        assign(given(), **over)


def test_an_item_is_assigned_once_and_later_deadlines_move_by_extension() -> None:
    with pytest.raises(InvariantViolated, match=r"already assigned.*extension"):
        assign(given(assigned()))


# -- progress and completion ---------------------------------------------------------------


def test_responsible_units_report_progress_and_completion() -> None:
    agg = given(assigned())
    agg.report_progress(actor=EDU_LIAISON, note="已清理一半", percent=50, evidence=["https://x/1.jpg"],
                        now=at(date(2025, 3, 20)))
    agg.complete(actor=FIRE, summary="已清理完毕", evidence=["sha256:abc"], now=at(date(2025, 4, 1)))
    events = then(agg)
    assert types(events) == ["RectificationProgressReported", "RectificationCompleted"]
    assert (events[0].agency, events[0].percent, events[0].evidence) == ("education", 50, ["https://x/1.jpg"])
    assert (events[1].agency, events[1].deadline, events[1].occurred_on) == ("fire-rescue", "2025-04-10", "2025-04-01")
    assert agg.status == "completed"


def test_only_a_responsible_unit_reports_progress_or_completion() -> None:
    agg = given(assigned())
    with pytest.raises(NotPermitted, match=r"only a responsible unit .*fire-rescue, education.* report progress"):
        progressed(POLICE)(agg)
    with pytest.raises(NotPermitted, match="report completion"):
        completed(MARKET)(agg)
    assert then(agg) == []
    not_education = given(assigned(coop=[]))
    with pytest.raises(NotPermitted, match="'education' is not one of them"):
        completed(LEAD)(not_education)  # the lead bureau is responsible only when assigned


def test_nothing_is_reported_before_assignment() -> None:
    with pytest.raises(InvariantViolated, match="not assigned yet"):
        progressed()(given())
    with pytest.raises(InvariantViolated, match="not assigned yet"):
        completed()(given())


def test_a_completion_needs_evidence_and_comes_once() -> None:
    agg = given(assigned())
    with pytest.raises(InvariantViolated, match="needs at least one evidence reference"):
        agg.complete(actor=FIRE, summary="完成", evidence=[], now=at(date(2025, 4, 1)))
    agg = given(assigned(), completed())
    with pytest.raises(InvariantViolated, match="already reported"):
        completed()(agg)
    with pytest.raises(InvariantViolated, match="awaits the lead bureau's verification"):
        progressed(day=date(2025, 4, 2))(agg)


def test_progress_percent_is_bounded() -> None:
    with pytest.raises(InvariantViolated, match="between 0 and 100"):
        given(assigned()).report_progress(actor=FIRE, note="x", percent=101, evidence=[], now=at(date(2025, 3, 20)))


# -- verification, rejection, reopening ----------------------------------------------------


def test_verification_only_after_completion() -> None:
    for steps in ((), (assigned(),), (assigned(), progressed())):
        with pytest.raises(InvariantViolated, match="verification comes only after completion"):
            verified()(given(*steps))


def test_only_the_lead_verifies() -> None:
    agg = given(assigned(), completed())
    for actor in (FIRE, EDU_LIAISON):
        with pytest.raises(NotPermitted, match="销号"):
            agg.verify(actor=actor, note="", now=at(date(2025, 4, 3)))


def test_verification_closes_and_records_whether_it_was_on_time() -> None:
    agg = given(assigned(), completed(day=date(2025, 4, 10)))  # on the deadline day: on time
    verified(day=date(2025, 4, 12))(agg)
    [e] = then(agg)
    assert (type(e).__name__, e.on_time, e.completed_on, e.deadline, e.agency) == (
        "RectificationVerified", True, "2025-04-10", "2025-04-10", "education")
    assert agg.status == "closed"
    late = given(assigned(), completed(day=date(2025, 4, 11)))
    verified(day=date(2025, 4, 12))(late)
    assert then(late)[0].on_time is False


def test_nothing_happens_to_a_closed_item_except_reopening_by_the_lead() -> None:
    agg = given(assigned(), completed(), verified())
    later = date(2025, 4, 5)
    attempts: list[Callable[[], Any]] = [
        lambda: progressed(day=later)(agg),
        lambda: completed(day=later)(agg),
        lambda: verified(day=later)(agg),
        lambda: assign(agg, day=later, deadline=date(2025, 5, 1)),
        lambda: agg.extend(actor=LEAD, reason="x", new_deadline=date(2025, 5, 1), max_extensions=2, now=at(later)),
    ]
    for attempt in attempts:
        with pytest.raises(InvariantViolated, match="is closed"):
            attempt()
    assert agg.sweep(at(date(2025, 6, 1)), STEPS) == 0
    with pytest.raises(NotPermitted, match="only the lead bureau may reject"):
        agg.reject(actor=FIRE, reason="反弹", new_deadline=date(2025, 5, 1), now=at(later))
    agg.reject(actor=LEAD, reason="回头看发现反弹", new_deadline=date(2025, 5, 1), now=at(later))
    [e] = then(agg)
    assert (type(e).__name__, e.previous_status, e.new_deadline) == ("RectificationRejected", "closed", "2025-05-01")
    assert (agg.status, agg.deadline, agg.rejections) == ("reopened", "2025-05-01", 1)
    completed(day=date(2025, 4, 20))(agg)  # the responsible unit redoes it
    assert agg.status == "completed"


def test_the_lead_rejects_a_completion_with_a_reason_and_a_new_deadline() -> None:
    agg = given(assigned(), completed())
    with pytest.raises(InvariantViolated, match="reason must not be blank"):
        agg.reject(actor=LEAD, reason=" ", new_deadline=date(2025, 5, 1), now=at(date(2025, 4, 2)))
    with pytest.raises(InvariantViolated, match="already past"):
        agg.reject(actor=LEAD, reason="不彻底", new_deadline=date(2025, 4, 1), now=at(date(2025, 4, 2)))
    agg.reject(actor=LEAD, reason="整改不彻底", new_deadline=date(2025, 4, 20), now=at(date(2025, 4, 2)))
    [e] = then(agg)
    assert (e.reason, e.previous_status, e.agency) == ("整改不彻底", "completed", "education")
    assert (agg.status, agg.completed_on) == ("reopened", None)


def test_only_a_completed_or_closed_item_can_be_rejected() -> None:
    with pytest.raises(InvariantViolated, match="only a reported completion or a closed item"):
        given(assigned(), progressed()).reject(actor=LEAD, reason="x", new_deadline=date(2025, 5, 1),
                                               now=at(date(2025, 3, 25)))


# -- DeadlineExtended ----------------------------------------------------------------------


def test_the_lead_extends_with_a_reason_up_to_the_configured_limit() -> None:
    agg = given(assigned())
    with pytest.raises(NotPermitted, match="extend a deadline"):
        agg.extend(actor=FIRE, reason="设备未到", new_deadline=date(2025, 5, 1), max_extensions=2,
                   now=at(date(2025, 4, 1)))
    with pytest.raises(InvariantViolated, match="reason must not be blank"):
        agg.extend(actor=LEAD, reason="", new_deadline=date(2025, 5, 1), max_extensions=2, now=at(date(2025, 4, 1)))
    with pytest.raises(InvariantViolated, match="must be later than the current one"):
        agg.extend(actor=LEAD, reason="设备未到", new_deadline=date(2025, 4, 10), max_extensions=2,
                   now=at(date(2025, 4, 1)))
    agg.extend(actor=LEAD, reason="设备未到", new_deadline=date(2025, 5, 1), max_extensions=1, now=at(date(2025, 4, 1)))
    [e] = then(agg)
    assert (type(e).__name__, e.previous_deadline, e.new_deadline, e.extension) == (
        "DeadlineExtended", "2025-04-10", "2025-05-01", 1)
    with pytest.raises(InvariantViolated, match=r"extended 1 time.*most allowed \(1\)"):
        agg.extend(actor=LEAD, reason="再延", new_deadline=date(2025, 6, 1), max_extensions=1,
                   now=at(date(2025, 4, 20)))


def test_no_extension_once_completion_is_reported_or_before_assignment() -> None:
    with pytest.raises(InvariantViolated, match="nothing to extend"):
        given(assigned(), completed()).extend(actor=LEAD, reason="x", new_deadline=date(2025, 5, 1),
                                              max_extensions=2, now=at(date(2025, 4, 2)))
    with pytest.raises(InvariantViolated, match="not assigned yet"):
        given().extend(actor=LEAD, reason="x", new_deadline=date(2025, 5, 1), max_extensions=2,
                       now=at(date(2025, 4, 2)))


# -- overdue and escalation (the scheduler's steps) ----------------------------------------


def test_nothing_is_overdue_on_the_deadline_day() -> None:
    agg = given(assigned())  # deadline 2025-04-10
    assert agg.sweep(at(date(2025, 4, 10), 23), STEPS) == 0
    assert then(agg) == []


def test_the_day_after_the_deadline_the_item_is_overdue_and_supervised() -> None:
    agg = given(assigned())
    now = at(date(2025, 4, 11), 9)
    assert agg.sweep(now, STEPS) == 2
    overdue, escalated = then(agg)
    assert (type(overdue).__name__, overdue.deadline, overdue.days_overdue, overdue.agency) == (
        "RectificationOverdue", "2025-04-10", 1, "fire-rescue")
    assert (escalated.level, escalated.name, escalated.due_on, escalated.rules_version) == (1, "督办", "2025-04-11", 1)
    assert overdue.event_id == step_event_id(agg.id, "2025-04-10", 0)
    assert escalated.event_id == step_event_id(agg.id, "2025-04-10", 1)
    assert agg.sweep(now, STEPS) == 0  # a re-run takes nothing again
    assert agg.sweep(now + timedelta(hours=5), STEPS) == 0


def test_escalation_climbs_step_by_step_and_each_step_is_taken_once() -> None:
    agg = given(assigned())
    taken: dict[int, str] = {}
    for offset in range(1, 45):
        day = date(2025, 4, 10) + timedelta(days=offset)
        agg.sweep(at(day, 9), STEPS)
        for e in then(agg):
            if type(e).__name__ == "RectificationEscalated":
                taken[e.level] = e.occurred_on
    assert taken == {1: "2025-04-11", 2: "2025-04-25", 3: "2025-05-10"}
    assert agg.escalation_level() == 3


def test_a_sweep_that_missed_days_catches_up_every_step_in_order() -> None:
    agg = given(assigned())
    agg.sweep(at(date(2025, 5, 20)), STEPS)  # 40 days overdue, first sweep
    events = then(agg)
    assert types(events) == ["RectificationOverdue"] + ["RectificationEscalated"] * 3
    assert [e.level for e in events[1:]] == [1, 2, 3]
    assert [e.due_on for e in events[1:]] == ["2025-04-11", "2025-04-25", "2025-05-10"]


def test_steps_survive_a_reload_so_a_restart_takes_nothing_twice() -> None:
    agg = report()
    assign(agg)
    agg.sweep(at(date(2025, 4, 26)), STEPS)
    history = list(agg.collect_events())
    reloaded = replay(history)
    assert reloaded.steps_taken == {("2025-04-10", 0), ("2025-04-10", 1), ("2025-04-10", 2)}
    assert reloaded.sweep(at(date(2025, 4, 27)), STEPS) == 0
    assert reloaded.sweep(at(date(2025, 5, 10)), STEPS) == 1  # level 3 falls due on day 30


def test_a_new_deadline_starts_a_new_ladder_with_new_ids() -> None:
    agg = given(assigned())
    agg.sweep(at(date(2025, 4, 12)), STEPS)
    first = then(agg)
    agg.extend(actor=LEAD, reason="设备未到", new_deadline=date(2025, 5, 1), max_extensions=2,
               now=at(date(2025, 4, 12), 11))
    then(agg)
    assert agg.escalation_level() == 0
    assert agg.sweep(at(date(2025, 5, 1)), STEPS) == 0
    agg.sweep(at(date(2025, 5, 2)), STEPS)
    second = then(agg)
    assert [e.deadline for e in second] == ["2025-05-01", "2025-05-01"]
    assert {e.event_id for e in first}.isdisjoint(e.event_id for e in second)


def test_a_reported_completion_stops_the_clock_and_reopening_restarts_it() -> None:
    agg = given(assigned(), completed(day=date(2025, 4, 9)))
    assert agg.sweep(at(date(2025, 5, 30)), STEPS) == 0
    agg.reject(actor=LEAD, reason="不彻底", new_deadline=date(2025, 6, 5), now=at(date(2025, 5, 30)))
    then(agg)
    assert agg.sweep(at(date(2025, 6, 6)), STEPS) == 2


def test_unassigned_items_have_no_deadline_to_miss() -> None:
    assert given().sweep(at(date(2026, 1, 1)), STEPS) == 0


# -- escalation rules are data -------------------------------------------------------------


def test_default_escalation_rules_are_the_issues() -> None:
    rules = default_escalation_rules()
    assert [(s.level, s.name, s.days_overdue) for s in rules.steps] == [
        (1, "督办", 1), (2, "通报", 15), (3, "纳入考核", 30)]
    assert rules.max_extensions == 2
    assert [rules.level_due(d) for d in (0, 1, 14, 15, 29, 30, 300)] == [0, 1, 1, 2, 2, 3, 3]


def test_changed_rules_change_behaviour_without_code(tmp_path: Path) -> None:
    path = tmp_path / "escalation.yaml"
    path.write_text(
        "version: 2\nmax_extensions: 0\nsteps:\n"
        "  - {level: 1, code: supervision, name: 督办, days_overdue: 3}\n"
        "  - {level: 2, code: public-notice, name: 通报, days_overdue: 5}\n",
        encoding="utf-8",
    )
    rules = load_escalation_rules(path)
    agg = given(assigned())
    assert agg.sweep(at(date(2025, 4, 12)), rules.domain_steps(), rules.version) == 1  # overdue only
    agg.sweep(at(date(2025, 4, 15)), rules.domain_steps(), rules.version)
    events = then(agg)
    assert [(type(e).__name__, getattr(e, "level", 0)) for e in events] == [
        ("RectificationOverdue", 0), ("RectificationEscalated", 1), ("RectificationEscalated", 2)]
    assert events[-1].rules_version == 2
    with pytest.raises(InvariantViolated, match="most allowed \\(0\\)"):
        given(assigned()).extend(actor=LEAD, reason="x", new_deadline=date(2025, 5, 1),
                                 max_extensions=rules.max_extensions, now=at(date(2025, 4, 1)))


@pytest.mark.parametrize(("steps", "message"), [
    ("  - {level: 2, code: a, name: 督办, days_overdue: 1}\n", r"steps\[0\]\.level must be 1"),
    ("  - {level: 1, code: a, name: 督办, days_overdue: 10}\n  - {level: 2, code: b, name: 通报, days_overdue: 5}\n",
     r"steps\[1\]\.days_overdue must be larger than the previous"),
    ("  - {level: 1, code: a, name: 督办, days_overdue: 0}\n", r"steps\[0\]\.days_overdue"),
])
def test_malformed_rules_fail_in_one_line_naming_file_and_field(tmp_path: Path, steps: str, message: str) -> None:
    path = tmp_path / "escalation.yaml"
    path.write_text("version: 1\nsteps:\n" + steps, encoding="utf-8")
    with pytest.raises(CatalogueError, match=message) as err:
        load_escalation_rules(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_escalation_steps_are_plain_domain_values() -> None:
    assert STEPS[0] == EscalationStep(level=1, name="督办", days_overdue=1)
