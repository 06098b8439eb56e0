"""Warning response (预警响应): every warning, every recipient (school or unit) with when it
acknowledged, the latency, and whether the warning was escalated.

The response rules (who may issue, hours before escalation and before an acknowledgement
counts as slow, per level) are data in contracts/catalogue/warning_escalation.yaml, read by
``contracts.escalation.WarningRules``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from events.stored import EARLY_WARNING, WARNING_ACKNOWLEDGEMENT, event_topic, event_topics
from projections.base import LoggedEvent, Projection, insert_ignore, metadata, utc_text

if TYPE_CHECKING:
    from contracts.escalation import WarningRules

LEVEL_NAMES = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
TYPE_NAMES = {"rainstorm": "暴雨", "gale": "大风", "lightning": "雷电", "heat": "高温", "cold": "寒潮",
              "heavy-pollution": "重污染天气", "other": "其他"}


warnings_table = sa.Table(
    "rm_warnings",
    metadata,
    sa.Column("warning_id", sa.String(36), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("issued_by", sa.String(64), nullable=False),
    sa.Column("warning_type", sa.String(20), nullable=False),
    sa.Column("level", sa.String(10), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("towns", sa.Text, nullable=False),  # JSON list
    sa.Column("measures", sa.Text, nullable=False),  # JSON list
    sa.Column("valid_from", sa.String(32), nullable=False),
    sa.Column("valid_until", sa.String(32), nullable=False),
    sa.Column("issued_at", sa.String(32), nullable=False),  # utc_text
    sa.Column("occurred_on", sa.String(10), nullable=False),
    sa.Column("recipients", sa.Integer, nullable=False),
    sa.Column("acknowledged", sa.Integer, nullable=False),
    sa.Column("escalation_event_id", sa.String(36), nullable=True),
    sa.Column("escalated_at", sa.String(32), nullable=True),
    sa.Index("ix_rm_warnings_day", "occurred_on"),
)

recipients_table = sa.Table(
    "rm_warning_recipients",
    metadata,
    sa.Column("warning_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(10), primary_key=True),  # school | unit
    sa.Column("recipient", sa.String(64), primary_key=True),
    sa.Column("level", sa.String(10), nullable=False),
    sa.Column("issued_at", sa.String(32), nullable=False),
    sa.Column("occurred_on", sa.String(10), nullable=False),
    sa.Column("acked_at", sa.String(32), nullable=True),
    sa.Column("latency_minutes", sa.Float, nullable=True),
    sa.Column("ack_event_id", sa.String(36), nullable=True),
    sa.Column("measures_taken", sa.Text, nullable=True),
    sa.Index("ix_rm_warning_recipients_who", "kind", "recipient"),
    sa.Index("ix_rm_warning_recipients_day", "occurred_on"),
)


def _utc(iso: str) -> str:
    return utc_text(datetime.fromisoformat(iso))


def _minutes(start_utc: str, end_utc: str) -> float:
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    delta = datetime.strptime(end_utc, fmt) - datetime.strptime(start_utc, fmt)
    return round(delta.total_seconds() / 60, 1)


class WarningResponseView(Projection):
    name = "warning_response"
    version = 1
    topics = (*event_topics(EARLY_WARNING, "WarningIssued", "WarningEscalated"),
              event_topic(WARNING_ACKNOWLEDGEMENT, "WarningAcknowledged"))
    tables = (warnings_table, recipients_table)

    def apply(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        """The batch is played against an in-memory copy of the rows it touches (read in one
        query per table), then written back once per row: the same rows the event-by-event
        policy writes, at a few statements per batch instead of several per event."""
        batch = _Batch(conn, events)
        for e in events:
            d = e.data
            if e.type == "WarningIssued":
                batch.issue(e, d)
            elif e.type == "WarningAcknowledged":
                batch.acknowledge(d)
            elif e.type == "WarningEscalated":
                batch.escalate(e.record_id, d["event_id"], e.recorded_at)
        batch.write()


_RecipientKey = tuple[str, str, str]  # warning id, kind, recipient


class _Batch:
    """Warnings and recipients a batch touches: those already stored (loaded up front) and
    those it issues, with what changed, so each row is written once."""

    def __init__(self, conn: sa.Connection, events: Sequence[LoggedEvent]) -> None:
        self.conn = conn
        ids: set[str] = set()
        for e in events:
            d = e.data
            ids.add(d["event_id"] if e.type == "WarningIssued" else
                    d["warning_id"] if e.type == "WarningAcknowledged" else e.record_id)
        self.stored_warnings: dict[str, dict[str, Any]] = {}
        self.stored_recipients: dict[_RecipientKey, dict[str, Any]] = {}
        w, r = warnings_table.c, recipients_table.c
        for chunk in _chunks(sorted(ids)):
            for (wid,) in conn.execute(sa.select(w.warning_id).where(w.warning_id.in_(chunk))):
                self.stored_warnings[wid] = {"acknowledged": 0, "escalation": None}
            stored = (sa.select(r.warning_id, r.kind, r.recipient, r.issued_at, r.acked_at)
                      .where(r.warning_id.in_(chunk)))
            for wid, kind, who, issued, acked in conn.execute(stored):
                self.stored_recipients[(wid, kind, who)] = {"issued_at": issued, "acked": acked is not None,
                                                            "ack": None}
        self.new_warnings: dict[str, dict[str, Any]] = {}
        self.new_recipients: dict[_RecipientKey, dict[str, Any]] = {}

    def issue(self, e: LoggedEvent, d: dict[str, Any]) -> None:
        wid = d["event_id"]
        issued = _utc(d["issued_at"])
        who = [("school", s) for s in d["school_ids"]] + [("unit", u) for u in d["units"]]
        if wid not in self.stored_warnings and wid not in self.new_warnings:  # INSERT ... DO NOTHING
            self.new_warnings[wid] = {
                "warning_id": wid, "position": e.position, "issued_by": d["agency"],
                "warning_type": d["warning_type"], "level": d["level"], "title": d["title"],
                "towns": orjson.dumps(d["towns"]).decode(), "measures": orjson.dumps(d["measures"]).decode(),
                "valid_from": d["valid_from"], "valid_until": d["valid_until"], "issued_at": issued,
                "occurred_on": d["occurred_on"], "recipients": len(who), "acknowledged": 0,
                "escalation_event_id": None, "escalated_at": None,
            }
        for kind, recipient in who:
            key = (wid, kind, recipient)
            if key not in self.stored_recipients and key not in self.new_recipients:
                self.new_recipients[key] = {
                    "warning_id": wid, "kind": kind, "recipient": recipient, "level": d["level"],
                    "issued_at": issued, "occurred_on": d["occurred_on"], "acked_at": None,
                    "latency_minutes": None, "ack_event_id": None, "measures_taken": None,
                }

    def acknowledge(self, d: dict[str, Any]) -> None:
        key = (d["warning_id"], d["recipient_kind"], d["recipient"])
        acked = _utc(d["acknowledged_at"])
        new = self.new_recipients.get(key)
        if new is not None:
            if new["acked_at"] is not None:
                return  # already applied
            target = new
            sent = new["issued_at"]
        else:
            stored = self.stored_recipients.get(key)
            if stored is None or stored["acked"]:
                return  # unknown recipient or already applied
            stored["acked"] = True
            target = stored["ack"] = {}
            sent = stored["issued_at"]
        target.update(acked_at=acked, latency_minutes=_minutes(str(sent), acked), ack_event_id=d["event_id"],
                      measures_taken=orjson.dumps(d["measures_taken"]).decode())
        warning = self.new_warnings.get(d["warning_id"]) or self.stored_warnings.get(d["warning_id"])
        if warning is not None:
            warning["acknowledged"] += 1

    def escalate(self, wid: str, event_id: str, at: str) -> None:
        warning = self.new_warnings.get(wid) or self.stored_warnings.get(wid)
        if warning is None:
            return  # UPDATE of no row
        if wid in self.new_warnings:
            warning.update(escalation_event_id=event_id, escalated_at=at)
        else:
            warning["escalation"] = (event_id, at)

    def write(self) -> None:
        conn = self.conn
        insert_ignore(conn, warnings_table, list(self.new_warnings.values()))
        insert_ignore(conn, recipients_table, list(self.new_recipients.values()))
        r, w = recipients_table.c, warnings_table.c
        acks = [{"k_w": k[0], "k_k": k[1], "k_r": k[2], **v["ack"]}
                for k, v in self.stored_recipients.items() if v["ack"] is not None]
        if acks:
            conn.execute(recipients_table.update().where(
                r.warning_id == sa.bindparam("k_w"), r.kind == sa.bindparam("k_k"),
                r.recipient == sa.bindparam("k_r")), acks)
        counts = [{"k_w": wid, "n": v["acknowledged"]} for wid, v in self.stored_warnings.items() if v["acknowledged"]]
        if counts:
            conn.execute(warnings_table.update().where(w.warning_id == sa.bindparam("k_w"))
                         .values(acknowledged=w.acknowledged + sa.bindparam("n")), counts)
        escalations = [{"k_w": wid, "e": v["escalation"][0], "at": v["escalation"][1]}
                       for wid, v in self.stored_warnings.items() if v["escalation"] is not None]
        if escalations:
            conn.execute(warnings_table.update().where(w.warning_id == sa.bindparam("k_w")).values(
                escalation_event_id=sa.bindparam("e"), escalated_at=sa.bindparam("at")), escalations)


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


# -- queries -------------------------------------------------------------------------------


def _default_rules() -> WarningRules:
    # Imported when a query first needs the rules: applying events never does, and the rules'
    # models (and the warning aggregate they import) were part of a rebuild's start-up.
    from contracts.escalation import default_warning_rules

    return default_warning_rules()


def _is_slow(level: str, latency_minutes: float | None, rules: WarningRules) -> bool:
    return latency_minutes is not None and latency_minutes > rules.levels[level].slow_after_hours * 60


def response_by_recipient(
    conn: sa.Connection, kind: str, start: str, end: str, rules: WarningRules | None = None,
) -> list[dict[str, Any]]:
    """Per school (kind='school') or unit (kind='unit'), warnings issued between ``start``
    and ``end`` (ISO days, inclusive): received, acknowledged, rate, median and worst
    latency in minutes, slow acknowledgements."""
    rules = rules or _default_rules()
    r = recipients_table.c
    q = (sa.select(r.recipient, r.level, r.latency_minutes)
         .where(r.kind == kind, r.occurred_on >= start, r.occurred_on <= end)
         .order_by(r.recipient))
    acc: dict[str, dict[str, Any]] = {}
    for who, level, latency in conn.execute(q):
        row = acc.setdefault(who, {"recipient": who, "received": 0, "acknowledged": 0, "slow": 0, "_lat": []})
        row["received"] += 1
        if latency is not None:
            row["acknowledged"] += 1
            row["_lat"].append(float(latency))
            row["slow"] += int(_is_slow(level, latency, rules))
    out = []
    for row in acc.values():
        lat = row.pop("_lat")
        row["rate"] = round(row["acknowledged"] / row["received"], 4) if row["received"] else None
        row["median_latency_minutes"] = round(statistics.median(lat), 1) if lat else None
        row["max_latency_minutes"] = max(lat) if lat else None
        out.append(row)
    return out


def warnings_between(
    conn: sa.Connection, start: str, end: str, rules: WarningRules | None = None,
) -> list[dict[str, Any]]:
    """Warnings issued between two ISO days with their response figures and event ids."""
    rules = rules or _default_rules()
    w = warnings_table.c
    rows = [dict(m) for m in conn.execute(
        sa.select(warnings_table).where(w.occurred_on >= start, w.occurred_on <= end)
        .order_by(w.issued_at, w.warning_id)).mappings()]
    if not rows:
        return []
    r = recipients_table.c
    detail: dict[str, dict[str, Any]] = {x["warning_id"]: {"unacked": [], "slow": [], "lat": [], "acks": []}
                                         for x in rows}
    q = (sa.select(r.warning_id, r.kind, r.recipient, r.level, r.latency_minutes, r.ack_event_id)
         .where(r.occurred_on >= start, r.occurred_on <= end))
    for wid, kind, who, level, latency, ack_id in conn.execute(q):
        dd = detail.get(wid)
        if dd is None:
            continue
        if latency is None:
            dd["unacked"].append({"kind": kind, "recipient": who})
        else:
            dd["lat"].append(float(latency))
            if _is_slow(level, latency, rules):
                dd["slow"].append({"kind": kind, "recipient": who, "latency_minutes": latency,
                                   "event_id": ack_id})
    out = []
    for x in rows:
        dd = detail[x["warning_id"]]
        out.append({
            "warning_id": x["warning_id"], "issued_by": x["issued_by"], "warning_type": x["warning_type"],
            "type_name": TYPE_NAMES.get(x["warning_type"], x["warning_type"]), "level": x["level"],
            "level_name": LEVEL_NAMES.get(x["level"], x["level"]), "title": x["title"],
            "towns": orjson.loads(x["towns"]), "measures": orjson.loads(x["measures"]),
            "issued_at": x["issued_at"], "occurred_on": x["occurred_on"], "recipients": x["recipients"],
            "acknowledged": x["acknowledged"],
            "rate": round(x["acknowledged"] / x["recipients"], 4) if x["recipients"] else None,
            "median_latency_minutes": round(statistics.median(dd["lat"]), 1) if dd["lat"] else None,
            "unacknowledged": sorted(dd["unacked"], key=lambda u: (u["kind"], u["recipient"])),
            "slow": sorted(dd["slow"], key=lambda u: (u["kind"], u["recipient"])),
            "escalated": x["escalation_event_id"] is not None,
            "event_ids": [x["warning_id"]] + ([x["escalation_event_id"]] if x["escalation_event_id"] else []),
        })
    return out


def due_for_escalation(
    conn: sa.Connection, now: datetime, rules: WarningRules | None = None,
) -> list[dict[str, Any]]:
    """Warnings not yet escalated whose escalation time has passed while some recipient has
    still not acknowledged, with those recipients."""
    rules = rules or _default_rules()
    w = warnings_table.c
    now_text = utc_text(now)
    candidates = conn.execute(
        sa.select(w.warning_id, w.level, w.issued_at)
        .where(w.escalation_event_id.is_(None), w.acknowledged < w.recipients, w.issued_at <= now_text)
    ).all()
    out = []
    r = recipients_table.c
    for wid, level, issued in candidates:
        issued_dt = datetime.strptime(issued, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        if issued_dt + rules.escalate_after(level) > now:
            continue
        pending = conn.execute(sa.select(r.kind, r.recipient).where(r.warning_id == wid, r.acked_at.is_(None))
                               .order_by(r.kind, r.recipient)).all()
        out.append({
            "warning_id": wid, "level": level,
            "schools": [p for k, p in pending if k == "school"],
            "units": [p for k, p in pending if k == "unit"],
        })
    return out


def recipient_status(conn: sa.Connection, warning_id: str) -> list[dict[str, Any]]:
    r = recipients_table.c
    rows = conn.execute(sa.select(recipients_table).where(r.warning_id == warning_id)
                        .order_by(r.kind, r.recipient)).mappings()
    return [dict(x) for x in rows]


def get_warning(conn: sa.Connection, warning_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(warnings_table).where(warnings_table.c.warning_id == warning_id)).mappings().first()
    return None if row is None else dict(row)
