"""Event store and read-model database wiring from one LIANXI_DATABASE_URL.

SQLite (default): WAL with synchronous=FULL so an acknowledged write survives power loss.
PostgreSQL: the eventsourcing postgres module with its default LOCK TABLE insert path.
POSTGRES_ENABLE_DB_FUNCTIONS is never set: its insert skips the lock and followers of the
log then miss events.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import orjson
import sqlalchemy as sa
from eventsourcing.persistence import Transcoder
from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteDatastore, SQLiteFactory

SQLITE_BUSY_TIMEOUT_S = 30


class OrjsonTranscoder(Transcoder):
    """Event state is JSON-native by design (events/base.py); only eventsourcing's own
    ``timestamp`` needs turning back into a datetime. orjson is several times faster than
    the stdlib json the default transcoder uses."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        state = orjson.loads(data)
        ts = state.get("timestamp")
        if isinstance(ts, str):
            state["timestamp"] = dt.datetime.fromisoformat(ts)
        return state


class DurableSQLiteConnectionPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        conn = super()._create_connection()
        raw: sqlite3.Connection = conn._sqlite_conn  # the only handle on which to set pragmas
        raw.execute("PRAGMA synchronous=FULL")
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        return conn


class DurableSQLiteFactory(SQLiteFactory):
    """SQLiteFactory whose connections use synchronous=FULL (eventsourcing leaves it unset)."""

    def __init__(self, env: Any):
        super().__init__(env)
        old = self.datastore
        self.datastore = SQLiteDatastore(
            db_name=old.pool.db_name,
            lock_timeout=SQLITE_BUSY_TIMEOUT_S,
            single_row_tracking=old.single_row_tracking,
            originator_id_type=old.originator_id_type,
        )
        self.datastore.pool = DurableSQLiteConnectionPool(
            db_name=old.pool.db_name, lock_timeout=SQLITE_BUSY_TIMEOUT_S, pool_size=5, max_overflow=10,
        )


@dataclass(frozen=True)
class Database:
    """Where the log and the read models live."""

    url: str
    kind: str  # "sqlite" | "postgres"
    sqlite_path: Path | None = None
    pg: dict[str, str] | None = None
    schema: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Database:
        parsed = urlparse(url)
        if parsed.scheme in ("sqlite", "sqlite3"):
            # sqlite:///relative/or/absolute ; sqlite:////abs
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if not path:
                raise ValueError(f"LIANXI_DATABASE_URL {url!r}: a SQLite URL needs a file path")
            return cls(url=url, kind="sqlite", sqlite_path=Path(path))
        if parsed.scheme in ("postgres", "postgresql", "postgresql+psycopg"):
            query = parse_qs(parsed.query)
            schema = query.get("schema", [None])[0]
            pg = {
                "POSTGRES_DBNAME": (parsed.path or "/").lstrip("/") or "postgres",
                "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(parsed.port or 5432),
                "POSTGRES_USER": unquote(parsed.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            }
            return cls(url=url, kind="postgres", pg=pg, schema=schema)
        raise ValueError(
            f"LIANXI_DATABASE_URL {url!r}: scheme must be sqlite:/// or postgresql://"
        )

    def eventsourcing_env(self) -> dict[str, str]:
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            return {
                "PERSISTENCE_MODULE": "services.store:DurableSQLiteFactory",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "SQLITE_LOCK_TIMEOUT": str(SQLITE_BUSY_TIMEOUT_S),
            }
        assert self.pg is not None
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            **self.pg,
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        }
        if self.schema:
            env["POSTGRES_SCHEMA"] = self.schema
        return env

    def sqlalchemy_engine(self, *, writer: bool = True, **kw: Any) -> sa.Engine:
        """A writer engine takes SQLite's write lock at BEGIN (no lock-upgrade deadlocks);
        a reader engine does not, so reads never queue behind projection batches."""
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(
                f"sqlite:///{self.sqlite_path}", connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **kw,
            )

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
                # Let SQLAlchemy, not pysqlite, decide when transactions begin.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
                cur.close()

            @sa.event.listens_for(engine, "begin")
            def _begin(conn: sa.Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

            return engine
        assert self.pg is not None
        pg = self.pg
        auth = pg["POSTGRES_USER"] + (f":{pg['POSTGRES_PASSWORD']}" if pg["POSTGRES_PASSWORD"] else "")
        url = f"postgresql+psycopg://{auth}@{pg['POSTGRES_HOST']}:{pg['POSTGRES_PORT']}/{pg['POSTGRES_DBNAME']}"
        connect_args: dict[str, Any] = {}
        if self.schema:
            connect_args["options"] = f"-csearch_path={self.schema}"
        return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True, **kw)

    def ensure_schema(self) -> None:
        """Create the PostgreSQL schema named in the URL, if any."""
        if self.kind != "postgres" or not self.schema:
            return
        engine = Database(url=self.url, kind="postgres", pg=self.pg).sqlalchemy_engine()
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
        engine.dispose()
