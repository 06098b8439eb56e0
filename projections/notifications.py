"""Notifications (通知): what needs a member unit's action, derived from the log.

The projection turns events into inbox rows, one per (event, recipient unit, kind):
- a rectification or a meeting task assigned to the unit, rejected back to it, overdue, or
  escalated (督办 / 通报 / 纳入考核);
- a warning the unit must acknowledge (the lead bureau acknowledges for schools), and a
  warning escalated to the lead;
- a compliance record missing (the unit responsible for the kind);
- a petition assigned to the unit for handling;
- a campaign phase reminder, and a joint meeting scheduled (every member unit).

Outbound delivery (webhook, email) must happen exactly once even though the read model can
be dropped and rebuilt. So the projection also writes one *delivery record* per
(notification, channel) with INSERT ... ON CONFLICT DO NOTHING into tables that live outside
the projection's own tables (``notify_metadata``): a rebuild re-derives the inbox but finds
every delivery record already there, and sends nothing again. Read marks live there too, so a
rebuild keeps what a unit has read. A channel only receives notifications recorded after it
was configured, so adding a webhook never replays history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from contracts.catalogue import default_catalogue
from contracts.compliance import default_calendar
from events.base import derive_id
from events.stored import (
    AGENCY,
    COMPLIANCE_GAP,
    EARLY_WARNING,
    MEETING,
    PETITION,
    PHASE_REMINDER,
    RECTIFICATION,
    TASK,
    event_topic,
)
from projections.base import LoggedEvent, Projection, insert_ignore, metadata, type_of_topic, upsert_add
from projections.warning_response import LEVEL_NAMES, TYPE_NAMES

notifications = sa.Table(
    "rm_notifications",
    metadata,
    sa.Column("notification_id", sa.String(36), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("recipient", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("subject_type", sa.String(30), nullable=False),
    sa.Column("subject_id", sa.String(200), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("event_type", sa.String(60), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),  # recorded time of the event
    sa.Index("ix_rm_notifications_recipient", "recipient", "position"),
)

# Who is responsible for an assigned item (rectification or task), so later steps that do not
# name the units (rejection, overdue, escalation) reach all of them.
assignees = sa.Table(
    "rm_notify_assignees",
    metadata,
    sa.Column("item_id", sa.String(36), primary_key=True),
    sa.Column("units", sa.Text, nullable=False),  # JSON list, lead unit first
)

units_table = sa.Table(
    "rm_notify_units",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("lead", sa.Boolean, nullable=False),
)

# -- outside the projection: survives a rebuild --------------------------------------------------

notify_metadata = sa.MetaData()

channels = sa.Table(
    "notify_channels",
    notify_metadata,
    sa.Column("agency", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),  # webhook | email
    sa.Column("target", sa.String(500), nullable=False),  # URL or address
    sa.Column("secret", sa.String(100), nullable=True),  # webhook signing key
    sa.Column("created_at", sa.String(32), nullable=False),  # utc_text
    sa.Column("updated_at", sa.String(32), nullable=False),
)

deliveries = sa.Table(
    "notify_deliveries",
    notify_metadata,
    sa.Column("notification_id", sa.String(36), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("agency", sa.String(64), nullable=False),
    # pending -> sending -> delivered | retry -> ... -> failed; expired / cancelled
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.String(32), nullable=False),
    sa.Column("lease_until", sa.String(32), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("delivered_at", sa.String(32), nullable=True),
    sa.Column("created_at", sa.String(32), nullable=False),  # the notification's time
    sa.Column("payload", sa.Text, nullable=False),  # JSON: what is sent, fixed at creation
    sa.Index("ix_notify_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_notify_deliveries_agency", "agency", "created_at"),
)

attempts = sa.Table(
    "notify_delivery_attempts",
    notify_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("notification_id", sa.String(36), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("attempted_at", sa.String(32), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_notify_attempts_delivery", "notification_id", "channel"),
)

reads = sa.Table(
    "notify_reads",
    notify_metadata,
    sa.Column("notification_id", sa.String(36), primary_key=True),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("read_at", sa.String(32), nullable=False),
)


def setup_notify_tables(engine: sa.Engine) -> None:
    notify_metadata.create_all(engine, checkfirst=True)


# -- the policy: event -> notices ------------------------------------------------------------------

Notice = dict[str, Any]  # recipient, kind, title, body, subject_type, subject_id
Rule = Callable[[LoggedEvent, "Context"], list[Notice]]


class Context:
    """What rules may look up: units of assigned items and the member units. Assignments a
    batch will look up are read in one query up front, and those it makes are written once
    each at the end (``flush``), instead of a SELECT and a write per event."""

    def __init__(self, conn: sa.Connection, events: Sequence[LoggedEvent] = ()) -> None:
        self.conn = conn
        self._assignees: dict[str, list[str]] = {}
        self._assigned: set[str] = set()  # written by this batch, not yet stored
        self._units: list[str] | None = None
        self._lead: tuple[str | None] | None = None
        self._load([i for e in events if (i := _item_of(e)) is not None])

    def _load(self, item_ids: Sequence[str]) -> None:
        wanted = sorted(set(item_ids) - self._assignees.keys())
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            found: dict[str, str] = {str(item): str(units) for item, units in self.conn.execute(
                sa.select(assignees.c.item_id, assignees.c.units).where(assignees.c.item_id.in_(chunk)))}
            for item in chunk:
                raw = found.get(item)
                self._assignees[item] = [] if raw is None else list(orjson.loads(raw))

    def assignees(self, item_id: str) -> list[str]:
        if item_id not in self._assignees:
            self._load([item_id])
        return self._assignees[item_id]

    def assign(self, item_id: str, units: list[str]) -> None:
        self._assignees[item_id] = units
        self._assigned.add(item_id)

    def flush(self) -> None:
        """Stores the batch's assignments (the latest units per item)."""
        if self._assigned:
            upsert_add(self.conn, assignees, [
                {"item_id": item, "units": orjson.dumps(self._assignees[item]).decode()}
                for item in sorted(self._assigned)], keys=("item_id",), replace=("units",))
            self._assigned.clear()

    def units(self) -> list[str]:
        if self._units is None:
            self._units = [r[0] for r in self.conn.execute(sa.select(units_table.c.code).order_by(units_table.c.code))]
        return self._units

    def lead(self) -> str | None:
        if self._lead is None:
            row = self.conn.execute(sa.select(units_table.c.code).where(units_table.c.lead.is_(True))).first()
            self._lead = (None if row is None else str(row[0]),)
        return self._lead[0]

    def add_unit(self, code: str, lead: bool) -> None:
        insert_ignore(self.conn, units_table, [{"code": code, "lead": lead}])
        self._units = None
        self._lead = None


_RECTIFICATION_STEPS = frozenset({"RectificationAssigned", "RectificationRejected", "RectificationOverdue",
                                  "RectificationEscalated"})
_TASK_STEPS = frozenset({"TaskAssigned", "TaskRejected", "TaskOverdue", "TaskEscalated"})


def _item_of(e: LoggedEvent) -> str | None:
    """The assigned item whose units an event's rule looks up or sets."""
    if e.type in _RECTIFICATION_STEPS:
        return e.record_id
    if e.type in _TASK_STEPS:
        return str(e.data["task_id"])
    return None


def _unit(code: str) -> str:
    """A unit as people read it: its name (the code only when the catalogue lacks it)."""
    return next((u.name for u in default_catalogue().units.units if u.code == code), code)


def _units(codes: Iterable[str]) -> str:
    return "、".join(_unit(c) for c in codes) or "无"


def _notice(recipients: Iterable[str], kind: str, title: str, body: str, subject_type: str,
            subject_id: str) -> list[Notice]:
    return [{"recipient": r, "kind": kind, "title": title[:300], "body": body, "subject_type": subject_type,
             "subject_id": subject_id} for r in dict.fromkeys(recipients) if r]


def _rect_assigned(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    units = [d["lead_unit"], *d["cooperating_units"]]
    ctx.assign(e.record_id, units)
    return _notice(units, "rectification-assigned", f"整改任务已分派，请于{d['deadline']}前完成",
                   f"牵头单位：{_unit(d['lead_unit'])}；配合单位：{_units(d['cooperating_units'])}。"
                   f"整改措施：{'；'.join(d['measures'])}", "rectification", e.record_id)


def _rect_rejected(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    return _notice(ctx.assignees(e.record_id), "rectification-rejected",
                   f"整改未通过验收，已退回重新整改，新期限{d['new_deadline']}", f"理由：{d['reason']}",
                   "rectification", e.record_id)


def _rect_overdue(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    return _notice(ctx.assignees(e.record_id) or [d["agency"]], "rectification-overdue",
                   f"整改事项已逾期{d['days_overdue']}天（期限{d['deadline']}）", "请尽快完成整改并回告。",
                   "rectification", e.record_id)


def _rect_escalated(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    return _notice(ctx.assignees(e.record_id) or [d["agency"]], "rectification-escalated",
                   f"整改事项逾期升级：{d['name']}（第{d['level']}级）",
                   f"期限{d['deadline']}，已逾期{d['days_overdue']}天。", "rectification", e.record_id)


def _task_assigned(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    units = [d["unit"], *d["cooperating_units"]]
    ctx.assign(d["task_id"], units)
    return _notice(units, "task-assigned", f"会议决议任务已分派，请于{d['deadline']}前完成", d["description"],
                   "task", d["task_id"])


def _task_rejected(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    return _notice(ctx.assignees(d["task_id"]), "task-rejected", f"决议任务未通过验收，新期限{d['new_deadline']}",
                   f"理由：{d['reason']}", "task", d["task_id"])


def _task_overdue(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    return _notice(ctx.assignees(d["task_id"]) or [d["unit"]], "task-overdue",
                   f"决议任务已逾期{d['days_overdue']}天（期限{d['deadline']}）", "请尽快完成并回告。", "task",
                   d["task_id"])


def _task_escalated(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    return _notice(ctx.assignees(d["task_id"]) or [d["unit"]], "task-escalated",
                   f"决议任务逾期升级：{d['name']}（第{d['level']}级）",
                   f"期限{d['deadline']}，已逾期{d['days_overdue']}天。", "task", d["task_id"])


def _warning_issued(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    recipients = list(d["units"])
    if d["school_ids"]:
        # Schools acknowledge through the lead bureau's credentials.
        lead = ctx.lead()
        if lead:
            recipients.append(lead)
    kind = TYPE_NAMES.get(d["warning_type"], d["warning_type"]) + LEVEL_NAMES.get(d["level"], d["level"])
    return _notice(recipients, "warning-to-acknowledge", f"预警待确认：{d['title']}",
                   f"{kind}预警，覆盖{'、'.join(d['towns'])}，有效期至{d['valid_until']}。"
                   f"请确认并报告已采取的措施：{'；'.join(d['measures'])}", "warning", e.record_id)


def _warning_escalated(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    return _notice([d["escalated_to"]], "warning-escalated",
                   f"预警未按时确认，已升级：{len(d['unacknowledged_schools'])}所学校、"
                   f"{len(d['unacknowledged_units'])}个单位未确认",
                   f"未确认单位：{_units(d['unacknowledged_units'])}", "warning", e.record_id)


def _compliance_missing(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    try:
        name = default_calendar().kind(d["kind"]).name
    except KeyError:
        name = d["kind"]
    extra = "已同时列为隐患，进入整改台账。" if d["opens_hazard"] else ""
    return _notice([d["agency"]], "compliance-missing", f"台账缺报：学校{d['school_id']} {name}（{d['period']}）",
                   f"应于{d['due_on']}前提交，宽限期后仍未提交。请督促补报。{extra}", "compliance",
                   f"{d['school_id']}/{d['kind']}/{d['period']}")


def _petition_received(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    return _notice([d["handling_unit"]], "petition-assigned",
                   f"信访件待办理：{d['reference']}（办理期限{d['due_on']}）", d["summary"],
                   "petition", e.record_id)


def _phase_reminder(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    what = "即将到期" if d["kind"] == "due-soon" else "已逾期"
    template = next((t for t in default_catalogue().campaigns.campaigns if t.code == d["template"]), None)
    name = template.name if template else d["template"]
    phase = next((p.name for p in template.phases if p.code == d["phase"]), d["phase"]) if template else d["phase"]
    return _notice([d["agency"]], "campaign-reminder", f"{name}“{phase}”阶段{what}（截止{d['deadline']}）",
                   f"{len(d['school_ids'])}所学校未完成。", "campaign", d["campaign_id"])


def _meeting_scheduled(e: LoggedEvent, ctx: Context) -> list[Notice]:
    d = e.data
    return _notice(ctx.units() or [d["agency"]], "meeting-scheduled",
                   f"联席会议已安排：{d['title']}", f"时间：{d['scheduled_for']}；地点：{d['place'] or '另行通知'}。",
                   "meeting", e.record_id)


def _agency_registered(e: LoggedEvent, ctx: Context) -> list[Notice]:
    ctx.add_unit(e.data["code"], bool(e.data["lead"]))
    return []


RULES: dict[str, Rule] = {  # by stored topic (events/stored.py)
    event_topic(AGENCY, "AgencyRegistered"): _agency_registered,
    event_topic(RECTIFICATION, "RectificationAssigned"): _rect_assigned,
    event_topic(RECTIFICATION, "RectificationRejected"): _rect_rejected,
    event_topic(RECTIFICATION, "RectificationOverdue"): _rect_overdue,
    event_topic(RECTIFICATION, "RectificationEscalated"): _rect_escalated,
    event_topic(TASK, "TaskAssigned"): _task_assigned,
    event_topic(TASK, "TaskRejected"): _task_rejected,
    event_topic(TASK, "TaskOverdue"): _task_overdue,
    event_topic(TASK, "TaskEscalated"): _task_escalated,
    event_topic(EARLY_WARNING, "WarningIssued"): _warning_issued,
    event_topic(EARLY_WARNING, "WarningEscalated"): _warning_escalated,
    event_topic(COMPLIANCE_GAP, "ComplianceRecordMissing"): _compliance_missing,
    event_topic(PETITION, "PetitionReceived"): _petition_received,
    event_topic(PHASE_REMINDER, "CampaignPhaseReminderIssued"): _phase_reminder,
    event_topic(MEETING, "MeetingScheduled"): _meeting_scheduled,
}
_BY_NAME = {type_of_topic(t): rule for t, rule in RULES.items()}


def notification_id(event_id: str, recipient: str, kind: str) -> str:
    return str(derive_id("notification", event_id, recipient, kind))


class NotificationsView(Projection):
    name = "notifications"
    version = 1
    topics = tuple(RULES)
    tables = (notifications, assignees, units_table)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        ctx = Context(conn, events)
        rows: list[dict[str, Any]] = []
        for e in events:
            for n in _BY_NAME[e.type](e, ctx):
                rows.append({
                    **n, "notification_id": notification_id(e.data["event_id"], n["recipient"], n["kind"]),
                    "position": e.position, "event_id": e.data["event_id"], "event_type": e.type,
                    "created_at": e.recorded_at,
                })
        ctx.flush()
        insert_ignore(conn, notifications, rows)
        if rows:
            _plan_deliveries(conn, rows)


def _plan_deliveries(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """One delivery record per (notification, configured channel); ON CONFLICT DO NOTHING keeps
    a rebuild from planning (and so sending) anything twice."""
    recipients = sorted({r["recipient"] for r in rows})
    configured: dict[str, list[tuple[str, str]]] = {}
    q = sa.select(channels.c.agency, channels.c.channel, channels.c.created_at).where(
        channels.c.agency.in_(recipients))
    for agency, channel, created_at in conn.execute(q):
        configured.setdefault(agency, []).append((channel, created_at))
    planned = []
    for r in rows:
        for channel, since in configured.get(r["recipient"], []):
            if r["created_at"] < since:
                continue  # configured later: never replay history to a new channel
            planned.append({
                "notification_id": r["notification_id"], "channel": channel, "agency": r["recipient"],
                "status": "pending", "attempts": 0, "next_attempt_at": r["created_at"],
                "created_at": r["created_at"], "payload": orjson.dumps(public_view(r)).decode(),
            })
    insert_ignore(conn, deliveries, planned)


def public_view(row: dict[str, Any]) -> dict[str, Any]:
    """What an inbox item and a webhook body carry."""
    return {
        "id": row["notification_id"], "agency": row["recipient"], "kind": row["kind"], "title": row["title"],
        "body": row["body"], "subject": {"type": row["subject_type"], "id": row["subject_id"]},
        "event_id": row["event_id"], "event_type": row["event_type"], "created_at": row["created_at"],
    }


# -- queries -------------------------------------------------------------------------------------


def inbox(
    conn: sa.Connection, agency: str, *, unread_only: bool = False, before: int | None = None, limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the position of the last item of the previous page."""
    q = (sa.select(notifications, reads.c.read_at)
         .select_from(notifications.outerjoin(reads, reads.c.notification_id == notifications.c.notification_id))
         .where(notifications.c.recipient == agency)
         .order_by(notifications.c.position.desc(), notifications.c.notification_id).limit(limit))
    if unread_only:
        q = q.where(reads.c.read_at.is_(None))
    if before is not None:
        q = q.where(notifications.c.position < before)
    return [dict(r) for r in conn.execute(q).mappings()]


def unread_count(conn: sa.Connection, agency: str) -> int:
    q = (sa.select(sa.func.count())
         .select_from(notifications.outerjoin(reads, reads.c.notification_id == notifications.c.notification_id))
         .where(notifications.c.recipient == agency, reads.c.read_at.is_(None)))
    return int(conn.execute(q).scalar_one())


def recipients_of(conn: sa.Connection, ids: Sequence[str]) -> dict[str, str]:
    q = sa.select(notifications.c.notification_id, notifications.c.recipient).where(
        notifications.c.notification_id.in_(list(ids)))
    return {r[0]: r[1] for r in conn.execute(q)}
