"""Use cases of the catalogue: member units with their duties (from the seeds), and schools."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from contracts.catalogue import Catalogue
from events.agencies import Agency, Duty, agency_id
from events.errors import Conflict, DomainError, NotPermitted
from events.schools import School, school_aggregate_id
from services.catalogue.spreadsheet import KIND_NAMES, SchoolRow
from services.documents.sheet_rows import ImportOutcome, RowError
from services.kernel.principal import Principal
from services.kernel.results import Written
from services.kernel.use_cases import UseCases

# The catalogue's first duty lists take effect from this date, so demo and review years
# before the day `lianxi init` ran still see the duties.
CATALOGUE_EPOCH = date(2000, 1, 1)
AGENCY_TOPIC_PREFIX = f"{get_topic(Agency)}."  # events.agencies:Agency.<Event>


@dataclass(frozen=True)
class InitResult:
    registered: int
    revised: int
    unchanged: int


class CatalogueUseCases(UseCases):
    def register_catalogue(
        self, catalogue: Catalogue, *, now: datetime, effective_on: date | None = None,
        reason: str = "catalogue revised",
    ) -> InitResult:
        """Idempotent: units already registered with the same duties record nothing."""
        registered = revised = unchanged = 0
        for unit in catalogue.units.units:
            duties: list[Duty] = [
                {"code": d.code, "text": d.text, "applies_to": d.applies_to} for d in unit.duties
            ]
            existing: Agency | None = self.maybe(agency_id(unit.code))
            if existing is None:
                agg = Agency.register(
                    code=unit.code, name=unit.name, name_en=unit.name_en, lead=unit.lead,
                    duties=duties, effective_on=effective_on or CATALOGUE_EPOCH, now=now,
                )
                self.save(agg)
                registered += 1
            elif existing.revise(
                name=unit.name, name_en=unit.name_en, duties=duties,
                effective_on=effective_on or now.date(), reason=reason, now=now,
            ):
                self.save(existing)
                revised += 1
            else:
                unchanged += 1
        return InitResult(registered, revised, unchanged)

    def events_beyond_the_catalogue(self, limit: int = 1000) -> int:
        """How many events the log holds besides the member units' own (the catalogue that
        `lianxi init` registers and revises); a count over ``limit`` is reported as the head.
        A log of the catalogue alone is as good as empty for the demo."""
        head = self.recorder.max_notification_id() or 0
        if head == 0 or head > limit:
            return head
        notifications = self.recorder.select_notifications(start=1, limit=head)
        return sum(1 for n in notifications if not n.topic.startswith(AGENCY_TOPIC_PREFIX))

    def register_school(
        self, principal: Principal, *, school_id: str, name: str, town: str, kind: str,
        boarding: bool, canteen: bool, school_bus: bool, now: datetime,
    ) -> Written:
        self.require_lead(principal, "registers schools")
        lead = self.agency(principal.agency)
        if self.school_exists(school_id):
            raise Conflict(f"school {school_id!r} is already registered")
        school = School.register(
            by_agency=lead.code, by_lead=lead.lead, school_id=school_id, name=name, town=town,
            kind=kind, boarding=boarding, canteen=canteen, school_bus=school_bus, now=now,
        )
        try:
            recordings = self.commit(school)
        except IntegrityError:
            raise Conflict(f"school {school_id!r} is already registered") from None
        self.remember_school(school_id)
        event = recordings[0].domain_event
        # The API has always answered a registration with the event's id.
        return Written(id=getattr(event, "event_id"), position=recordings[0].notification.id)  # noqa: B009

    def import_school_rows(self, principal: Principal, rows: Sequence[SchoolRow], *, partial: bool,
                           now: datetime, dry_run: bool = False) -> ImportOutcome:
        """Register the checked schools not registered yet, all in one commit. A school already
        registered with the same details is ``already``; with other details it is an error
        (a register upload never overwrites a school)."""
        if not self.is_lead(principal):
            raise NotPermitted("only the lead bureau registers schools")
        lead = self.agency(principal.agency)
        outcome = ImportOutcome()
        fresh: list[School] = []
        for row in rows:
            existing = self.maybe(school_aggregate_id(row.school_id))
            if existing is not None:
                held = (existing.name, existing.town, existing.kind, existing.boarding, existing.canteen,
                        existing.school_bus)
                if held == row.details():
                    outcome.already += 1
                else:
                    kind = KIND_NAMES.get(existing.kind, existing.kind)
                    outcome.errors.append(RowError(row.row, "学校代码", f"已登记为“{existing.name}”（{existing.town}，"
                                                   f"{kind}），与本行不一致；名册导入不修改已登记学校"))
                continue
            try:
                fresh.append(School.register(
                    by_agency=lead.code, by_lead=lead.lead, school_id=row.school_id, name=row.name, town=row.town,
                    kind=row.kind, boarding=row.boarding, canteen=row.canteen, school_bus=row.school_bus, now=now))
            except DomainError as e:
                outcome.errors.append(RowError(row.row, "学校代码", f"不符合登记规则：{e}"))
        if dry_run or (outcome.errors and not partial):  # dry_run: only the domain's verdict on every row
            return outcome
        if fresh:
            self.commit(*fresh)
            for school in fresh:
                self.remember_school(school.school_id)
        outcome.stored = len(fresh)
        return outcome
