"""What a read model needs of the domain without importing its aggregates: the topics the
log stores its events under, and the task and rectification states a read model queries by.

The read models filter the log by topic. Naming each topic by its class (``get_topic``) made
every read-side process import every aggregate module, whose ~140 event classes (each a
dataclass built at import) were about a sixth of a ``projections rebuild``'s start-up; the
rebuild never builds a domain object. tests/test_stored_topics.py holds each topic here equal
to ``get_topic`` of its class.
"""

from __future__ import annotations

AGENCY = "events.agencies:Agency"
SCHOOL = "events.schools:School"
CAMPAIGN = "events.campaigns:Campaign"
SELF_CHECK = "events.campaigns:SelfCheck"
JOINT_INSPECTION = "events.campaigns:JointInspection"
PHASE_REMINDER = "events.campaigns:PhaseReminder"
DUTY_RECORD = "events.duty_log:DutyRecord"
EVIDENCE = "events.evidence:Evidence"
ANNUAL_TARGET = "events.logistics:AnnualTarget"
RECOGNITION = "events.logistics:Recognition"
COMPLIANCE_RECORD = "events.logistics:ComplianceRecord"
COMPLIANCE_GAP = "events.logistics:ComplianceGap"
PETITION = "events.logistics:Petition"
MEETING = "events.meetings:Meeting"
TASK = "events.meetings:Task"
RECTIFICATION = "events.rectifications:Rectification"
EARLY_WARNING = "events.warnings:EarlyWarning"
WARNING_ACKNOWLEDGEMENT = "events.warnings:WarningAcknowledgement"

# The domain's own definitions (events/rectifications.py and events/meetings.py import them).
# A rectification's states with a running deadline: only these can become overdue and
# escalate. A reported completion stops the clock (the unit has answered); verification is
# the lead's to do.
RUNNING = ("assigned", "in_progress", "reopened")
OPEN_STATES = ("assigned", "in_progress", "reopened")  # a task's, with its deadline running


def event_topic(aggregate: str, event: str) -> str:
    """The stored topic of ``aggregate``'s (``module:Class``) event class named ``event``."""
    return f"{aggregate}.{event}"


def event_topics(aggregate: str, *events: str) -> tuple[str, ...]:
    return tuple(event_topic(aggregate, e) for e in events)
