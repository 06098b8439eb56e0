"""Inbound agency feeds (`lianxi ingest`): member units' own systems publish CloudEvents to
``lianxi.inbound.v1``; each valid message becomes a command and its event is appended.

Per message:
1. the message is a CloudEvent in structured or binary content mode (cloudevents.py) and
   ``data`` validates against the JSON Schema of its ``type`` (contracts/schemas/);
2. the type is one units may send (``INBOUND_COMMANDS``: event type -> application command);
3. the source ``/agencies/<code>`` names a registered unit, and the command only lets that
   unit write its own events (spoofing another unit is refused);
4. the event id derives from (source, message id), so a redelivered message is a no-op.

Anything refused goes to ``lianxi.inbound.dlq.v1``: the original bytes, key and headers, with
the reason in headers (the content-type becomes application/octet-stream, the original one is
kept as ``lianxi-dlq-content-type``). Offsets are committed only after the batch's appends and dead-letter
writes are acknowledged; an infrastructure failure (database, broker) rewinds to the last
commit and retries, so no message is lost or applied twice.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

import orjson
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, PersistenceError
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from events.agencies import Agency
from events.base import derive_id
from events.duty_log import DutyRecord
from events.errors import DomainError
from services.app import LianxiApp
from services.kafka import cloudevents
from services.kafka.cloudevents import CloudEvent, Headers, InvalidMessage
from services.kafka.relay import create_topics

log = logging.getLogger(__name__)

DLQ_REASON = "lianxi-dlq-reason"
DLQ_CODE = "lianxi-dlq-code"
DLQ_ORIGIN = "lianxi-dlq-origin"  # topic/partition/offset of the original message
DLQ_CONTENT_TYPE = "lianxi-dlq-content-type"  # the original content-type, when it had one


def inbound_event_id(source: str, message_id: str) -> str:
    return str(derive_id("inbound", source, message_id))


@dataclass(frozen=True)
class Accepted:
    """A checked inbound message, ready to append (``aggregate`` not yet saved)."""

    event_id: str
    aggregate: Any


class InboundCommand(Protocol):
    def __call__(self, ingestor: Ingestor, unit: Agency, event: CloudEvent, now: datetime) -> Accepted: ...


def perform_duty(ingestor: Ingestor, unit: Agency, event: CloudEvent, now: datetime) -> Accepted:
    """DutyPerformed: a unit reports a duty its own system recorded. The unit may only write
    its own duties; server-owned fields (event_id, logged_by, request_digest) are replaced."""
    data = event.data
    if data["agency"] != unit.code:
        raise InvalidMessage("spoofed", f"source {event.source} may not write events of unit {data['agency']!r}")
    record_id = derive_id("inbound", event.source, event.id)
    unknown = ingestor.app.unknown_evidence(unit.code, data["evidence"])
    if unknown:
        raise InvalidMessage("unknown-evidence", f"evidence sha256:{unknown[0]} was never uploaded by {unit.code!r}; "
                                                 "feeds name blobs uploaded through POST /api/v1/evidence")
    try:
        record = DutyRecord.perform(
            record_id=record_id, agency=unit, duty_code=data["duty_code"],
            school_ids=data["school_ids"], occurred_on=date.fromisoformat(data["occurred_on"]),
            summary=data["summary"], findings={"count": data["findings"]["count"], "text": data["findings"]["text"]},
            evidence=list(data["evidence"]), logged_by=f"feed:{event.source}",
            request_digest=hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest(),
            school_exists=ingestor.app.school_exists, now=now,
        )
    except DomainError as e:
        raise InvalidMessage("rejected", e.detail) from None
    return Accepted(str(record_id), record)


# Event type name -> command. A type not listed here is refused inbound.
INBOUND_COMMANDS: dict[str, InboundCommand] = {
    "DutyPerformed": perform_duty,
}


@dataclass(frozen=True)
class Outcome:
    kind: str  # "appended" | "duplicate" | "dead"
    event_id: str | None = None
    code: str | None = None
    reason: str | None = None


class Ingestor:
    """Turns inbound messages into appended events or dead letters (no Kafka here)."""

    def __init__(self, app: LianxiApp, clock: Callable[[], datetime],
                 commands: dict[str, InboundCommand] | None = None) -> None:
        self.app = app
        self.clock = clock
        self.commands = INBOUND_COMMANDS if commands is None else commands
        # Units looked up in the current batch (a unit revised meanwhile is seen next batch).
        self._units: dict[str, Agency] = {}

    def unit(self, source: str) -> Agency:
        code = cloudevents.source_unit(source)
        if code not in self._units:
            try:
                self._units[code] = self.app.agency(code)
            except DomainError:
                raise InvalidMessage("unknown-source", f"source {source} is not a registered unit") from None
        return self._units[code]

    def check(self, value: bytes | None, headers: Headers | None = None) -> Accepted:
        """Raise InvalidMessage, or return the aggregate to save."""
        event = cloudevents.decode(value, headers)
        command = self.commands.get(event.name)
        if command is None:
            raise InvalidMessage("unknown-type", f"type {event.type} is not accepted inbound")
        cloudevents.validate_data(event)
        return command(self, self.unit(event.source), event, self.clock())

    def exists(self, event_id: str) -> bool:
        try:
            self.app.repository.get(uuid.UUID(event_id))
        except AggregateNotFoundError:
            return False
        return True

    def process(self, values: Sequence[bytes | None],
                headers: Sequence[Headers | None] | None = None) -> list[Outcome]:
        """Outcomes in input order (``headers``: each message's Kafka headers, for binary
        content mode). Valid messages are appended in one transaction; one seen before (same
        source and id) is a duplicate and appends nothing."""
        self._units = {}
        messages = list(zip(values, headers if headers is not None else [None] * len(values), strict=True))
        outcomes: list[Outcome | None] = [None] * len(messages)
        pending: dict[str, tuple[int, Accepted]] = {}
        for i, (value, message_headers) in enumerate(messages):
            try:
                accepted = self.check(value, message_headers)
            except InvalidMessage as e:
                outcomes[i] = Outcome("dead", code=e.code, reason=e.reason)
                continue
            except PersistenceError:
                raise  # the database, not the message: retry the batch
            except Exception as e:
                # A message that breaks a command must not block its partition forever.
                log.exception("ingest: a message failed its command")
                outcomes[i] = Outcome("dead", code="rejected", reason=f"{type(e).__name__}: {e}")
                continue
            if accepted.event_id in pending:
                outcomes[i] = Outcome("duplicate", accepted.event_id)
                continue
            pending[accepted.event_id] = (i, accepted)
        if pending:
            self._append(pending, messages, outcomes)
        return [o for o in outcomes if o is not None]

    def _append(self, pending: dict[str, tuple[int, Accepted]],
                messages: Sequence[tuple[bytes | None, Headers | None]], outcomes: list[Outcome | None]) -> None:
        try:
            self.app.save(*(a.aggregate for _, a in pending.values()))
        except IntegrityError:
            pass  # some were stored before: a redelivery, or another instance was first
        else:
            for i, a in pending.values():
                outcomes[i] = Outcome("appended", a.event_id)
            return
        # The failed save took the aggregates' pending events, so the fresh ones run again.
        fresh: dict[str, tuple[int, Accepted]] = {}
        for event_id, (i, _) in pending.items():
            if self.exists(event_id):
                outcomes[i] = Outcome("duplicate", event_id)
                continue
            try:
                fresh[event_id] = (i, self.check(*messages[i]))
            except InvalidMessage as e:
                outcomes[i] = Outcome("dead", code=e.code, reason=e.reason)
        if not fresh:
            return
        try:
            self.app.save(*(a.aggregate for _, a in fresh.values()))
        except IntegrityError:
            for i, _ in fresh.values():  # still racing another instance: one at a time
                outcomes[i] = self._append_one(*messages[i])
        else:
            for i, a in fresh.values():
                outcomes[i] = Outcome("appended", a.event_id)

    def _append_one(self, value: bytes | None, headers: Headers | None) -> Outcome:
        try:
            accepted = self.check(value, headers)
        except InvalidMessage as e:
            return Outcome("dead", code=e.code, reason=e.reason)
        try:
            self.app.save(accepted.aggregate)
        except IntegrityError:
            return Outcome("duplicate", accepted.event_id)
        return Outcome("appended", accepted.event_id)


@dataclass
class IngestStats:
    appended: int = 0
    duplicates: int = 0
    dead: int = 0
    commits: int = 0
    retries: int = 0
    dead_codes: dict[str, int] = field(default_factory=dict)


class KafkaIngest:
    """The consumer loop around an Ingestor."""

    def __init__(
        self, ingestor: Ingestor, *, bootstrap: str, topic: str = "lianxi.inbound.v1",
        dlq_topic: str = "lianxi.inbound.dlq.v1", group_id: str = "lianxi-ingest",
        client_id: str = "lianxi-ingest", session_timeout_ms: int = 10_000, max_poll_records: int = 500,
        ensure_topics: Sequence[tuple[str, int, int]] = (),
    ) -> None:
        self.ingestor = ingestor
        self.bootstrap = bootstrap
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.group_id = group_id
        self.client_id = client_id
        self.session_timeout_ms = session_timeout_ms
        self.max_poll_records = max_poll_records
        self.ensure_topics = ensure_topics
        self.stats = IngestStats()
        self._consumer: Any = None
        self._producer: Any = None

    def _connect(self) -> None:
        if self.ensure_topics:
            create_topics(self.bootstrap, self.ensure_topics, client_id=self.client_id)
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap.split(","), client_id=f"{self.client_id}-dlq", acks="all",
                enable_idempotence=True, request_timeout_ms=10_000, delivery_timeout_ms=30_000,
                reconnect_backoff_max_ms=1000,
            )
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap.split(","), client_id=self.client_id, group_id=self.group_id,
                enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
                session_timeout_ms=self.session_timeout_ms,
                heartbeat_interval_ms=max(500, self.session_timeout_ms // 6),
                max_poll_records=self.max_poll_records, reconnect_backoff_max_ms=1000,
            )
            self._consumer.subscribe([self.topic])

    def _dead_letter(self, record: Any, outcome: Outcome) -> Any:
        origin = f"{record.topic}/{record.partition}/{record.offset}"
        # the dead letter's value is the original bytes, whatever they were: the AsyncAPI
        # document declares it application/octet-stream, so the original content-type goes
        kept = [(k, v) for k, v in (record.headers or []) if k.lower() != "content-type"]
        original = [(DLQ_CONTENT_TYPE, v) for k, v in (record.headers or []) if k.lower() == "content-type"][:1]
        headers = [*kept, *original, ("content-type", b"application/octet-stream"),
                   (DLQ_CODE, (outcome.code or "").encode()),
                   (DLQ_REASON, (outcome.reason or "").encode()), (DLQ_ORIGIN, origin.encode())]
        return self._producer.send(self.dlq_topic, value=record.value, key=record.key, headers=headers)

    def handle(self, records: Sequence[Any]) -> dict[Any, int]:
        """Append or dead-letter a batch; returns the offsets to commit (per partition).
        Raises when an append or a dead-letter write was not acknowledged."""
        outcomes = self.ingestor.process([r.value for r in records], [r.headers for r in records])
        futures = []
        for record, outcome in zip(records, outcomes, strict=True):
            if outcome.kind == "dead":
                futures.append(self._dead_letter(record, outcome))
                log.info("ingest: dead letter %s/%s/%s: %s: %s", record.topic, record.partition,
                         record.offset, outcome.code, outcome.reason)
        if futures:
            self._producer.flush(timeout=30)
            for f in futures:
                f.get(timeout=0)
        for outcome in outcomes:
            if outcome.kind == "appended":
                self.stats.appended += 1
            elif outcome.kind == "duplicate":
                self.stats.duplicates += 1
            else:
                self.stats.dead += 1
                self.stats.dead_codes[outcome.code or ""] = self.stats.dead_codes.get(outcome.code or "", 0) + 1
        offsets: dict[Any, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, -1), r.offset + 1)
        return offsets

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Process one poll's worth of messages; returns how many were handled."""
        self._connect()
        batches = self._consumer.poll(timeout_ms=timeout_ms)
        records = [r for recs in batches.values() for r in recs]
        if not records:
            return 0
        try:
            offsets = self.handle(records)
        except Exception:
            # Not acknowledged: rewind to the first message of this batch and try again later.
            self.stats.retries += 1
            for tp, recs in batches.items():
                self._consumer.seek(tp, recs[0].offset)
            self._drop_producer()
            raise
        self._consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()})
        self.stats.commits += 1
        return len(records)

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception:
                log.debug("closing a failed producer raised", exc_info=True)

    def run_forever(self, stop: threading.Event, max_backoff: float = 5.0) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                self.poll_once()
                backoff = 0.2
            except Exception:  # infrastructure trouble: keep consuming, logged
                log.exception("ingest: batch failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
