"""Shared fixtures.

`platform` is parametrised over the embedded SQLite store and the local PostgreSQL server
(each test gets its own schema). PostgreSQL tests skip when the server is absent, and fail
instead when LIANXI_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from contracts.catalogue import default_catalogue
from services.api.main import create_app
from services.platform import Platform
from services.settings import Settings

# Tests never write the repository's var/: the review's signing key goes to a temp dir.
os.environ.setdefault("LIANXI_CHECKPOINT_KEY", str(Path(tempfile.mkdtemp(prefix="lianxi-key-")) / "checkpoint.key"))
# ... and evidence uploads to a temp dir (tests that look at the blobs pass their own).
os.environ.setdefault("LIANXI_EVIDENCE_DIR", tempfile.mkdtemp(prefix="lianxi-evidence-"))

PG_BASE = os.environ.get("LIANXI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("LIANXI_REQUIRE_SERVICES") == "1"
# Tests run "now" at a fixed instant unless they move the clock.
FIXED_NOW = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_BASE.replace("postgresql://", "postgresql://", 1), connect_timeout=3):
            return True
    except Exception:
        return False


def require_postgres() -> None:
    if not postgres_available():
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL is required (LIANXI_REQUIRE_SERVICES=1) but {PG_BASE} is unreachable")
        pytest.skip(f"PostgreSQL not reachable at {PG_BASE}")


def drop_pg_schema(schema: str) -> None:
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lianxi.db'}"
        return
    require_postgres()
    schema = f"lxt_{uuid.uuid4().hex[:12]}"
    yield f"{PG_BASE}?schema={schema}"
    drop_pg_schema(schema)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lianxi.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema on the local PostgreSQL server."""
    require_postgres()
    schema = f"lxt_{uuid.uuid4().hex[:12]}"
    yield f"{PG_BASE}?schema={schema}"
    drop_pg_schema(schema)


class Clock:
    """An injectable clock for tests."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_platform(url: str, *, group_commit: bool = False, clock: Clock | None = None, **settings: Any) -> Platform:
    platform = Platform(Settings(database_url=url, **settings), group_commit=group_commit)
    platform.clock = clock or Clock()
    return platform


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def platform(database_url: str, clock: Clock) -> Iterator[Platform]:
    """A platform with the catalogue registered (as of 2000-01-01), on SQLite and PostgreSQL."""
    p = make_platform(database_url, clock=clock)
    p.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    p.runner.catch_up()
    yield p
    p.close()


@pytest.fixture
def sqlite_platform(sqlite_url: str, clock: Clock) -> Iterator[Platform]:
    """Same as `platform`, SQLite only (for tests whose subject is not the store)."""
    p = make_platform(sqlite_url, clock=clock)
    p.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    p.runner.catch_up()
    yield p
    p.close()


class Api:
    """A TestClient plus helpers to act as a given unit and role."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.client = TestClient(create_app(platform))
        self._tokens: dict[tuple[str, str], str] = {}

    def token(self, agency: str, role: str = "liaison") -> str:
        key = (agency, role)
        if key not in self._tokens:
            _, tok = self.platform.tokens.issue(agency=agency, role=role, label=f"test-{agency}-{role}",
                                                known_agencies=self.platform.known_agencies())
            self._tokens[key] = tok
        return self._tokens[key]

    def as_(self, agency: str, role: str = "liaison") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(agency, role)}"}

    def settle(self) -> None:
        """Bring every read model up to the head of the log."""
        self.platform.runner.catch_up()


@pytest.fixture
def api(platform: Platform) -> Api:
    return Api(platform)


@pytest.fixture
def sqlite_api(sqlite_platform: Platform) -> Api:
    return Api(sqlite_platform)


def register_schools(api: Api, n: int = 3, **flags: bool) -> list[str]:
    ids = []
    for i in range(1, n + 1):
        sid = f"T{i:03d}"
        r = api.client.post("/api/v1/schools", headers=api.as_("education", "lead"), json={
            "id": sid, "name": f"测试学校{i}", "town": "满都拉图镇", "kind": "primary",
            "canteen": flags.get("canteen", i % 2 == 1), "boarding": flags.get("boarding", False),
            "school_bus": flags.get("school_bus", i == 1),
        })
        assert r.status_code == 201, r.text
        ids.append(sid)
    return ids


Factory = Callable[..., Any]
