"""Use cases of joint meetings (联席会议) and the tasks their resolutions assign: schedule,
propose agenda items, the scheduler's draft agenda, hold with attendance and minutes, adopt
resolutions with tasks, and track those tasks like rectifications."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from contracts.escalation import EscalationRules
from events.base import local_date
from events.errors import Conflict
from events.meetings import Meeting, Task, meeting_id
from services.documents import labels
from services.kernel.principal import Principal
from services.kernel.results import Written, written
from services.kernel.use_cases import UseCases


class MeetingUseCases(UseCases):
    def meeting(self, mid: uuid.UUID) -> Meeting:
        agg: Meeting = self.load(mid, Meeting, "meeting")
        return agg

    def next_meeting_number(self, year: int) -> int:
        """The first number of ``year`` the log holds no meeting under. Meeting ids derive
        from (year, number), so this asks the store, not a read model that may lag."""
        number = 1
        while self.recorder.select_events(meeting_id(year, number), limit=1):
            number += 1
        return number

    def schedule_meeting(
        self, principal: Principal, *, number: int | None, title: str | None, scheduled_for: date, place: str,
        now: datetime,
    ) -> Written:
        """``number`` omitted: the platform assigns the next of the year; given, it must be
        that one (see ``Meeting.schedule``). Two meetings convened at once: the loser of the
        race is decided again, so an assigned number moves on and a chosen one is a 409."""
        self.require_writer(principal)
        is_lead = self.is_lead(principal)
        year = scheduled_for.year
        created: list[Meeting] = []

        def decision() -> list[Meeting]:
            following = self.next_meeting_number(year)
            n = following if number is None else number
            created[:] = [Meeting.schedule(
                lead=principal.agency, is_lead=is_lead, year=year, number=n, next_number=following,
                title=title or labels.meeting_title(year, n), scheduled_for=scheduled_for, place=place, now=now)]
            return created

        recordings = self.decide(f"meeting number of {year}", decision)
        assert recordings is not None
        return written(created[0].id, recordings, status="scheduled")

    def propose_agenda_item(
        self, principal: Principal, mid: uuid.UUID, *, title: str, detail: str, related_event_ids: Sequence[str],
        now: datetime,
    ) -> Written:
        self.require_writer(principal)
        return self.act(mid, Meeting, "meeting", lambda m: m.propose_item(
            unit=principal.agency, title=title, detail=detail, related_event_ids=related_event_ids, now=now))

    def record_agenda_draft(
        self, mid: uuid.UUID, *, period_start: date, period_end: date, sections: list[Any], now: datetime,
    ) -> bool:
        """The scheduler's draft agenda: once per meeting. False when already drafted."""

        def decision() -> list[Meeting]:
            m = self.meeting(mid)
            if m.drafted or m.held_on is not None:
                return []
            m.record_draft(lead=self.lead_code, period_start=period_start, period_end=period_end,
                           sections=sections, now=now)
            return [m]

        try:
            return self.decide(f"meeting {mid}", decision) is not None
        except Conflict:  # another instance keeps winning: it is drafting this agenda
            return False

    def hold_meeting(
        self, principal: Principal, mid: uuid.UUID, *, held_on: date, attendance: Sequence[str],
        absent: Sequence[str], minutes: str, now: datetime,
    ) -> Written:
        self.require_writer(principal)
        is_lead = self.is_lead(principal)
        known = self.unit_codes()
        return self.act(mid, Meeting, "meeting", lambda m: m.hold(
            lead=principal.agency, is_lead=is_lead, held_on=held_on, attendance=attendance, absent=absent,
            minutes=minutes, known_units=known, now=now))

    def adopt_resolution(
        self, principal: Principal, mid: uuid.UUID, *, text: str, agenda_item_ids: Sequence[str],
        tasks: Sequence[dict[str, Any]], now: datetime,
    ) -> Written:
        """A resolution and its tasks (TaskAssigned) in one commit."""
        self.require_writer(principal)
        is_lead = self.is_lead(principal)
        known = self.unit_codes()
        adopted: dict[str, Any] = {}

        def decision() -> list[Any]:
            m = self.meeting(mid)
            adopted["id"], specs = m.adopt_resolution(
                lead=principal.agency, is_lead=is_lead, text=text, agenda_item_ids=agenda_item_ids, tasks=tasks,
                known_units=known, now=now)
            adopted["tasks"] = [s["task_id"] for s in specs]
            return [m, *(Task.assign(spec=s, meeting_id=str(mid), resolution_id=adopted["id"], lead=principal.agency,
                                     now=now) for s in specs)]

        recordings = self.decide(f"meeting {mid}", decision)
        assert recordings is not None
        w = written(mid, recordings, related=adopted["tasks"])
        return Written(id=adopted["id"], position=w.position, event_id=w.event_id, type=w.type, related=w.related)

    # -- tasks -----------------------------------------------------------------------------

    def task(self, tid: uuid.UUID) -> Task:
        agg: Task = self.load(tid, Task, "task")
        return agg

    def report_task_progress(
        self, principal: Principal, tid: uuid.UUID, *, note: str, percent: int, occurred_on: date | None,
        now: datetime,
    ) -> Written:
        self.require_writer(principal)
        day = occurred_on or local_date(now)
        return self.act(tid, Task, "task", lambda t: t.report_progress(
            unit=principal.agency, note=note, percent=percent, occurred_on=day, now=now))

    def complete_task(
        self, principal: Principal, tid: uuid.UUID, *, summary: str, evidence: Sequence[str],
        occurred_on: date | None, now: datetime,
    ) -> Written:
        self.require_writer(principal)
        self.require_evidence(principal, evidence)
        day = occurred_on or local_date(now)
        return self.act(tid, Task, "task", lambda t: t.complete(
            unit=principal.agency, summary=summary, evidence=evidence, occurred_on=day, now=now))

    def verify_task(self, principal: Principal, tid: uuid.UUID, *, note: str, now: datetime) -> Written:
        self.require_writer(principal)
        is_lead = self.is_lead(principal)
        return self.act(tid, Task, "task", lambda t: t.verify(lead=principal.agency, is_lead=is_lead, note=note,
                                                               now=now))

    def reject_task(
        self, principal: Principal, tid: uuid.UUID, *, reason: str, new_deadline: date, now: datetime,
    ) -> Written:
        self.require_writer(principal)
        is_lead = self.is_lead(principal)
        return self.act(tid, Task, "task", lambda t: t.reject(
            lead=principal.agency, is_lead=is_lead, reason=reason, new_deadline=new_deadline, now=now))

    def extend_task_deadline(
        self, principal: Principal, tid: uuid.UUID, *, reason: str, new_deadline: date, now: datetime,
    ) -> Written:
        self.require_writer(principal)
        is_lead = self.is_lead(principal)
        limit = self.escalation_rules.max_extensions
        return self.act(tid, Task, "task", lambda t: t.extend(
            lead=principal.agency, is_lead=is_lead, reason=reason, new_deadline=new_deadline,
            max_extensions=limit, now=now))

    def sweep_tasks(self, task_ids: Sequence[uuid.UUID], *, now: datetime, rules: EscalationRules) -> dict[str, int]:
        """Marks overdue and escalates each task with the rectifications' escalation rules.
        Steps are the aggregate's decision, once per (task, deadline, level)."""
        steps = rules.domain_steps()
        out = {"candidates": len(task_ids), "events": 0, "conflicts": 0}

        def conflict() -> None:
            out["conflicts"] += 1

        for tid in task_ids:
            def decision(tid: uuid.UUID = tid) -> list[Task]:
                t = self.maybe(tid)
                return [t] if isinstance(t, Task) and t.sweep(now, steps, rules.version) else []

            try:
                recordings = self.decide(f"task {tid}", decision, conflict)
            except Conflict:
                continue  # the next run retries
            out["events"] += len(recordings or ())
        return out
