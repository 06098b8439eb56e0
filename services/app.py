"""The Lianxi application: one method per use case (get -> call -> save).

Services raise domain errors (events.errors) and never HTTP errors; the API maps them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Recording, Transcoder

from contracts.catalogue import Catalogue
from events.agencies import Agency, Duty, agency_id
from events.duty_log import DutyRecord, Findings, duty_record_id
from events.errors import Conflict, DomainError, InvariantViolated, NotFound, NotPermitted
from events.schools import School, school_aggregate_id
from services.kernel.principal import Principal
from services.kernel.results import Appended, request_digest
from services.logistics.use_cases import LogisticsMixin
from services.meetings_service import MeetingsUseCases
from services.rectifications.use_cases import RectificationUseCases
from services.store.bulk import pending_events
from services.store.database import Database, OrjsonTranscoder, SideRows
from services.store.group_commit import GroupCommitter

# The catalogue's first duty lists take effect from this date, so demo and review years
# before the day `lianxi init` ran still see the duties.
CATALOGUE_EPOCH = date(2000, 1, 1)
AGENCY_CACHE_TTL_S = 5.0


@dataclass(frozen=True)
class SideRowsItem:
    """A group-commit item that carries rows for a table beside the log, not events."""

    rows: SideRows


@dataclass(frozen=True)
class InitResult:
    registered: int
    revised: int
    unchanged: int


class LianxiApp(RectificationUseCases, MeetingsUseCases, LogisticsMixin, Application[uuid.UUID]):
    """Hazard and rectification use cases live in services/rectifications/use_cases.py."""

    # Pinned: PostgreSQL table names derive from it.
    name = "lianxi"

    def __init__(self, database: Database, *, group_commit: bool = False, max_batch: int = 500) -> None:
        self.database = database
        database.ensure_schema()
        env = {
            **database.eventsourcing_env(),
            "AGGREGATE_CACHE_MAXSIZE": "2000",
            "AGGREGATE_CACHE_FASTFORWARD": "y",
        }
        super().__init__(env=env)
        self._known_schools: set[str] = set()
        self._schools_lock = threading.Lock()
        # Items: one request's pending events (collected once, when queued: a retry after a
        # failed batch must still have them), or side rows (an audit row) to commit with them.
        self.committer: GroupCommitter[tuple[Any, ...] | SideRowsItem, list[Recording[uuid.UUID]]] | None = (
            GroupCommitter(self._save_batch, max_batch=max_batch) if group_commit else None
        )
        # Agencies change rarely (a catalogue revision) but every duty log reads one.
        self._agencies: dict[str, tuple[float, Agency]] = {}

    def construct_transcoder(self) -> Transcoder:
        return OrjsonTranscoder()

    def close(self) -> None:
        if self.committer is not None:
            self.committer.close()
        super().close()

    # -- writing ---------------------------------------------------------------------------

    def commit(self, *aggregates: Any) -> Sequence[Recording[uuid.UUID]]:
        """Save through the group committer when enabled (API), directly otherwise."""
        if self.committer is not None:
            return self.committer.commit(tuple(pending_events(aggregates)))
        return self.save(*aggregates)

    async def commit_async(self, *aggregates: Any) -> Sequence[Recording[uuid.UUID]]:
        """``commit`` for a request handler on the event loop: it awaits the group commit
        instead of blocking a worker thread on it."""
        if self.committer is not None:
            return await self.committer.commit_async(tuple(pending_events(aggregates)))
        return self.save(*aggregates)

    async def commit_side_rows_async(self, rows: SideRows) -> None:
        """Rows beside the log (an audit row), committed in the next group commit's
        transaction; directly when group commit is off."""
        if self.committer is not None:
            await self.committer.commit_async(SideRowsItem(rows))
        else:
            self.save(side_rows=[rows])

    def _save_batch(self, items: Sequence[tuple[Any, ...] | SideRowsItem]) -> list[list[Recording[uuid.UUID]]]:
        """The group committer's transaction: every item's events and side rows in one ``save``."""
        events = [e for item in items if not isinstance(item, SideRowsItem) for e in item]
        side = [item.rows for item in items if isinstance(item, SideRowsItem)]
        recordings = self.save(*events, side_rows=side) if side else self.save(*events)
        by_event = {id(r.domain_event): r for r in recordings}
        return [[] if isinstance(item, SideRowsItem) else [by_event[id(e)] for e in item] for item in items]

    def position_of(self, originator_id: uuid.UUID, version: int) -> int | None:
        """Notification id (log position) of one stored event."""
        recorder: Any = self.recorder
        table = recorder.events_table_name
        oid: Any = originator_id
        if self.database.kind == "sqlite":
            sql = f"SELECT rowid FROM {table} WHERE originator_id=? AND originator_version=?"
            oid = originator_id.hex
        else:
            schema = recorder.datastore.schema or "public"
            sql = (f'SELECT notification_id FROM "{schema}"."{table}" '
                   "WHERE originator_id=%s AND originator_version=%s")
        with recorder.datastore.transaction(commit=False) as cur:
            cur.execute(sql, (oid, version))
            row = cur.fetchone()
        if row is None:
            return None
        return int(next(iter(row.values())) if isinstance(row, dict) else row[0])

    # -- catalogue -------------------------------------------------------------------------

    def agency(self, code: str) -> Agency:
        """The unit, cached for a few seconds: a revision saved by this process shows at
        once (``save`` drops the entry), one saved by another process within
        AGENCY_CACHE_TTL_S, as token revocations do (services/security/tokens.py). The copy is shared:
        read it; revise a unit through ``repository.get``."""
        now = time.monotonic()
        hit = self._agencies.get(code)
        if hit is not None and now - hit[0] < AGENCY_CACHE_TTL_S:
            return hit[1]
        try:
            agg: Agency = self.repository.get(agency_id(code))
        except AggregateNotFoundError:
            raise NotFound(f"unknown member unit {code!r}") from None
        self._agencies[code] = (now, agg)
        return agg

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[uuid.UUID]]:
        recordings = super().save(*objs, **kwargs)
        if any(isinstance(r.domain_event, Agency.Event) for r in recordings):
            self._agencies.clear()  # a revised unit is read afresh
        return recordings

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
            try:
                existing: Agency = self.repository.get(agency_id(unit.code))
            except AggregateNotFoundError:
                agg = Agency.register(
                    code=unit.code, name=unit.name, name_en=unit.name_en, lead=unit.lead,
                    duties=duties, effective_on=effective_on or CATALOGUE_EPOCH, now=now,
                )
                self.save(agg)
                registered += 1
                continue
            if existing.revise(
                name=unit.name, name_en=unit.name_en, duties=duties,
                effective_on=effective_on or now.date(), reason=reason, now=now,
            ):
                self.save(existing)
                revised += 1
            else:
                unchanged += 1
        return InitResult(registered, revised, unchanged)

    # -- schools ---------------------------------------------------------------------------

    def school_exists(self, school_id: str) -> bool:
        if school_id in self._known_schools:
            return True
        try:
            self.repository.get(school_aggregate_id(school_id))
        except AggregateNotFoundError:
            return False
        with self._schools_lock:
            self._known_schools.add(school_id)
        return True

    def register_school(
        self, principal: Principal, *, school_id: str, name: str, town: str, kind: str,
        boarding: bool, canteen: bool, school_bus: bool, now: datetime,
    ) -> Appended:
        if principal.role != "lead":
            raise NotPermitted("only the lead unit registers schools")
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
        self._known_schools.add(school_id)
        event: Any = recordings[0].domain_event
        return Appended(id=event.event_id, position=recordings[0].notification.id)

    # -- duty log --------------------------------------------------------------------------

    def log_duty(
        self, principal: Principal, *, duty_code: str, school_ids: list[str], occurred_on: date,
        summary: str, findings: Findings, evidence: list[str], idempotency_key: str | None,
        body: dict[str, Any], now: datetime,
    ) -> Appended:
        record = self.prepare_duty_log(
            principal, duty_code=duty_code, school_ids=school_ids, occurred_on=occurred_on, summary=summary,
            findings=findings, evidence=evidence, idempotency_key=idempotency_key, body=body, now=now,
        )
        if isinstance(record, Appended):
            return record
        try:
            recordings = self.commit(record)
        except IntegrityError:  # the id is taken: an earlier request with the same Idempotency-Key
            replay = self._replay(record.id, record.request_digest)
            if replay is None:
                raise
            return replay
        return Appended(id=str(record.id), position=recordings[0].notification.id)

    async def log_duty_async(self, principal: Principal, **request: Any) -> Appended:
        """``log_duty`` for the API's event loop (same arguments); it awaits the group commit."""
        record = self.prepare_duty_log(principal, **request)
        if isinstance(record, Appended):
            return record
        try:
            recordings = await self.commit_async(record)
        except IntegrityError:  # the id is taken: an earlier request with the same Idempotency-Key
            replay = self._replay(record.id, record.request_digest)
            if replay is None:
                raise
            return replay
        return Appended(id=str(record.id), position=recordings[0].notification.id)

    def prepare_duty_log(
        self, principal: Principal, *, duty_code: str, school_ids: list[str], occurred_on: date,
        summary: str, findings: Findings, evidence: list[str], idempotency_key: str | None,
        body: dict[str, Any], now: datetime,
    ) -> DutyRecord | Appended:
        """The new record, not yet saved; or the answer to an earlier request with the same
        Idempotency-Key when this one breaks a rule. A key is not looked up first: a new key
        costs no read, and a reused one fails the commit (same aggregate id) and is
        answered as a replay then."""
        if principal.role != "liaison" and principal.role != "lead":
            raise NotPermitted("this credential may not write")
        digest = request_digest(body)
        record_id = duty_record_id(principal.agency, idempotency_key)
        try:
            return DutyRecord.perform(
                record_id=record_id, agency=self.agency(principal.agency), duty_code=duty_code,
                school_ids=school_ids, occurred_on=occurred_on, summary=summary, findings=findings,
                evidence=evidence, logged_by=principal.actor, request_digest=digest,
                school_exists=self.school_exists, now=now,
            )
        except DomainError:
            # A replay answers as the first request was answered, even if it would fail now.
            replay = self._replay(record_id, digest) if idempotency_key is not None else None
            if replay is None:
                raise
            return replay

    def _replay(self, record_id: uuid.UUID, digest: str) -> Appended | None:
        try:
            existing: DutyRecord = self.repository.get(record_id)
        except AggregateNotFoundError:
            return None
        if existing.request_digest != digest:
            raise Conflict("this Idempotency-Key was already used with a different request body")
        return Appended(id=str(record_id), position=self.position_of(record_id, 1), replayed=True)

    # -- review appeals (events/reviews.py; services/review.py checks the deduction exists) --

    def file_review_appeal(
        self, principal: Principal, *, year: int, clause: str, item: str, points: float, rules: str, reason: str,
        now: datetime,
    ) -> Appended:
        """A unit appeals one of its own deductions; the unit is the token's."""
        from events.reviews import ReviewAppeal

        if not principal.can_write:
            raise NotPermitted("this credential may not write")
        appeal = ReviewAppeal.file(unit=principal.agency, year=year, clause=clause, item=item, points=points,
                                   rules=rules, reason=reason, logged_by=principal.actor, now=now)
        try:
            recordings = self.commit(appeal)
        except IntegrityError:
            raise Conflict("this deduction was already appealed") from None
        return Appended(id=str(appeal.id), position=recordings[0].notification.id)

    def decide_review_appeal(
        self, principal: Principal, appeal_id: uuid.UUID, *, year: int, upheld: bool, reason: str, now: datetime,
    ) -> Appended:
        """The lead bureau upholds or rejects an appeal of ``year``'s review, with a reason."""
        from events.reviews import ReviewAppeal

        if principal.role != "lead":
            raise NotPermitted("only the lead bureau decides review appeals")
        try:
            appeal: ReviewAppeal = self.repository.get(appeal_id)
        except AggregateNotFoundError:
            raise NotFound(f"unknown appeal {appeal_id}") from None
        if not isinstance(appeal, ReviewAppeal) or appeal.year != year:
            raise NotFound(f"unknown appeal {appeal_id} of the {year} review")
        lead = self.agency(principal.agency)
        appeal.decide(lead=lead.code, is_lead=lead.lead, upheld=upheld, reason=reason, logged_by=principal.actor,
                      now=now)
        try:
            recordings = self.commit(appeal)
        except IntegrityError:
            raise Conflict("this appeal was already decided") from None
        return Appended(id=str(appeal.id), position=recordings[-1].notification.id)


def parse_iso_date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvariantViolated(f"{field} {value!r} is not a date (YYYY-MM-DD)") from None
