"""Outbound relay (`lianxi relay`): follows the event log and publishes every event to
Kafka as a CloudEvent (services/kafka/cloudevents.py), keyed by unit code so that each unit's
events stay in order on one partition.

Delivery is at least once:
- the producer is idempotent with acks=all;
- the relay's position (a row in ``relay_tracking``) advances only after the broker has
  acknowledged the whole batch, so a crash or a broker failure resends from the position;
- any producer failure (a broker restart gives UnknownProducerIdError, which leaves a
  kafka-python producer unusable) closes the producer and a fresh one is created.
Consumers drop the resulting duplicates by event id (services/kafka/dedupe.py).

Several relays may run against one PostgreSQL database: each batch holds the tracking row
with SELECT ... FOR UPDATE SKIP LOCKED until it is acknowledged and the position moved, so
batches never interleave and an idle relay does not queue behind a busy one. On SQLite
(the embedded default, one process) the position is moved with compare-and-set instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from projections.runner import LogReader
from services.kafka import cloudevents
from services.store.database import ddl_lock

log = logging.getLogger(__name__)

relay_metadata = sa.MetaData()
relay_tracking = sa.Table(
    "relay_tracking",
    relay_metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)


class Producer(Protocol):
    """The slice of kafka.KafkaProducer the relay uses."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


def kafka_producer_factory(
    bootstrap: str, *, client_id: str = "lianxi-relay", request_timeout_ms: int = 10_000,
    delivery_timeout_ms: int = 30_000, ensure_topics: Sequence[tuple[str, int, int]] = (),
) -> Callable[[], Producer]:
    """Creates idempotent acks=all producers, first creating any missing topics
    (name, partitions, replication): a fresh broker has none."""

    def make() -> Producer:
        from kafka import KafkaProducer

        if ensure_topics:
            create_topics(bootstrap, ensure_topics, client_id=client_id)
        producer: Producer = KafkaProducer(
            bootstrap_servers=bootstrap.split(","), client_id=client_id, acks="all", enable_idempotence=True,
            max_in_flight_requests_per_connection=5, linger_ms=5, batch_size=256 * 1024,
            request_timeout_ms=request_timeout_ms, delivery_timeout_ms=delivery_timeout_ms,
            reconnect_backoff_max_ms=1000, max_block_ms=delivery_timeout_ms,
        )
        return producer

    return make


def create_topics(bootstrap: str, topics: Sequence[tuple[str, int, int]], *, client_id: str = "lianxi") -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id=f"{client_id}-admin",
                             request_timeout_ms=10_000)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, partitions, replication) for name, partitions, replication in topics
               if name not in existing]
        if new:
            admin.create_topics(new, raise_errors=False)
    finally:
        admin.close()


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0
    producer_restarts: int = 0
    failures: int = 0
    last_error: str | None = None
    lock_skips: int = 0


class PublishFailed(Exception):
    """The broker did not acknowledge a batch; the position did not move."""


@dataclass
class Relay:
    reader: LogReader
    engine: sa.Engine
    producer_factory: Callable[[], Producer]
    topic: str = "lianxi.events.v1"
    name: str = "events"
    batch_size: int = 500
    flush_timeout_s: float = 30.0
    stats: RelayStats = field(default_factory=RelayStats)
    _producer: Producer | None = field(default=None, init=False, repr=False)

    def setup(self) -> None:
        """Create the tracking table and row, under the DDL lock relays starting together share."""
        with ddl_lock(self.engine):
            relay_tracking.create(self.engine, checkfirst=True)
            with self.engine.begin() as conn:
                q = sa.select(relay_tracking.c.name).where(relay_tracking.c.name == self.name)
                if conn.execute(q).first() is None:
                    conn.execute(relay_tracking.insert().values(name=self.name, position=0))

    def position(self) -> int:
        with self.engine.connect() as conn:
            q = sa.select(relay_tracking.c.position).where(relay_tracking.c.name == self.name)
            return int(conn.execute(q).scalar_one())

    def lag(self) -> int:
        return (self.reader.max_notification_id() or 0) - self.position()

    # -- publishing ------------------------------------------------------------------------

    def _publish(self, notifications: Sequence[Any]) -> None:
        """Send a batch and wait until the broker acknowledged every message."""
        try:
            if self._producer is None:
                self._producer = self.producer_factory()
            producer = self._producer
            futures = []
            for n in notifications:
                event = cloudevents.from_notification(n)
                key = event["source"].rsplit("/", 1)[-1].encode()
                futures.append(producer.send(self.topic, value=cloudevents.encode(event), key=key,
                                             headers=cloudevents.HEADERS))
            producer.flush(timeout=self.flush_timeout_s)
            for f in futures:
                f.get(timeout=0)
        except Exception as e:
            # Whatever failed (broker gone, fenced/unknown producer id, timeout), this producer
            # may hold a poisoned idempotence state: drop it and start a fresh one next time.
            self.stats.failures += 1
            self.stats.last_error = f"{type(e).__name__}: {e}"
            self._drop_producer()
            raise PublishFailed(self.stats.last_error) from e

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        self.stats.producer_restarts += 1
        try:
            producer.close(timeout=0)
        except Exception:  # a dead producer may fail to close; it is dropped anyway
            log.debug("closing a failed producer raised", exc_info=True)

    def step(self) -> int:
        """Publish at most one batch after the position; returns how many events were sent.
        Raises PublishFailed (position unchanged) when the broker did not acknowledge."""
        if self.engine.dialect.name == "postgresql":
            return self._step_locked()
        return self._step_cas()

    def _read(self, position: int) -> Sequence[Any]:
        head = self.reader.max_notification_id() or 0
        if head <= position:
            return ()
        return self.reader.select_notifications(start=position, limit=self.batch_size, stop=head,
                                                inclusive_of_start=False)

    def _step_locked(self) -> int:
        with self.engine.begin() as conn:
            q = (sa.select(relay_tracking.c.position).where(relay_tracking.c.name == self.name)
                 .with_for_update(skip_locked=True))
            position = conn.execute(q).scalar()
            if position is None:  # another relay holds the row: it is publishing this batch
                self.stats.lock_skips += 1
                return 0
            notifications = self._read(int(position))
            if not notifications:
                return 0
            self._publish(notifications)
            conn.execute(relay_tracking.update().where(relay_tracking.c.name == self.name)
                         .values(position=int(notifications[-1].id)))
        self._count(notifications)
        return len(notifications)

    def _step_cas(self) -> int:
        position = self.position()
        notifications = self._read(position)
        if not notifications:
            return 0
        self._publish(notifications)
        with self.engine.begin() as conn:
            conn.execute(relay_tracking.update()
                         .where(relay_tracking.c.name == self.name, relay_tracking.c.position == position)
                         .values(position=int(notifications[-1].id)))
        self._count(notifications)
        return len(notifications)

    def _count(self, notifications: Sequence[Any]) -> None:
        self.stats.published += len(notifications)
        self.stats.batches += 1

    def catch_up(self) -> int:
        """Publish up to the head of the log (raises PublishFailed on a broker failure)."""
        total = 0
        while True:
            sent = self.step()
            total += sent
            if sent < self.batch_size:
                return total

    def run_forever(self, stop: threading.Event, idle_sleep: float = 0.2, max_backoff: float = 5.0) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                sent = self.step()
            except PublishFailed as e:
                log.warning("relay: broker did not acknowledge (%s); retrying from position in %.1fs", e, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff)
                continue
            except Exception:  # database trouble: keep trying, the error is logged
                log.exception("relay: batch failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff)
                continue
            backoff = 0.2
            if sent == 0:
                stop.wait(idle_sleep)

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=5)
            except Exception:
                log.debug("closing the producer raised", exc_info=True)
