"""What every context's use cases share: who may act, loading an aggregate or answering
"not found", deciding again after a lost optimistic-concurrency race, and idempotent creation.

Each use case is get -> call the aggregate -> commit. Services raise domain errors
(events.errors), never HTTP errors; the API and the pages map them in one place each."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, Recording

from contracts.catalogue import Catalogue, default_catalogue
from contracts.escalation import EscalationRules, default_escalation_rules
from events.errors import Conflict, InvariantViolated, NotFound, NotPermitted
from events.evidence import Evidence, blob_digests, evidence_id
from services.kernel.event_store import EventStore
from services.kernel.principal import Principal
from services.kernel.results import Written, written

log = logging.getLogger(__name__)

ATTEMPTS = 3  # tries of one command against concurrent writers before answering 409

A = TypeVar("A")


def parse_id(value: str, what: str) -> uuid.UUID:
    """An id from a path or a body; anything that is not one is simply not found."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"unknown {what} {value!r}") from None


class UseCases(EventStore):
    """The base of every context's use-case class (they are composed into ``LianxiApp``)."""

    @property
    def catalogue(self) -> Catalogue:
        return default_catalogue()

    @property
    def escalation_rules(self) -> EscalationRules:
        return default_escalation_rules()

    # -- who may act -----------------------------------------------------------------------

    @staticmethod
    def require_writer(principal: Principal) -> None:
        if not principal.can_write:
            raise NotPermitted(f"a {principal.role} credential is read-only")

    def is_lead(self, principal: Principal) -> bool:
        """A lead credential of the lead unit (the role alone is not enough)."""
        return principal.role == "lead" and bool(self.agency(principal.agency).lead)

    def require_lead(self, principal: Principal, what: str) -> None:
        if principal.role != "lead":
            raise NotPermitted(f"only the lead bureau {what}")

    def known_unit(self, code: str) -> bool:
        try:
            self.agency(code)
        except NotFound:
            return False
        return True

    def unit_codes(self) -> list[str]:
        """The catalogue's units that are registered."""
        return [u.code for u in self.catalogue.units.units if self.known_unit(u.code)]

    @property
    def lead_code(self) -> str:
        return self.catalogue.lead.code

    def acts_for_schools(self, principal: Principal) -> bool:
        """Schools have no credentials: the lead unit acts for them."""
        return principal.can_write and principal.agency == self.lead_code

    def unknown_evidence(self, unit: str, refs: Iterable[str]) -> list[str]:
        """The digests among ``sha256:`` references that ``unit`` never uploaded."""
        return [d for d in blob_digests(refs) if not isinstance(self.maybe(evidence_id(unit, d)), Evidence)]

    def require_evidence(self, principal: Principal, refs: Iterable[str]) -> None:
        """Every ``sha256:`` reference of a write names a blob the writer's unit uploaded: a
        record never points at bytes nobody stored, nor at another unit's upload."""
        for digest in self.unknown_evidence(principal.agency, refs):
            raise InvariantViolated(
                f"evidence sha256:{digest} is not a file {principal.agency!r} uploaded; "
                "upload it first (POST /api/v1/evidence)")

    # -- loading ---------------------------------------------------------------------------

    def maybe(self, agg_id: uuid.UUID) -> Any | None:
        try:
            return self.repository.get(agg_id)
        except AggregateNotFoundError:
            return None

    def load(self, agg_id: uuid.UUID, cls: type[A], what: str) -> A:
        agg = self.maybe(agg_id)
        if not isinstance(agg, cls):
            raise NotFound(f"unknown {what} {agg_id}")
        return agg

    # -- writing ---------------------------------------------------------------------------

    def decide(self, what: str, decision: Callable[[], Sequence[Any]],
               on_conflict: Callable[[], None] | None = None) -> Sequence[Recording[uuid.UUID]] | None:
        """Load, decide, commit. ``decision`` loads afresh, calls the aggregates' commands and
        returns the aggregates to commit (none: nothing to do, and the answer is None). A commit
        that loses an optimistic-concurrency race to another writer is decided again from a
        fresh load, so the command's rules hold against the new state; after ATTEMPTS losses,
        Conflict."""
        for attempt in range(ATTEMPTS):
            aggregates = decision()
            if not aggregates:
                return None
            try:
                return self.commit(*aggregates)
            except IntegrityError:
                log.info("%s changed meanwhile (attempt %d); deciding again", what, attempt + 1)
                if on_conflict is not None:
                    on_conflict()
        raise Conflict(f"{what} kept changing while this request was processed; retry")

    def act(self, agg_id: uuid.UUID, cls: type[A], what: str, command: Callable[[A], Any]) -> Written:
        """``decide`` for one command on one aggregate; answers with its last event."""
        loaded: list[Any] = []

        def decision() -> list[Any]:
            loaded[:] = [self.load(agg_id, cls, what)]
            command(loaded[0])
            return loaded

        recordings = self.decide(f"{what} {agg_id}", decision)
        assert recordings is not None  # the command either raised or left events to commit
        return written(agg_id, recordings, status=getattr(loaded[0], "status", None))

    def create(self, agg_id: uuid.UUID, what: str, *aggs: Any, related: Sequence[str] = (),
               status: str | None = None) -> Written:
        """Commit new aggregates whose ids are deterministic: a taken id is a conflict."""
        try:
            recordings = self.commit(*aggs)
        except IntegrityError:
            raise Conflict(f"{what} {agg_id} is already recorded") from None
        return written(agg_id, recordings, related=related, status=status)

    def create_or_replay(self, agg: Any, replay: Callable[[Any], Written], *,
                         status: str | None = None) -> Written:
        """Commit a new aggregate whose id derives from an idempotency key or its content; when
        the id is taken (an earlier request, or one racing this one), ``replay`` answers from
        the stored aggregate: the first answer again, or a conflict."""
        try:
            return written(agg.id, self.commit(agg), status=status)
        except IntegrityError:
            existing = self.maybe(agg.id)
            if existing is None:
                raise
            return replay(existing)

    def replay(self, existing: Any, digest: str, *, status: str | None = None,
               related: Sequence[str] = ()) -> Written:
        """The first answer to an Idempotency-Key, if this request carries the same body: the
        aggregate's first event (its id, type and position) and what was created with it."""
        if getattr(existing, "request_digest", None) != digest:
            raise Conflict("this Idempotency-Key was already used with a different request body")
        first = next(iter(self.events.get(existing.id, lte=1)), None)
        return Written(id=str(existing.id), position=self.position_of(existing.id, 1), status=status,
                       event_id=getattr(first, "event_id", None), type=type(first).__name__ if first else None,
                       related=tuple(related), replayed=True)
