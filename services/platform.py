"""One bootstrap that wires the event store, read models, projections and auth.

``ReadSide`` is the part every process needs (the log, the read models and the runner that
follows the log); ``Platform`` adds what serving people needs (use cases, tokens, accounts,
audit, evidence blobs, briefs). A command that only maintains read models (a rebuild) builds
the read side alone, and its modules import nothing of the rest: the accounts module alone
(argon2, a password hash at import), the evidence cleaners (Pillow, lxml) and the brief cache
were most of a rebuild's start-up."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from projections.campaign_progress import CampaignProgressView
from projections.catalogue_view import CatalogueView, list_agencies
from projections.compliance import ComplianceView
from projections.event_index import EventIndex, indexed_positions
from projections.evidence import EvidenceIndex
from projections.ledger import LedgerView
from projections.meetings import MeetingsView
from projections.notifications import NotificationsView, setup_notify_tables
from projections.petitions import PetitionsView
from projections.rectification_board import RectificationBoard
from projections.runner import ProjectionRunner
from projections.targets import TargetsView
from projections.warning_response import WarningResponseView
from services.kernel.event_store import EventStore
from services.security import hashchain
from services.settings import Settings, get_settings
from services.store.database import Database, ddl_lock

if TYPE_CHECKING:
    from contracts.escalation import EscalationRules
    from services.accounts.service import Accounts
    from services.app import LianxiApp
    from services.evidence.storage import BlobStore
    from services.kernel.jobs import JobContext
    from services.meetings.briefs import BriefCache
    from services.security.audit import AuditTrail
    from services.security.oidc import OidcClient
    from services.security.tokens import TokenStore

log = logging.getLogger(__name__)


def all_projections() -> list[Any]:
    return [
        CatalogueView(), LedgerView(), RectificationBoard(), CampaignProgressView(), WarningResponseView(),
        MeetingsView(), TargetsView(), ComplianceView(), PetitionsView(), NotificationsView(), EvidenceIndex(),
        EventIndex(),
        hashchain.HashChainProjection(),  # tamper evidence over every event
    ]


def render_brief(*args: Any, **kwargs: Any) -> Any:
    """The brief renderer, imported when a brief is first rendered: Jinja2 and the Word and
    PDF writers are not loaded by CLI commands that never render one (a rebuild)."""
    from services.documents.brief import render

    return render(*args, **kwargs)


def oidc_client(settings: Settings) -> OidcClient | None:
    """The identity provider's client when single sign-on is configured; Authlib and joserfc
    are imported only then."""
    if not settings.oidc_enabled:
        return None
    from services.security.oidc import OidcClient

    return OidcClient(settings)


def utcnow() -> datetime:
    return datetime.now(UTC)


def read_pool(kind: str) -> dict[str, int]:
    """The reader engine's pool. Sync routes run on AnyIO's 40 worker threads: with SQLAlchemy's
    default (5 kept + 10 overflow) threads waited for a connection and overflow connections were
    closed and reopened. On SQLite a connection is a file handle: one kept per thread. On
    PostgreSQL, where N processes share max_connections, the old ceiling of 15, all kept."""
    if kind == "sqlite":
        return {"pool_size": READ_THREADS, "max_overflow": 0}
    return {"pool_size": 15, "max_overflow": 0}


READ_THREADS = 40  # AnyIO's default thread limiter, which FastAPI's sync routes share


class LogStore(EventStore):
    """The log without the use cases: what a read-side command reads it through. Its name is
    LianxiApp's (PostgreSQL's table names derive from it; tests pin the two equal)."""

    name = "lianxi"


class ReadSide:
    """The log, the writer engine and every read model's runner, with their tables set up."""

    def __init__(self, settings: Settings | None = None, *, app: EventStore | None = None,
                 database: Database | None = None) -> None:
        self.settings = settings or get_settings()
        self.database = database or Database.from_url(self.settings.database_url)
        self.store: EventStore = app or LogStore(self.database)
        self.write_engine: sa.Engine = self.database.sqlalchemy_engine(writer=True)
        self.runner = ProjectionRunner(self.store.recorder, self.write_engine, all_projections(),
                                       batch_size=self.settings.projection_batch_size)
        with ddl_lock(self.write_engine):
            self.runner.setup()
            # Tables no rebuild may drop: the hash chain, notification deliveries and read marks.
            hashchain.setup(self.write_engine)
            setup_notify_tables(self.write_engine)

    def head(self) -> int:
        return self.store.recorder.max_notification_id() or 0

    def close(self) -> None:
        self.store.close()
        self.write_engine.dispose()


class Platform(ReadSide):
    def __init__(self, settings: Settings | None = None, *, group_commit: bool | None = None) -> None:
        # Imported here: the read side alone (a rebuild) needs none of them.
        from services.accounts.service import Accounts
        from services.app import LianxiApp
        from services.evidence.storage import open_blob_store
        from services.meetings.briefs import BriefCache, RenderStore
        from services.security.audit import AuditTrail
        from services.security.tokens import TokenStore
        from services.store.accounts import setup_account_tables

        settings = settings or get_settings()
        database = Database.from_url(settings.database_url)
        use_group_commit = settings.group_commit if group_commit is None else group_commit
        self.app: LianxiApp = LianxiApp(database, group_commit=use_group_commit,
                                        max_batch=settings.group_commit_max_batch)
        super().__init__(settings, app=self.app, database=database)
        self.read_engine: sa.Engine = self.database.sqlalchemy_engine(writer=False, **read_pool(self.database.kind))
        self.tokens: TokenStore = TokenStore(self.write_engine, self.read_engine)
        self.blobs: BlobStore = open_blob_store(self.settings)  # evidence bytes (services/evidence/storage.py)
        self.audit: AuditTrail = AuditTrail(self.write_engine, self.app)
        self.accounts: Accounts = Accounts(self.write_engine, self.settings)
        with ddl_lock(self.write_engine):
            setup_account_tables(self.write_engine)  # before the tokens: a person's token joins its account
            self.tokens.setup()
            self.audit.setup_tables()
            renders = RenderStore(self.write_engine)
            renders.setup()
        self.briefs: BriefCache = BriefCache(render_brief, workers=self.settings.brief_render_workers, store=renders)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.clock = utcnow
        self.oidc = oidc_client(self.settings)

    def start_background(self) -> None:
        """Follow the log in-process (the embedded default)."""
        t = threading.Thread(target=self.runner.run_forever, args=(self._stop,), name="projections", daemon=True)
        t.start()
        self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self.briefs.close()
        super().close()
        self.read_engine.dispose()

    def job_context(self, *, rules: EscalationRules | None = None,
                    on_decided: Callable[[int], None] | None = None) -> JobContext:
        """What a scheduled job may touch (services/kernel/jobs.py)."""
        from contracts.escalation import load_escalation_rules
        from services.kernel.jobs import JobContext

        return JobContext(app=self.app, runner=self.runner, read_engine=self.read_engine,
                          write_engine=self.write_engine, rules=rules or load_escalation_rules(),
                          settings=self.settings, on_decided=on_decided, blobs=self.blobs, briefs=self.briefs,
                          assemble_brief=self.assemble_brief)

    def assemble_brief(self, meeting_id: str, today: date) -> dict[str, Any] | None:
        """A meeting's brief data as of ``today`` (None for an unknown meeting): the one way the
        API, the pages and the pre-render job build it, so a pre-rendered brief's digest is
        the one readers ask for."""
        from services.meetings.brief_data import build_brief

        return build_brief(self.read_engine, self.runner.catch_up, meeting_id, today,
                           positions=self.event_positions, evidence=self.record_thumbnails)

    def event_positions(self, ids: Sequence[str]) -> dict[str, int]:
        """Log positions of cited events (an aggregate's id gives its creation); unknown ids are
        absent. Derived ids from the event index, the rest by the log's primary key."""
        self.runner.catch_up("event_index")
        with self.read_engine.connect() as conn:
            found = indexed_positions(conn, ids)
        for an_id in dict.fromkeys(ids):
            if not an_id or an_id in found:
                continue
            try:
                created = self.app.position_of(uuid.UUID(an_id), 1)
            except ValueError:
                continue  # not a UUID: no aggregate has it
            if created is not None:
                found[an_id] = created
        return found

    def record_thumbnails(self, record_ids: Sequence[str], per_record: int = 4) -> dict[str, dict[str, Any]]:
        """Each record's evidence as documents show it (thumbnails), for the brief's annex."""
        from services.evidence.use_cases import record_thumbnails as evidence_thumbnails

        self.runner.catch_up("evidence")
        with self.read_engine.connect() as conn:
            return evidence_thumbnails(conn, self.blobs, record_ids, per_record=per_record)

    def known_agencies(self) -> dict[str, bool]:
        self.runner.catch_up("catalogue")
        with self.read_engine.connect() as conn:
            return {a["code"]: bool(a["lead"]) for a in list_agencies(conn)}
