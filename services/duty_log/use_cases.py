"""Use cases of the duty log (履职记录): a unit records a duty it performed. This is the hot
write path of the API: a new Idempotency-Key costs no read, and the request handler awaits the
group commit on the event loop (``log_duty_async``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError

from events.duty_log import DutyRecord, Findings, duty_record_id
from events.errors import DomainError
from services.documents.sheet_rows import ImportOutcome, RowError
from services.duty_log.spreadsheet import DutyRow
from services.kernel.principal import Principal
from services.kernel.results import Written, request_digest
from services.kernel.use_cases import UseCases


class DutyLogUseCases(UseCases):
    def log_duty(
        self, principal: Principal, *, duty_code: str, school_ids: list[str], occurred_on: date,
        summary: str, findings: Findings, evidence: list[str], idempotency_key: str | None,
        body: dict[str, Any], now: datetime,
    ) -> Written:
        record = self.prepare_duty_log(
            principal, duty_code=duty_code, school_ids=school_ids, occurred_on=occurred_on, summary=summary,
            findings=findings, evidence=evidence, idempotency_key=idempotency_key, body=body, now=now,
        )
        if isinstance(record, Written):
            return record
        try:
            recordings = self.commit(record)
        except IntegrityError:  # the id is taken: an earlier request with the same Idempotency-Key
            return self._duty_replay(record)
        return Written(id=str(record.id), position=recordings[0].notification.id)

    async def log_duty_async(self, principal: Principal, **request: Any) -> Written:
        """``log_duty`` for the API's event loop (same arguments); it awaits the group commit."""
        record = self.prepare_duty_log(principal, **request)
        if isinstance(record, Written):
            return record
        try:
            recordings = await self.commit_async(record)
        except IntegrityError:  # the id is taken: an earlier request with the same Idempotency-Key
            return self._duty_replay(record)
        return Written(id=str(record.id), position=recordings[0].notification.id)

    def prepare_duty_log(
        self, principal: Principal, *, duty_code: str, school_ids: list[str], occurred_on: date,
        summary: str, findings: Findings, evidence: list[str], idempotency_key: str | None,
        body: dict[str, Any], now: datetime,
    ) -> DutyRecord | Written:
        """The new record, not yet saved; or the answer to an earlier request with the same
        Idempotency-Key when this one breaks a rule. A key is not looked up first: a new key
        costs no read, and a reused one fails the commit (same aggregate id) and is
        answered as a replay then."""
        self.require_writer(principal)
        digest = request_digest(body)
        record_id = duty_record_id(principal.agency, idempotency_key)
        try:
            self.require_evidence(principal, evidence)
            return DutyRecord.perform(
                record_id=record_id, agency=self.agency(principal.agency), duty_code=duty_code,
                school_ids=school_ids, occurred_on=occurred_on, summary=summary, findings=findings,
                evidence=evidence, logged_by=principal.actor, request_digest=digest,
                school_exists=self.school_exists, now=now,
            )
        except DomainError:
            # A replay answers as the first request was answered, even if it would fail now.
            existing = self.maybe(record_id) if idempotency_key is not None else None
            if existing is None:
                raise
            return self.replay(existing, digest)

    def _duty_replay(self, record: DutyRecord) -> Written:
        existing = self.maybe(record.id)
        if existing is None:
            raise IntegrityError(f"duty record {record.id} could not be stored")
        return self.replay(existing, record.request_digest)

    # -- spreadsheet import (services/duty_log/spreadsheet.py checks the rows) ------------------

    def duty_choices(self, unit: str, day: date) -> dict[str, str]:
        """The unit's duties in force on ``day``: text → code, and code → code."""
        in_force = self.agency(unit).duties_on(day)
        return {**{d["text"]: code for code, d in in_force.items()}, **{code: code for code in in_force}}

    def import_duty_rows(self, principal: Principal, rows: Sequence[DutyRow], *, partial: bool,
                         now: datetime, dry_run: bool = False) -> ImportOutcome:
        """Store the checked rows that are not stored yet, all in one commit. A row the domain
        still refuses becomes an error; without ``partial`` any error stores nothing."""
        self.require_writer(principal)
        outcome = ImportOutcome()
        fresh: list[DutyRecord] = []
        for row in rows:
            record_id = duty_record_id(principal.agency, row.key)
            if self.recorder.select_events(record_id, limit=1):
                outcome.already += 1
                continue
            body = {"duty_code": row.duty_code, "school_ids": row.school_ids,
                    "occurred_on": row.occurred_on.isoformat(), "summary": row.summary,
                    "findings": {"count": row.findings_count, "text": row.findings_text}}
            try:
                fresh.append(DutyRecord.perform(
                    record_id=record_id, agency=self.agency(principal.agency), duty_code=row.duty_code,
                    school_ids=row.school_ids, occurred_on=row.occurred_on, summary=row.summary,
                    findings={"count": row.findings_count, "text": row.findings_text}, evidence=[],
                    logged_by=principal.actor, request_digest=request_digest(body), school_exists=self.school_exists,
                    now=now))
            except DomainError as e:
                outcome.errors.append(RowError(row.row, "职责", f"不符合履职规则：{e}"))
        if dry_run or (outcome.errors and not partial):  # dry_run: only the domain's verdict on every row
            return outcome
        if fresh:
            self.commit(*fresh)
        outcome.stored = len(fresh)
        return outcome
