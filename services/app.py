"""The Lianxi application: every context's use cases over one event store.

Each context's class stands on ``services.kernel.use_cases.UseCases``; composing them here
gives the API, the pages, the CLI and the jobs one object with one method per use case."""

from __future__ import annotations

from services.campaigns.use_cases import CampaignUseCases
from services.catalogue.use_cases import CatalogueUseCases
from services.duty_log.use_cases import DutyLogUseCases
from services.evidence.use_cases import EvidenceUseCases
from services.logistics.use_cases import LogisticsUseCases
from services.meetings.use_cases import MeetingUseCases
from services.rectifications.use_cases import RectificationUseCases
from services.reviews.appeals import ReviewAppealUseCases
from services.warnings.use_cases import WarningUseCases


class LianxiApp(
    CatalogueUseCases, DutyLogUseCases, RectificationUseCases, CampaignUseCases, WarningUseCases, MeetingUseCases,
    LogisticsUseCases, ReviewAppealUseCases, EvidenceUseCases,
):
    """One method per use case; see each context's ``use_cases.py``."""

    # Pinned on this class (eventsourcing names every subclass after itself): PostgreSQL
    # table names derive from it, so the stored log is lianxi_events.
    name = "lianxi"
