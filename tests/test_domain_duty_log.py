"""Duty log and catalogue invariants, given events -> when command -> then events."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from events.agencies import Agency, Duty
from events.duty_log import DutyRecord
from events.errors import InvariantViolated
from events.schools import School

NOW = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)  # 12:00 in the county
FIRE: list[Duty] = [{"code": "fire-rescue.inspection", "text": "消防安全监督检查", "applies_to": "all"}]


def given_agency(duties: list[Duty] = FIRE, effective_on: date = date(2000, 1, 1)) -> Agency:
    agency = Agency.register(code="fire-rescue", name="旗消防大队", name_en="Fire", lead=False,
                             duties=duties, effective_on=effective_on, now=NOW)
    agency.collect_events()
    return agency


def perform(agency: Agency, **overrides: object) -> DutyRecord:
    kwargs: dict[str, object] = dict(
        record_id=uuid.uuid4(), agency=agency, duty_code="fire-rescue.inspection", school_ids=["S1"],
        occurred_on=date(2025, 6, 1), summary="春季消防检查", findings={"count": 1, "text": "灭火器过期"},
        evidence=["sha256:ab"], logged_by="liaison:t1:desk", request_digest="d",
        school_exists=lambda s: s == "S1", now=NOW,
    )
    kwargs.update(overrides)
    return DutyRecord.perform(**kwargs)  # type: ignore[arg-type]


def test_duty_performed_carries_both_times_and_the_unit() -> None:
    record = perform(given_agency())
    [event] = record.collect_events()
    assert type(event).__name__ == "DutyPerformed"
    assert event.agency == "fire-rescue"  # type: ignore[attr-defined]
    assert event.occurred_on == "2025-06-01"  # type: ignore[attr-defined]
    assert event.timestamp == NOW
    assert event.event_id == str(record.id)  # type: ignore[attr-defined]


def test_duty_must_belong_to_the_unit() -> None:
    with pytest.raises(InvariantViolated, match="not among the duties"):
        perform(given_agency(), duty_code="meteorology.weather-warning")


def test_occurred_on_cannot_be_in_the_future_in_county_time() -> None:
    # NOW is 2025-06-30 12:00 in the county: the 30th is today, the 1st of July is future.
    perform(given_agency(), occurred_on=date(2025, 6, 30))
    with pytest.raises(InvariantViolated, match="in the future"):
        perform(given_agency(), occurred_on=date(2025, 7, 1))


def test_every_school_must_exist() -> None:
    with pytest.raises(InvariantViolated, match="unknown school"):
        perform(given_agency(), school_ids=["S1", "S404"])


def test_repeated_school_ids_are_recorded_once() -> None:
    [event] = perform(given_agency(), school_ids=["S1", "S1"]).collect_events()
    assert event.school_ids == ["S1"]  # type: ignore[attr-defined]


def test_blank_summary_and_negative_findings_are_refused() -> None:
    with pytest.raises(InvariantViolated, match="summary"):
        perform(given_agency(), summary="   ")
    with pytest.raises(InvariantViolated, match="findings"):
        perform(given_agency(), findings={"count": -1, "text": ""})


def test_duties_in_force_follow_revisions_by_effective_date() -> None:
    agency = given_agency()
    new: list[Duty] = [*FIRE, {"code": "fire-rescue.drill", "text": "疏散演练", "applies_to": "all"}]
    assert agency.revise(name=agency.name, name_en=agency.name_en, duties=new,
                         effective_on=date(2025, 3, 1), reason="新增演练职责", now=NOW)
    [revised] = agency.collect_events()
    assert type(revised).__name__ == "AgencyDutiesRevised"
    # Before the revision took effect the drill was not this unit's duty.
    with pytest.raises(InvariantViolated):
        perform(agency, duty_code="fire-rescue.drill", occurred_on=date(2025, 2, 28))
    perform(agency, duty_code="fire-rescue.drill", occurred_on=date(2025, 3, 1))


def test_revising_with_the_same_duties_records_nothing() -> None:
    agency = given_agency()
    assert not agency.revise(name=agency.name, name_en=agency.name_en, duties=list(FIRE),
                             effective_on=date(2025, 3, 1), reason="", now=NOW)
    assert agency.collect_events() == []


def test_a_duty_revision_needs_a_reason_and_owned_codes() -> None:
    agency = given_agency()
    with pytest.raises(InvariantViolated, match="reason"):
        agency.revise(name=agency.name, name_en=agency.name_en, duties=[], effective_on=date(2025, 1, 1),
                      reason=" ", now=NOW)
    with pytest.raises(InvariantViolated, match="must start with"):
        given_agency(duties=[{"code": "police.patrol", "text": "x", "applies_to": "all"}])


def test_only_the_lead_registers_schools_with_a_valid_kind_and_id() -> None:
    ok = dict(by_agency="education", by_lead=True, school_id="S1", name="一小", town="满都拉图镇",
              kind="primary", boarding=False, canteen=True, school_bus=False, now=NOW)
    School.register(**ok)  # type: ignore[arg-type]
    with pytest.raises(InvariantViolated, match="lead"):
        School.register(**{**ok, "by_lead": False})  # type: ignore[arg-type]
    with pytest.raises(InvariantViolated, match="kind"):
        School.register(**{**ok, "kind": "university"})  # type: ignore[arg-type]
    with pytest.raises(InvariantViolated, match="school id"):
        School.register(**{**ok, "school_id": "bad id!"})  # type: ignore[arg-type]


def test_the_lean_construction_stores_what_eventsourcings_create_stored() -> None:
    """DutyRecord.perform builds its aggregate without ``_create``'s generic work (the hot
    write path): the stored event (topic and bytes) and the aggregate are the same as before."""
    from eventsourcing.persistence import Mapper

    from services.store.database import OrjsonTranscoder

    record_id = uuid.uuid4()
    lean = perform(given_agency(), record_id=record_id, school_ids=["S1", "S1"], summary=" 检查 ")
    old = DutyRecord._create(
        DutyRecord.DutyPerformed, id=record_id, timestamp=NOW, event_id=str(record_id), agency="fire-rescue",
        occurred_on="2025-06-01", duty_code="fire-rescue.inspection", school_ids=["S1"], summary="检查",
        findings={"count": 1, "text": "灭火器过期"}, evidence=["sha256:ab"], logged_by="liaison:t1:desk",
        request_digest="d",
    )
    mapper: Mapper[uuid.UUID] = Mapper(transcoder=OrjsonTranscoder())
    [new_event], [old_event] = lean.collect_events(), old.collect_events()
    new_stored, old_stored = mapper.to_stored_event(new_event), mapper.to_stored_event(old_event)
    assert new_stored.topic == old_stored.topic == "events.duty_log:DutyRecord.DutyPerformed"
    assert new_stored.state == old_stored.state
    assert (new_stored.originator_id, new_stored.originator_version) == (record_id, 1)
    assert {k: v for k, v in vars(lean).items() if k != "_pending_events"} == \
        {k: v for k, v in vars(old).items() if k != "_pending_events"}
    assert type(lean) is DutyRecord and lean.version == 1 and lean.created_on == NOW
