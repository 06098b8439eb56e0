"""The event store every context's use cases stand on: commit (group commit for the API),
the log position of an event (projections/event_index.py finds a cited event's), and the
caches a hot write reads (units, known schools)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import Recording, Transcoder

from events.agencies import Agency, agency_id
from events.errors import NotFound
from events.schools import school_aggregate_id
from services.store.database import Database, OrjsonTranscoder, SideRows
from services.store.group_commit import GroupCommitter, pending_events
from services.store.request_rows import carrying

AGENCY_CACHE_TTL_S = 5.0


@dataclass(frozen=True)
class CommitItem:
    """One writer's share of a group commit: its pending events (collected once, when queued:
    a retry after a failed batch must still have them) and rows for tables beside the log
    (its request's audit row) that commit in the same transaction."""

    events: tuple[Any, ...] = ()
    side_rows: tuple[SideRows, ...] = ()


def _first_originator(events: Sequence[Any]) -> str | None:
    """What a write's audit row names as its resource: the first aggregate it wrote."""
    return str(events[0].originator_id) if events else None


class EventStore(Application[uuid.UUID]):
    """The application actually run is ``services.app.LianxiApp``, which pins ``name``."""

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
        self.committer: GroupCommitter[CommitItem, list[Recording[uuid.UUID]]] | None = (
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
        """Save through the group committer when enabled (API), directly otherwise. Within a
        request, the first commit also carries the request's audit row
        (services/store/request_rows.py)."""
        if self.committer is None:
            return self.save(*aggregates)
        events = tuple(pending_events(aggregates))
        with carrying(_first_originator(events)) as side:
            return self.committer.commit(CommitItem(events, tuple(side)))

    async def commit_async(self, *aggregates: Any) -> Sequence[Recording[uuid.UUID]]:
        """``commit`` for a request handler on the event loop: it awaits the group commit
        instead of blocking a worker thread on it."""
        if self.committer is None:
            return self.save(*aggregates)
        events = tuple(pending_events(aggregates))
        with carrying(_first_originator(events)) as side:
            return await self.committer.commit_async(CommitItem(events, tuple(side)))

    async def commit_side_rows_async(self, rows: SideRows) -> None:
        """Rows beside the log (the audit row of a request that wrote nothing), committed in
        the next group commit's transaction; directly when group commit is off."""
        if self.committer is not None:
            await self.committer.commit_async(CommitItem(side_rows=(rows,)))
        else:
            super().save(side_rows=[rows])

    def _save_batch(self, items: Sequence[CommitItem]) -> list[list[Recording[uuid.UUID]]]:
        """The group committer's transaction: every item's events and side rows in one ``save``."""
        events = [e for item in items for e in item.events]
        side = [rows for item in items for rows in item.side_rows]
        recordings = self._save(events, side, collected=True)
        by_event = {id(r.domain_event): r for r in recordings}
        return [[by_event[id(e)] for e in item.events] for item in items]

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[uuid.UUID]]:
        """A direct save; within a request it carries the request's audit row unless it
        already went with an earlier commit."""
        if "side_rows" in kwargs or not objs:
            return self._save(list(objs), kwargs.pop("side_rows", ()) or (), **kwargs)
        events = list(pending_events(objs))
        with carrying(_first_originator(events)) as side:
            return self._save(events, side, **kwargs)

    def _save(self, events: Sequence[Any], side: Sequence[SideRows], *, collected: bool = False,
              **kwargs: Any) -> list[Recording[uuid.UUID]]:
        if side:
            kwargs["side_rows"] = list(side)
        recordings = self._save_collected(events, kwargs) if collected else super().save(*events, **kwargs)
        if any(isinstance(r.domain_event, Agency.Event) for r in recordings):
            self._agencies.clear()  # a revised unit is read afresh
        return recordings

    def _save_collected(self, events: Sequence[Any], kwargs: dict[str, Any]) -> list[Recording[uuid.UUID]]:
        """``Application.save(*events, **kwargs)`` for events already collected from their
        aggregates (the group committer's batches), less its check of each object against a
        runtime Protocol (about a seventh of the committer thread's time at 16 connections)."""
        processing: ProcessingEvent[uuid.UUID] = ProcessingEvent()
        processing.events.extend(events)
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        self.notify(processing.events)  # eventsourcing's deprecated hook, as save() calls it
        return recordings

    def position_of(self, originator_id: uuid.UUID, version: int) -> int | None:
        """Log position (notification id) of one stored event."""
        recorder: Any = self.recorder
        position: int | None = recorder.position_of(originator_id, version)
        return position

    # -- cached reads ----------------------------------------------------------------------

    def agency(self, code: str) -> Agency:
        """The unit, cached for a few seconds: a revision saved by this process shows at
        once (``save`` drops the entry), one saved by another process within
        AGENCY_CACHE_TTL_S, as token revocations do (services/security/tokens.py). The copy is
        shared: read it; revise a unit through ``repository.get``."""
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

    def school_exists(self, school_id: str) -> bool:
        if school_id in self._known_schools:
            return True
        try:
            self.repository.get(school_aggregate_id(school_id))
        except AggregateNotFoundError:
            return False
        self.remember_school(school_id)
        return True

    def remember_school(self, school_id: str) -> None:
        with self._schools_lock:
            self._known_schools.add(school_id)
