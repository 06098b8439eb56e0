"""The cross-unit attack matrix, generated from the route table (``app.routes``).

Every route × every role — the liaison of the unit that owns the target (``owner``), a liaison
of another unit (``other``), the lead bureau (``lead``), an auditor, no token (``anon``) and
a forged token (``forged``) — aimed at a resource owned by the ``owner`` unit.

REGISTRY says, for each route, which roles may succeed and how to build a request that
would succeed (a *probe*: the right ids, a valid body, a resource in the right state).
Expected: no role outside ``allowed`` gets a 2xx, and at least one role inside it does (so
the probe is valid and the refusals mean something). A route missing from REGISTRY fails
``test_every_route_is_in_the_registry``; the universal checks (no token and forged tokens
get no 2xx, auditors never write) run on every route found at run time, listed or not.
"""

from __future__ import annotations

import io
import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import openpyxl
import pytest
from fastapi.routing import iter_route_contexts

from tests.conftest import FIXED_NOW, Api, register_schools
from tests.evidence_fixtures import photo_with_gps

OWNER, OTHER, LEAD_UNIT = "fire-rescue", "public-security", "education"
ROLES = ("anon", "forged", "auditor", "other", "owner", "lead")
AUTH = frozenset({"other", "owner", "lead", "auditor"})  # any valid credential
EVERYONE = AUTH | {"anon", "forged"}
WRITERS = frozenset({"other", "owner", "lead"})
ALL_READERS = frozenset({"lead", "auditor"})
OWN_READERS = frozenset({"owner", "lead", "auditor"})
DOC_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


@dataclass
class Req:
    path: str
    json: Any = None
    data: dict[str, str] | None = None  # a web form (the session's CSRF token is added)
    content: bytes | None = None  # a raw body (a spreadsheet upload)
    files: dict[str, tuple[str, bytes, str]] | None = None  # a page's file upload (multipart)
    headers: dict[str, str] = field(default_factory=dict)


class World:
    """A county with resources owned by ``OWNER`` in every state a probe needs."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.c = api.client
        self.seq = itertools.count(1)
        self.appealed: set[tuple[str, str]] = set()
        self.checked = itertools.count(1)  # schools T008, T007, ... self-check in turn
        self.templates = iter(["food-safety", "school-bus", "drowning-prevention", "anti-bullying", "surroundings"])
        register_schools(api, 8)
        # A year with a duty record and schools: the annual review has something to rank.
        self.ok("POST", "/api/v1/duty-logs", {"duty_code": "fire-rescue.inspection", "school_ids": ["T001"],
                                               "occurred_on": "2025-06-01", "summary": "消防安全检查"}, self.h(OWNER))
        self.ids: dict[str, str] = {"code": OWNER, "unit": OWNER, "year": "2025", "channel": "webhook",
                                    "fmt": "html"}
        self.sessions: dict[tuple[str, str], tuple[str, str]] = {}
        self.ids["item_id"] = self.rectification("assigned")
        self.ids["campaign_id"] = self.campaign()
        self.ids["warning_id"] = self.warning()
        self.ids["meeting_id"] = self.held_meeting()
        self.ids["task_id"] = self.task()
        self.ids["petition_id"] = self.petition(handling=OWNER)
        self.ids["recognition_id"] = self.recognition()
        self.ids["digest"] = self.evidence()
        api.settle()
        self.ids["notification_id"] = self.notification()

    # -- helpers -------------------------------------------------------------------------------

    def h(self, agency: str, role: str = "liaison") -> dict[str, str]:
        return self.api.as_(agency, role)

    def ok(self, method: str, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
        r = self.c.request(method, path, json=body, headers=headers)
        assert r.status_code in (200, 201), f"world setup {method} {path}: {r.status_code} {r.text}"
        out: Any = r.json()
        return out if isinstance(out, dict) else {"items": out}

    def fill(self, template: str, **over: str) -> str:
        ids = {**self.ids, **over}
        return template.format(**{k: ids[k] for k in _params(template)})

    # -- resources -----------------------------------------------------------------------------

    def rectification(self, state: str) -> str:
        """A hazard at T001; from ``assigned`` on, OWNER alone is responsible."""
        item = self.ok("POST", "/api/v1/hazards", {
            "reported_by": {"kind": "unit"}, "school_id": "T001", "category": "fire", "severity": "major",
            "description": f"疏散通道堆放杂物 #{next(self.seq)}", "found_on": "2025-06-28"}, self.h(OWNER))["id"]
        if state == "reported":
            return str(item)
        self.ok("POST", f"/api/v1/rectifications/{item}/assignment", {
            "lead_unit": OWNER, "cooperating_units": [], "deadline": "2025-07-20", "measures": ["清理疏散通道"],
            "funds": {"amount_cny": "100", "source": "学校公用经费"}}, self.h(LEAD_UNIT, "lead"))
        if state == "completed":
            self.ok("POST", f"/api/v1/rectifications/{item}/completion",
                    {"summary": "整改完毕", "evidence": ["sha256:0f3a"]}, self.h(OWNER))
        if state == "extension-requested":
            self.ok("POST", f"/api/v1/rectifications/{item}/extension-request",
                    {"reason": "设备采购中", "new_deadline": "2025-08-10"}, self.h(OWNER))
        return str(item)

    def template(self) -> str:
        """A campaign template not launched yet this year."""
        return next(self.templates)

    def campaign(self) -> str:
        with _clock_at(self.api, datetime(2025, 3, 22, 1, tzinfo=UTC)):
            cid = self.ok("POST", "/api/v1/campaigns", {"year": 2025, "template": "fire-safety"},
                          self.h(LEAD_UNIT, "lead"))["id"]
        return str(cid)

    def warning(self) -> str:
        return str(self.ok("POST", "/api/v1/warnings", {
            "warning_type": "gale", "level": "blue", "title": "大风蓝色预警", "towns": ["满都拉图镇"],
            "valid_from": "2025-06-30T10:00:00+08:00", "valid_until": "2025-07-01T10:00:00+08:00",
            "measures": ["加固设施"], "units": [OWNER]}, self.h("meteorology"))["id"])

    def meeting(self, scheduled_for: str, at: datetime) -> str:
        with _clock_at(self.api, at):
            return str(self.ok("POST", "/api/v1/meetings", {"scheduled_for": scheduled_for, "place": "会议室"},
                               self.h(LEAD_UNIT, "lead"))["id"])

    def held_meeting(self) -> str:
        mid = self.meeting("2025-06-20", datetime(2025, 6, 1, 2, tzinfo=UTC))
        with _clock_at(self.api, datetime(2025, 6, 20, 2, tzinfo=UTC)):
            self.ok("POST", f"/api/v1/meetings/{mid}/held", {
                "held_on": "2025-06-20", "attendance": [LEAD_UNIT, OWNER], "minutes": "会议纪要"},
                self.h(LEAD_UNIT, "lead"))
        return mid

    def task(self, state: str = "assigned") -> str:
        """A task of a resolution, OWNER alone responsible."""
        out = self.ok("POST", f"/api/v1/meetings/{self.ids['meeting_id']}/resolutions", {
            "text": f"消防救援局牵头整改 #{next(self.seq)}",
            "tasks": [{"unit": OWNER, "cooperating_units": [], "description": "消防通道整治",
                       "deadline": "2025-07-20"}]}, self.h(LEAD_UNIT, "lead"))
        task = str(out["related"][0])
        if state == "completed":
            self.ok("POST", f"/api/v1/tasks/{task}/completion", {"summary": "已完成"}, self.h(OWNER))
        return task

    def petition(self, *, handling: str, answered: bool = False) -> str:
        pid = str(self.ok("POST", "/api/v1/petitions", {
            "reference": f"XF2025-{next(self.seq):04d}", "channel": "letter", "topic": "canteen", "school_id": "T001",
            "summary": "反映学校食堂饭菜价格偏高", "handling_unit": handling, "received_on": "2025-06-01"},
            self.h("petitions"))["id"])
        if answered:
            self.ok("POST", f"/api/v1/petitions/{pid}/answer", {"answered_on": "2025-06-10", "answer": "已处理"},
                    self.h(handling))
        return pid

    def recognition(self) -> str:
        day = f"2025-05-{next(self.seq) % 28 + 1:02d}"  # (school, kind, level, day) names a recognition
        return str(self.ok("POST", "/api/v1/recognitions", {
            "school_id": "T001", "kind": "green-school", "level": "city", "awarded_on": day,
            "awarding_body": "市教育局"}, self.h(LEAD_UNIT, "lead"))["id"])

    def evidence(self) -> str:
        """A photo OWNER uploaded and attached to its own hazard report."""
        r = self.c.post("/api/v1/evidence", headers=self.h(OWNER),
                        files=[("files", ("现场.jpg", photo_with_gps(), "image/jpeg"))])
        assert r.status_code == 201, r.text
        ref = r.json()["files"][0]
        self.ok("POST", "/api/v1/hazards", {
            "reported_by": {"kind": "unit"}, "school_id": "T001", "category": "fire", "severity": "major",
            "description": "配电箱线路裸露", "found_on": "2025-06-28", "evidence": [ref["ref"]]}, self.h(OWNER))
        return str(ref["digest"])

    def notification(self) -> str:
        """An unread notification of OWNER's (a fresh rectification assignment makes one)."""
        self.rectification("assigned")
        self.api.settle()
        items = self.ok("GET", "/api/v1/inbox?unread=true", None, self.h(OWNER))["items"]
        assert items, "OWNER has no notification to aim at"
        return str(items[0]["id"])

    def deduction(self) -> dict[str, str]:
        """A deduction in OWNER's review not yet appealed (each may be appealed once)."""
        r = self.c.get(f"/api/v1/reviews/2025/units/{OWNER}", headers=self.h(OWNER))
        assert r.status_code == 200, r.text
        for clause in r.json()["unit"]["clauses"]:
            for item in clause["items"] if clause.get("kind") == "deduction" else []:
                key = (str(clause["clause"]), str(item["item"]))
                if item["points"] > 0 and key not in self.appealed:
                    self.appealed.add(key)
                    return {"clause": key[0], "item": key[1]}
        raise AssertionError("OWNER's review has no deduction left to appeal")

    def appeal(self) -> str:
        r = self.c.post(f"/api/v1/reviews/2025/units/{OWNER}/appeals", headers=self.h(OWNER),
                        json={**self.deduction(), "reason": "已按期完成，记录延迟"})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


class _clock_at:
    def __init__(self, api: Api, moment: datetime) -> None:
        self.api, self.moment = api, moment

    def __enter__(self) -> None:
        self.saved = self.api.platform.clock
        self.api.platform.clock = lambda: self.moment

    def __exit__(self, *exc: object) -> None:
        self.api.platform.clock = self.saved


def _params(template: str) -> list[str]:
    return [p.split("}")[0] for p in template.split("{")[1:]]


Probe = Callable[[World, str], Req]


@dataclass(frozen=True)
class Rule:
    """``allowed``: roles that may get a 2xx with the probe. ``probe(world, path)`` builds the
    request (default: the path with the world's ids, no body). ``owner``: the unit whose
    liaison plays the ``owner`` role for this route."""

    allowed: frozenset[str]
    probe: Probe | None = None
    owner: str = OWNER
    why: str = ""
    control: bool = True  # False: no role is expected to succeed with this probe (see ``why``)


def body(payload: Any, **ids: Callable[[World], str]) -> Probe:
    """A probe with a fixed body and some path ids made fresh for it."""

    def probe(world: World, path: str) -> Req:
        fresh = {k: make(world) for k, make in ids.items()}
        return Req(world.fill(path, **fresh), json=payload(world) if callable(payload) else payload)

    return probe


def fresh_school(world: World, path: str) -> Req:
    n = next(world.seq)
    return Req(path, json={"id": f"M{n:03d}", "name": f"矩阵学校{n}", "town": "满都拉图镇", "kind": "primary"})


def duty_log(world: World, path: str) -> Req:
    return Req(path, json={"duty_code": "fire-rescue.inspection", "school_ids": ["T001"], "occurred_on": "2025-06-01",
                           "summary": "消防安全检查"})


def duty_sheet(world: World, path: str) -> Req:
    """OWNER's template with one row of OWNER's first duty at a registered school."""
    template = world.c.get("/api/v1/duty-logs/template", headers=credentials(world, "owner", OWNER))
    wb = openpyxl.load_workbook(io.BytesIO(template.content))
    duty, school = wb["选项"].cell(2, 1).value, wb["选项"].cell(2, 2).value
    wb.worksheets[0].append([duty, date(2025, 6, 1), school, "消防安全检查", 0, None])
    out = io.BytesIO()
    wb.save(out)
    return Req(path, content=out.getvalue())


def _sheet(world: World, template_path: str, row: list[Any]) -> bytes:
    template = world.c.get(template_path, headers=credentials(world, "lead", LEAD_UNIT))
    wb = openpyxl.load_workbook(io.BytesIO(template.content))
    wb.worksheets[0].append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def hazard_sheet(world: World, path: str) -> Req:
    """One hazard at a registered school; any writer reports in its own name."""
    wb = openpyxl.load_workbook(io.BytesIO(world.c.get("/api/v1/hazards/template",
                                                       headers=credentials(world, "lead", LEAD_UNIT)).content))
    school = wb["选项"].cell(2, 1).value
    return Req(path, content=_sheet(world, "/api/v1/hazards/template",
                                    [school, "消防安全", "一般", f"灭火器过期{next(world.seq)}", date(2025, 6, 1)]))


def school_sheet(world: World, path: str) -> Req:
    n = next(world.seq)
    return Req(path, content=_sheet(world, "/api/v1/schools/template",
                                    [f"M{n:03d}", f"矩阵学校{n}", "满都拉图镇", "小学", "否", "是", "否"]))


def web_duty_sheet(world: World, path: str) -> Req:
    """OWNER's filled template sent from the upload page (multipart)."""
    sheet = duty_sheet(world, path)
    assert sheet.content is not None
    return Req(world.fill(path), data={}, files={"file": ("台账.xlsx", sheet.content, "application/octet-stream")})


def evidence_upload(world: World, path: str) -> Req:
    return Req(path, files={"files": (f"p{next(world.seq)}.jpg", photo_with_gps(), "image/jpeg")})


def new_meeting(world: World, path: str) -> Req:
    return Req(path, json={"scheduled_for": "2025-07-25", "place": "会议室"})


def meeting_to_hold(world: World, path: str) -> Req:
    mid = world.meeting("2025-06-25", datetime(2025, 6, 2, 2, tzinfo=UTC))
    return Req(world.fill(path, meeting_id=mid),
               json={"held_on": "2025-06-25", "attendance": [LEAD_UNIT], "minutes": "纪要"})


def appeal_probe(world: World, path: str) -> Req:
    return Req(world.fill(path), json={**world.deduction(), "reason": "已按期完成，记录延迟"})


def decision_probe(world: World, path: str) -> Req:
    return Req(world.fill(path, appeal_id=world.appeal()), json={"upheld": False, "reason": "扣分依据充分"})


def with_owner_webhook(world: World, path: str) -> Req:
    world.ok("PUT", "/api/v1/inbox/channels/webhook", {"url": "https://hooks.example.com/owner"}, world.h(OWNER))
    return Req(world.fill(path))


def with_owner_sms(world: World, path: str) -> Req:
    """OWNER has an SMS channel (the logging gateway: nothing leaves the machine)."""
    world.ok("PUT", "/api/v1/inbox/channels/sms", {"phones": ["13800138001"]}, world.h(OWNER))
    return Req(world.fill(path, channel="sms"), data={} if not is_api(path) else None)


TODAY = FIXED_NOW.date().isoformat()

# Every route of the API. Keys are "METHOD path" as in the route table.
REGISTRY: dict[str, Rule] = {
    # health and catalogue
    "GET /healthz": Rule(EVERYONE),
    "GET /readyz": Rule(EVERYONE),
    "GET /api/v1/agencies": Rule(AUTH),
    "GET /api/v1/agencies/{code}": Rule(AUTH),
    "GET /api/v1/agencies/{code}/ledger": Rule(OWN_READERS),
    "GET /api/v1/schools": Rule(AUTH),
    "POST /api/v1/schools": Rule(frozenset({"lead"}), fresh_school),
    "POST /api/v1/duty-logs": Rule(frozenset({"owner"}), duty_log, why="a duty of OWNER's; others' duties differ"),
    "GET /api/v1/duty-logs/template": Rule(WRITERS, why="each writer gets its own unit's template"),
    "POST /api/v1/duty-logs/import": Rule(frozenset({"owner"}), duty_sheet,
                                          why="OWNER's template; other units' duties differ (per-row 422)"),
    "GET /api/v1/hazards/template": Rule(WRITERS),
    "POST /api/v1/hazards/import": Rule(WRITERS, hazard_sheet, why="each writer reports in its own name"),
    "GET /api/v1/schools/template": Rule(frozenset({"lead"})),
    "POST /api/v1/schools/import": Rule(frozenset({"lead"}), school_sheet),
    "GET /api/v1/events": Rule(ALL_READERS),
    "POST /api/v1/evidence": Rule(WRITERS, evidence_upload, why="each writer uploads for its own unit"),
    "GET /api/v1/evidence/{digest}": Rule(OWN_READERS, why="the evidence of OWNER's hazard report"),
    "GET /api/v1/evidence/{digest}/thumbnail": Rule(OWN_READERS),
    "GET /api/v1/audit": Rule(frozenset({"auditor"})),
    # hazards and rectifications: the lead assigns, verifies, rejects, extends, refuses extension
    # requests; the responsible unit reports progress and completion and requests extensions;
    # the board is the county's.
    "POST /api/v1/hazards": Rule(WRITERS, body({
        "reported_by": {"kind": "unit"}, "school_id": "T002", "category": "fire", "severity": "general",
        "description": "灭火器过期", "found_on": "2025-06-29"}), why="each writer reports in its own name"),
    "POST /api/v1/rectifications/{item_id}/assignment": Rule(frozenset({"lead"}), body({
        "lead_unit": OWNER, "deadline": "2025-07-20", "measures": ["更换灭火器"],
        "funds": {"amount_cny": "10", "source": "公用经费"}}, item_id=lambda w: w.rectification("reported"))),
    "POST /api/v1/rectifications/{item_id}/progress": Rule(frozenset({"owner"}), body(
        {"note": "已清理", "percent": 50}, item_id=lambda w: w.rectification("assigned"))),
    "POST /api/v1/rectifications/{item_id}/completion": Rule(frozenset({"owner"}), body(
        {"summary": "整改完毕", "evidence": ["sha256:01"]}, item_id=lambda w: w.rectification("assigned"))),
    "POST /api/v1/rectifications/{item_id}/verification": Rule(frozenset({"lead"}), body(
        {"note": "合格"}, item_id=lambda w: w.rectification("completed"))),
    "POST /api/v1/rectifications/{item_id}/rejection": Rule(frozenset({"lead"}), body(
        {"reason": "回头看未通过", "new_deadline": "2025-07-31"}, item_id=lambda w: w.rectification("completed"))),
    "POST /api/v1/rectifications/{item_id}/extension": Rule(frozenset({"lead"}), body(
        {"reason": "设备采购中", "new_deadline": "2025-08-10"}, item_id=lambda w: w.rectification("assigned"))),
    "POST /api/v1/rectifications/{item_id}/extension-request": Rule(frozenset({"owner"}), body(
        {"reason": "设备采购中", "new_deadline": "2025-08-10"}, item_id=lambda w: w.rectification("assigned")),
        why="only a responsible unit asks (the lead bureau extends directly)"),
    "POST /api/v1/rectifications/{item_id}/extension-refusal": Rule(frozenset({"lead"}), body(
        {"reason": "工期充足"}, item_id=lambda w: w.rectification("extension-requested"))),
    "GET /api/v1/rectifications": Rule(AUTH, why="the county's rectification board is open to every unit"),
    "GET /api/v1/rectifications/{item_id}": Rule(AUTH, why="the county's rectification board is open to every unit"),
    # campaigns: the lead launches; schools self-check through the education bureau's
    # credentials; joint inspections by the caller's unit with others.
    "POST /api/v1/campaigns": Rule(frozenset({"lead"}), body(lambda w: {"year": 2025, "template": w.template()})),
    "POST /api/v1/campaigns/{campaign_id}/self-checks": Rule(frozenset({"owner", "lead"}), body(
        lambda w: {"school_id": f"T{9 - next(w.checked):03d}", "occurred_on": TODAY, "results": _passing()}),
        owner=LEAD_UNIT),
    "POST /api/v1/campaigns/{campaign_id}/joint-inspections": Rule(WRITERS, body(
        {"units": [LEAD_UNIT], "school_ids": ["T001"], "occurred_on": TODAY, "summary": "联合督查"}),
        why="an inspection in the caller's own name"),
    "GET /api/v1/campaigns": Rule(AUTH),
    "GET /api/v1/campaigns/{campaign_id}": Rule(AUTH),
    "GET /api/v1/campaigns/{campaign_id}/matrix": Rule(AUTH),
    # warnings: the meteorology bureau issues; each recipient acknowledges its own.
    "POST /api/v1/warnings": Rule(frozenset({"owner"}), body({
        "warning_type": "rainstorm", "level": "yellow", "title": "暴雨黄色预警", "towns": ["满都拉图镇"],
        "valid_from": "2025-06-30T12:00:00+08:00", "valid_until": "2025-07-01T12:00:00+08:00",
        "measures": ["停止户外活动"]}), owner="meteorology"),
    "POST /api/v1/warnings/{warning_id}/acknowledgements": Rule(frozenset({"owner"}), body(
        {"measures_taken": ["已加固设施"]}, warning_id=lambda w: w.warning()), why="the warning went to OWNER only"),
    "GET /api/v1/warnings": Rule(AUTH),
    "GET /api/v1/warnings/{warning_id}": Rule(AUTH),
    "GET /api/v1/warning-response": Rule(AUTH, why="a liaison sees only its own unit's row"),
    # meetings and tasks
    "POST /api/v1/meetings": Rule(frozenset({"lead"}), new_meeting),
    "GET /api/v1/meetings": Rule(AUTH),
    "GET /api/v1/meetings/{meeting_id}": Rule(AUTH),
    "GET /api/v1/meetings/{meeting_id}/agenda": Rule(AUTH),
    "POST /api/v1/meetings/{meeting_id}/agenda-items": Rule(WRITERS, body(
        {"title": "周边交通"}, meeting_id=lambda w: w.meeting("2025-07-28", FIXED_NOW)),
        why="any unit proposes items in its own name"),
    "POST /api/v1/meetings/{meeting_id}/held": Rule(frozenset({"lead"}), meeting_to_hold),
    "POST /api/v1/meetings/{meeting_id}/resolutions": Rule(frozenset({"lead"}), body({"text": "决议"})),
    "GET /api/v1/meetings/{meeting_id}/brief": Rule(ALL_READERS),
    "GET /api/v1/tasks": Rule(AUTH),
    "GET /api/v1/tasks/{task_id}": Rule(AUTH),
    "POST /api/v1/tasks/{task_id}/progress": Rule(frozenset({"owner"}), body(
        {"note": "已部署", "percent": 50}, task_id=lambda w: w.task())),
    "POST /api/v1/tasks/{task_id}/completion": Rule(frozenset({"owner"}), body(
        {"summary": "已完成"}, task_id=lambda w: w.task())),
    "POST /api/v1/tasks/{task_id}/verification": Rule(frozenset({"lead"}), body(
        {"note": "合格"}, task_id=lambda w: w.task("completed"))),
    "POST /api/v1/tasks/{task_id}/rejection": Rule(frozenset({"lead"}), body(
        {"reason": "未达标", "new_deadline": "2025-08-01"}, task_id=lambda w: w.task("completed"))),
    "POST /api/v1/tasks/{task_id}/extension": Rule(frozenset({"lead"}), body(
        {"reason": "延期", "new_deadline": "2025-08-01"}, task_id=lambda w: w.task())),
    # school logistics
    "GET /api/v1/targets": Rule(AUTH),
    "POST /api/v1/targets": Rule(frozenset({"lead"}), body({"code": "green-school-share", "year": 2025})),
    "POST /api/v1/targets/from-catalogue": Rule(frozenset({"lead"}), body({"year": 2025})),
    "GET /api/v1/recognitions": Rule(AUTH),
    "POST /api/v1/recognitions": Rule(frozenset({"lead"}), body(
        {"school_id": "T002", "kind": "green-school", "level": "county", "awarded_on": "2025-05-02"})),
    "POST /api/v1/recognitions/{recognition_id}/withdraw": Rule(frozenset({"lead"}), body(
        {"withdrawn_on": "2025-06-20", "reason": "复审未通过"}, recognition_id=lambda w: w.recognition())),
    "GET /api/v1/compliance/calendar": Rule(AUTH),
    "GET /api/v1/compliance": Rule(AUTH, why="a liaison sees only the kinds it logs or answers for"),
    "POST /api/v1/compliance-records": Rule(frozenset({"owner", "lead"}), body(
        {"school_id": "T001", "kind": "micro-fire-station", "period": "2025", "occurred_on": "2025-06-01",
         "evidence": ["sha256:ff"]}), why="a kind OWNER logs"),
    "GET /api/v1/petitions": Rule(AUTH, why="a liaison sees only its own unit's petitions"),
    "GET /api/v1/petitions/rates": Rule(AUTH),
    "GET /api/v1/petitions/{petition_id}": Rule(OWN_READERS, why="OWNER handles it; the receiving unit is petitions"),
    "POST /api/v1/petitions": Rule(frozenset({"owner", "lead"}), body(lambda w: {
        "reference": f"XF2025-9{next(w.seq):03d}", "channel": "visit", "topic": "dormitory", "summary": "宿舍热水不足",
        "handling_unit": LEAD_UNIT, "received_on": "2025-06-01"}), owner="petitions",
        why="the petitions bureau and the lead bureau register petitions"),
    "POST /api/v1/petitions/{petition_id}/answer": Rule(frozenset({"owner", "lead"}), body(
        {"answered_on": "2025-06-10", "answer": "已处理"}, petition_id=lambda w: w.petition(handling=OWNER)),
        why="the handling unit answers; the lead bureau may act for it"),
    "POST /api/v1/petitions/{petition_id}/close": Rule(frozenset({"owner", "lead"}), body(
        {"closed_on": "2025-06-11", "satisfaction": "satisfied"},
        petition_id=lambda w: w.petition(handling=OWNER, answered=True)), owner="petitions",
        why="the receiving unit closes; the lead bureau may act for it"),
    # each unit's inbox: a unit reads and marks only its own notifications
    "GET /api/v1/inbox": Rule(AUTH, why="each caller sees its own unit's inbox"),
    "POST /api/v1/inbox/read": Rule(frozenset({"owner"}), body(lambda w: {"ids": [w.notification()]})),
    "POST /api/v1/inbox/{notification_id}/read": Rule(frozenset({"owner"}), body(
        {}, notification_id=lambda w: w.notification())),
    "GET /api/v1/inbox/channels": Rule(AUTH, why="each caller sees its own unit's channels"),
    "PUT /api/v1/inbox/channels/webhook": Rule(WRITERS, body({"url": "https://hooks.example.com/lianxi"}),
                                               why="sets the caller's own unit's channel"),
    "PUT /api/v1/inbox/channels/email": Rule(WRITERS, body({"address": "desk@unit.example.com"}),
                                             why="sets the caller's own unit's channel"),
    "PUT /api/v1/inbox/channels/dingtalk": Rule(WRITERS, body({
        "url": "https://oapi.dingtalk.com/robot/send?access_token=matrix0001", "secret": "SEC" + "a" * 64}),
        why="each caller sets its own unit's robot"),
    "PUT /api/v1/inbox/channels/wecom": Rule(WRITERS, body({
        "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=matrix-key"}), why="each caller's own"),
    "PUT /api/v1/inbox/channels/sms": Rule(WRITERS, body({"phones": ["13800138001"]}), why="each caller's own"),
    "POST /api/v1/inbox/channels/{channel}/test": Rule(WRITERS, with_owner_sms,
                                                       why="each writer tests its own unit's channel"),
    "DELETE /api/v1/inbox/channels/{channel}": Rule(frozenset({"owner"}), with_owner_webhook,
                                                    why="others have no channel of their own to delete"),
    "GET /api/v1/inbox/deliveries": Rule(AUTH),
    # the annual review
    "GET /api/v1/reviews/{year}": Rule(ALL_READERS),
    "GET /api/v1/reviews/{year}/units/{unit}": Rule(OWN_READERS),
    "POST /api/v1/reviews/{year}/units/{unit}/appeals": Rule(frozenset({"owner"}), appeal_probe),
    "POST /api/v1/reviews/{year}/appeals/{appeal_id}/decision": Rule(frozenset({"lead"}), decision_probe),
}


def form(data: Any, **ids: Callable[[World], str]) -> Probe:
    """A web form probe (the caller's session CSRF token is added when sent)."""

    def probe(world: World, path: str) -> Req:
        fresh = {k: make(world) for k, make in ids.items()}
        return Req(world.fill(path, **fresh), data=data(world) if callable(data) else data)

    return probe


def fresh_warning(world: World) -> str:
    return world.warning()


def fresh_account(world: World) -> str:
    """A new liaison account of the owner unit (made-up test data)."""
    p = world.api.platform
    account, _ = p.accounts.create("test", account_name=f"matrix.{next(world.seq)}", display_name="测试·矩阵联络员",
                                   unit=OWNER, role="liaison", phone=None, known_units=p.known_agencies(),
                                   now=p.clock())
    return account.account_id


def fresh_token(world: World) -> str:
    p = world.api.platform
    token_id, _ = p.tokens.issue(agency=OWNER, role="liaison", label=f"matrix-{next(world.seq)}",
                                 known_agencies=p.known_agencies())
    return token_id


OWN_ACCOUNT = "a person's own account (a page session of an account, not of a token): tests/test_accounts_web.py"


def web_meeting_to_hold(world: World, path: str) -> Req:
    mid = world.meeting("2025-06-26", datetime(2025, 6, 3, 2, tzinfo=UTC))
    return Req(world.fill(path, meeting_id=mid),
               data={"held_on": "2025-06-26", "attendance": LEAD_UNIT, "minutes": "网页纪要"})


def web_evidence(world: World, path: str) -> Req:
    r = world.c.get(f"/api/v1/reviews/2025/units/{OWNER}", headers=world.h(OWNER))
    clause = next(c for c in r.json()["unit"]["clauses"] if c["items"])
    return Req(world.fill(path) + f"?clause={clause['clause']}&item={clause['items'][0]['item']}")


# The server-rendered pages: a signed-in session instead of a bearer token; success is a
# page (2xx) or, after a form, a redirect that is not to the sign-in page.
WEB_REGISTRY: dict[str, Rule] = {
    "GET /signin": Rule(EVERYONE),
    "POST /signin": Rule(frozenset(), control=False, why="exchanges a token for a session: tests/test_web_pages.py"),
    "POST /signout": Rule(frozenset(), control=False, why="ends the caller's own session: tests/test_web_pages.py"),
    "GET /sso/start": Rule(frozenset(), control=False,
                           why="sends anyone to the identity provider; off unless configured: tests/test_sso_oidc.py"),
    "GET /sso/callback": Rule(frozenset(), control=False, why="the provider's validated answer is the credential, "
                              "mapped to an account or refused: tests/test_sso_oidc.py"),
    "GET /": Rule(AUTH, why="redirects a signed-in user home"),
    "GET /units/{code}": Rule(OWN_READERS),
    "GET /units/{code}/log": Rule(frozenset({"owner"})),
    "POST /units/{code}/log": Rule(frozenset({"owner"}), form(lambda w: {
        "duty_code": "fire-rescue.inspection", "occurred_on": "2025-06-02", "school_ids": "T001",
        "summary": "网页填报的消防检查", "form_id": str(uuid.uuid4())})),
    "GET /units/{code}/ledger.xlsx": Rule(OWN_READERS),
    "GET /units/{code}/import": Rule(frozenset({"owner"})),
    "GET /units/{code}/import/template.xlsx": Rule(frozenset({"owner"})),
    "POST /units/{code}/import": Rule(frozenset({"owner"}), web_duty_sheet),
    "GET /rectifications.xlsx": Rule(ALL_READERS),
    "GET /review/{year}.xlsx": Rule(ALL_READERS),
    "GET /warnings.xlsx": Rule(ALL_READERS),
    "GET /units/{code}/hazards/new": Rule(frozenset({"owner"})),
    "POST /units/{code}/hazards/new": Rule(frozenset({"owner"}), form(lambda w: {
        "school_id": "T001", "category": "fire", "severity": "major", "description": f"网页上报隐患 #{next(w.seq)}",
        "found_on": "2025-06-28"})),
    "POST /rectifications/{item_id}/assign": Rule(frozenset({"lead"}), form(
        {"lead_unit": OWNER, "deadline": "2025-07-20", "measures": "清理疏散通道"},
        item_id=lambda w: w.rectification("reported"))),
    "POST /rectifications/{item_id}/verify": Rule(frozenset({"lead"}), form(
        {"note": "核验通过"}, item_id=lambda w: w.rectification("completed"))),
    "POST /rectifications/{item_id}/reject": Rule(frozenset({"lead"}), form(
        {"reason": "整改不到位", "new_deadline": "2025-07-25"}, item_id=lambda w: w.rectification("completed"))),
    "POST /rectifications/{item_id}/extend": Rule(frozenset({"lead"}), form(
        {"reason": "需采购设备", "new_deadline": "2025-07-30"}, item_id=lambda w: w.rectification("assigned"))),
    "POST /rectifications/{item_id}/refuse-extension": Rule(frozenset({"lead"}), form(
        {"reason": "工期充足"}, item_id=lambda w: w.rectification("extension-requested"))),
    "POST /units/{code}/rectifications/{item_id}/extension-request": Rule(frozenset({"owner"}), form(
        {"reason": "网页申请延期", "new_deadline": "2025-08-05"}, item_id=lambda w: w.rectification("assigned"))),
    "POST /meetings/{meeting_id}/tasks/{task_id}/verify": Rule(frozenset({"lead"}), form(
        {"note": "核销"}, task_id=lambda w: w.task("completed"))),
    "POST /meetings/{meeting_id}/tasks/{task_id}/reject": Rule(frozenset({"lead"}), form(
        {"reason": "未按要求完成", "new_deadline": "2025-07-25"}, task_id=lambda w: w.task("completed"))),
    "GET /units/{code}/work": Rule(OWN_READERS),
    "POST /units/{code}/rectifications/{item_id}/progress": Rule(frozenset({"owner"}), form(
        {"note": "网页进展", "percent": "40"}, item_id=lambda w: w.rectification("assigned"))),
    "POST /units/{code}/rectifications/{item_id}/completion": Rule(frozenset({"owner"}), form(
        {"summary": "网页整改完毕", "evidence": "sha256:0a"}, item_id=lambda w: w.rectification("assigned"))),
    "POST /units/{code}/tasks/{task_id}/progress": Rule(frozenset({"owner"}), form(
        {"note": "网页进展", "percent": "40"}, task_id=lambda w: w.task())),
    "POST /units/{code}/tasks/{task_id}/completion": Rule(frozenset({"owner"}), form(
        {"summary": "网页完成"}, task_id=lambda w: w.task())),
    "GET /units/{code}/warnings": Rule(OWN_READERS),
    "POST /units/{code}/warnings/{warning_id}/ack": Rule(frozenset({"owner"}), form(
        {"measures_taken": "已加固设施"}, warning_id=fresh_warning)),
    "GET /units/{code}/agenda": Rule(OWN_READERS),
    "POST /units/{code}/agenda": Rule(frozenset({"owner"}), form(lambda w: {
        "meeting_id": w.meeting("2025-07-30", FIXED_NOW), "title": f"网页提请议题 #{next(w.seq)}"})),
    "GET /units/{code}/petitions": Rule(OWN_READERS),
    "POST /units/{code}/petitions/{petition_id}/answer": Rule(frozenset({"owner"}), form(
        {"answered_on": "2025-06-10", "answer": "网页答复：已核查并整改"},
        petition_id=lambda w: w.petition(handling=OWNER))),
    "GET /units/{code}/channels": Rule(frozenset({"owner", "lead"}), why="channels are the unit's or the lead's"),
    "POST /units/{code}/channels/{channel}": Rule(frozenset({"owner", "lead"}), form(
        {"phones": "13800138001"}, channel=lambda w: "sms")),
    "POST /units/{code}/channels/{channel}/test": Rule(frozenset({"owner", "lead"}), with_owner_sms),
    "POST /units/{code}/channels/{channel}/delete": Rule(frozenset({"owner", "lead"}), with_owner_sms),
    "GET /dashboard": Rule(ALL_READERS),
    "GET /rectifications": Rule(ALL_READERS),
    "GET /rectifications/{item_id}": Rule(OWN_READERS, why="a liaison sees the items its unit answers for"),
    "GET /meetings": Rule(ALL_READERS),
    "POST /meetings": Rule(frozenset({"lead"}), form({"scheduled_for": "2025-07-26", "place": "会议室"})),
    "GET /meetings/{meeting_id}": Rule(ALL_READERS),
    "POST /meetings/{meeting_id}/items": Rule(frozenset({"lead"}), form(
        {"title": "网页议题"}, meeting_id=lambda w: w.meeting("2025-07-29", FIXED_NOW))),
    "POST /meetings/{meeting_id}/held": Rule(frozenset({"lead"}), web_meeting_to_hold),
    "POST /meetings/{meeting_id}/resolutions": Rule(frozenset({"lead"}), form({"text": "网页决议"})),
    "GET /meetings/{meeting_id}/brief.{fmt}": Rule(ALL_READERS),
    "GET /warnings": Rule(ALL_READERS),
    "GET /events": Rule(ALL_READERS),
    "GET /audit": Rule(frozenset({"auditor"})),
    "GET /evidence/{digest}": Rule(OWN_READERS, why="the evidence of OWNER's hazard report, on the session"),
    "GET /evidence/{digest}/thumbnail": Rule(OWN_READERS),
    "GET /review": Rule(ALL_READERS),
    "GET /review/{year}/units/{unit}/evidence": Rule(ALL_READERS, web_evidence),
    # accounts (services/web/pages/accounts.py)
    "GET /account": Rule(AUTH, why="shows a token session that it has no personal account"),
    "GET /account/password": Rule(frozenset(), control=False, why=OWN_ACCOUNT),
    "POST /account/password": Rule(frozenset(), control=False, why=OWN_ACCOUNT),
    "GET /account/totp": Rule(frozenset(), control=False, why=OWN_ACCOUNT),
    "POST /account/totp": Rule(frozenset(), control=False, why=OWN_ACCOUNT),
    "POST /account/signout-everywhere": Rule(frozenset(), control=False, why=OWN_ACCOUNT),
    "GET /accounts": Rule(frozenset({"lead"})),
    "POST /accounts": Rule(frozenset({"lead"}), form(lambda w: {
        "account_name": f"matrix.new{next(w.seq)}", "display_name": "测试·矩阵", "unit": OWNER, "role": "liaison"})),
    "POST /accounts/{account_id}/disable": Rule(frozenset({"lead"}), form({}, account_id=fresh_account)),
    "POST /accounts/{account_id}/enable": Rule(frozenset({"lead"}), form({}, account_id=fresh_account)),
    "POST /accounts/{account_id}/reset-password": Rule(frozenset({"lead"}), form({}, account_id=fresh_account)),
    "POST /accounts/{account_id}/oidc": Rule(frozenset({"lead"}), form(
        {"issuer": "https://idp.test.invalid", "subject": "matrix"}, account_id=fresh_account)),
    "POST /accounts/credentials": Rule(frozenset({"lead"}), form({"unit": OWNER, "role": "liaison", "label": "m"})),
    "POST /accounts/credentials/{token_id}/revoke": Rule(frozenset({"lead"}), form({}, token_id=fresh_token)),
    "GET /units/{code}/accounts": Rule(OWN_READERS),
}


REGISTRY.update(WEB_REGISTRY)


def _passing() -> list[dict[str, Any]]:
    from contracts.catalogue import default_catalogue

    fire = next(c for c in default_catalogue().campaigns.campaigns if c.code == "fire-safety")
    return [{"aspect": a.code, "passed": True, "problems": []} for a in fire.aspects]


# -- the route table ------------------------------------------------------------------------------


def route_table(api: Api) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, from app.routes."""
    out = []
    for rc in iter_route_contexts(api.client.app.routes):  # type: ignore[attr-defined]
        path = rc.path
        if not path or path in DOC_ROUTES or path.startswith("/static"):
            continue
        for method in sorted((rc.methods or set()) - {"HEAD"}):
            out.append((method, path))
    return out


def is_api(path: str) -> bool:
    return path.startswith("/api/") or path in ("/healthz", "/readyz")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from contracts.catalogue import default_catalogue
    from tests.conftest import Clock, make_platform

    url = f"sqlite:///{tmp_path_factory.mktemp('matrix') / 'lianxi.db'}"
    platform = make_platform(url, clock=Clock(), rate_limit_per_minute=0)
    platform.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    platform.runner.catch_up()
    with pytest.MonkeyPatch.context() as env:
        env.setattr(platform.settings, "smtp_host", "127.0.0.1")  # so an email channel can be set (nothing is sent)
        yield World(Api(platform))
    platform.close()


def identity(role: str, owner: str) -> tuple[str, str]:
    return {"owner": (owner, "liaison"), "other": (OTHER if owner != OTHER else OWNER, "liaison"),
            "lead": (LEAD_UNIT, "lead"), "auditor": (LEAD_UNIT, "auditor")}[role]


def credentials(world: World, role: str, owner: str) -> dict[str, str]:
    if role == "anon":
        return {}
    if role == "forged":
        return {"Authorization": "Bearer lx_" + uuid.uuid4().hex}
    return world.h(*identity(role, owner))


def session(world: World, role: str, owner: str) -> tuple[str, str]:
    """(cookie, csrf) of a signed-in page session for the role; forged: a made-up cookie."""
    from services.web.session import sessions_for

    if role == "forged":
        return uuid.uuid4().hex, uuid.uuid4().hex
    key = identity(role, owner)
    if key not in world.sessions:
        principal = world.api.platform.tokens.authenticate(world.api.token(*key))
        assert principal is not None
        cookie, s = sessions_for(world.api.platform).start(principal, world.api.platform.clock())
        world.sessions[key] = (cookie, s.csrf)
    return world.sessions[key]


def call(world: World, method: str, req: Req, role: str, owner: str) -> Any:
    world.c.cookies.clear()
    if is_api(req.path):
        headers = {**req.headers, **credentials(world, role, owner)}
        response = world.c.request(method, req.path, json=req.json, content=req.content, data=req.data,
                                   files=req.files, headers=headers)
    else:
        headers = dict(req.headers)
        data = dict(req.data or {})
        if role != "anon":
            cookie, csrf = session(world, role, owner)
            headers["Cookie"] = f"lx_session={cookie}"
            data = {**data, "csrf_token": csrf}
        if method == "GET":
            response = world.c.get(req.path, headers=headers, follow_redirects=False)
        else:
            response = world.c.request(method, req.path, data=data, files=req.files, headers=headers,
                                       follow_redirects=False)
    world.api.settle()
    return response


def succeeded(response: Any) -> bool:
    """A 2xx, or a redirect that does not send the caller to sign in (a form's success)."""
    if 200 <= response.status_code < 300:
        return True
    return response.status_code in (302, 303) and not response.headers.get("location", "").startswith("/signin")


def test_every_route_is_in_the_registry(world: World) -> None:
    """A new endpoint fails here until its permissions and probe are written down."""
    routes = {f"{m} {p}" for m, p in route_table(world.api)}
    missing = sorted(routes - REGISTRY.keys())
    stale = sorted(REGISTRY.keys() - routes)
    assert not missing, "add these routes to REGISTRY (who may succeed, and a probe):\n" + "\n".join(missing)
    assert not stale, "REGISTRY lists routes the app no longer has:\n" + "\n".join(stale)


def test_universal_refusals_on_every_route(world: World) -> None:
    """Listed or not: no credential and forged ones get nowhere but health and sign-in; auditors
    write nothing."""
    leaks = []
    for method, path in route_table(world.api):
        if path in ("/healthz", "/readyz", "/signin"):
            continue
        rule = REGISTRY.get(f"{method} {path}")
        if rule and not rule.control:
            continue
        filled = world.fill(path) if _fillable(world, path) else path.replace("{", "").replace("}", "")
        req = rule.probe(world, path) if rule and rule.probe else Req(
            filled, json={} if method != "GET" and is_api(path) else None, data={} if not is_api(path) else None)
        for role in ("anon", "forged") + (("auditor",) if method != "GET" else ()):
            r = call(world, method, req, role, rule.owner if rule else OWNER)
            if succeeded(r):
                leaks.append(f"{role} {method} {path} -> {r.status_code} {r.headers.get('location', '')}")
            if role in ("anon", "forged") and is_api(path) and r.status_code != 401:
                leaks.append(f"{role} {method} {path} -> {r.status_code}, not 401")
    assert not leaks, "\n".join(leaks)


def _fillable(world: World, path: str) -> bool:
    return all(p in world.ids for p in _params(path))


MATRIX = sorted(REGISTRY)


@pytest.mark.parametrize("route", MATRIX)
def test_matrix(world: World, route: str) -> None:
    """Roles outside ``allowed`` first (the resource is still in the state the probe needs),
    then the allowed ones; at least one allowed role must succeed."""
    rule = REGISTRY[route]
    method, path = route.split(" ", 1)
    if f"{method} {path}" not in {f"{m} {p}" for m, p in route_table(world.api)}:
        pytest.skip("not served by this build")
    if not rule.control:
        pytest.skip(rule.why)
    req = rule.probe(world, path) if rule.probe else Req(world.fill(path))
    results: dict[str, str] = {}
    ok: set[str] = set()
    for role in sorted(ROLES, key=lambda r: r in rule.allowed):
        r = call(world, method, req, role, rule.owner)
        results[role] = f"{r.status_code}{' ' + r.headers['location'] if 'location' in r.headers else ''}"
        if succeeded(r):
            ok.add(role)
    unauthorised = {r: results[r] for r in ok - rule.allowed}
    assert not unauthorised, f"{route}: unauthorised success {unauthorised} (all: {results})"
    assert ok & rule.allowed, f"{route}: no allowed role succeeded, so the probe proves nothing: {results}"


def test_a_unit_cannot_mark_another_units_notifications(world: World) -> None:
    nid = world.notification()
    for req in (Req(f"/api/v1/inbox/{nid}/read", json={}), Req("/api/v1/inbox/read", json={"ids": [nid]})):
        assert call(world, "POST", req, "other", OWNER).status_code == 403
    unread = world.c.get("/api/v1/inbox?unread=true", headers=world.h(OWNER)).json()["items"]
    assert nid in [n["id"] for n in unread]


# -- mass assignment -------------------------------------------------------------------------------

SERVER_OWNED = ("agency", "unit", "logged_by", "reported_by_unit", "id", "event_id", "recorded_at", "timestamp",
                "position", "originator_id", "actor", "created_at")


def test_request_bodies_accept_no_undeclared_field(world: World) -> None:
    """Every object in every request body forbids properties it does not declare."""
    doc = world.c.get("/openapi.json").json()
    components = doc["components"]["schemas"]
    open_objects = []

    def visit(schema: dict[str, Any], where: str, seen: frozenset[str]) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                visit(components[name], f"{where}<{name}>", seen | {name})
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(key, []):
                visit(sub, where, seen)
        if schema.get("type") == "array":
            visit(schema.get("items", {}), f"{where}[]", seen)
        if schema.get("type") == "object" or "properties" in schema:
            if schema.get("additionalProperties", True) is not False:
                open_objects.append(where)
            for name, sub in schema.get("properties", {}).items():
                visit(sub, f"{where}.{name}", seen)

    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for media in op.get("requestBody", {}).get("content", {}).values():
                visit(media.get("schema", {}), f"{method.upper()} {path}", frozenset())
    assert not open_objects, "request objects open to extra fields:\n" + "\n".join(open_objects)


@pytest.mark.parametrize("route", sorted(r for r, rule in REGISTRY.items() if rule.probe and is_api(r.split()[1])
                                         and r.split()[0] != "GET"))
def test_server_owned_fields_in_a_body_are_refused(world: World, route: str) -> None:
    """A valid body plus a server-owned field (unit, logged_by, ids, recorded time) is a 422
    naming that field, and writes nothing; the same body without it succeeds."""
    rule = REGISTRY[route]
    method, path = route.split(" ", 1)
    operation = world.c.get("/openapi.json").json()["paths"][path][method.lower()]
    if "requestBody" not in operation:
        pytest.skip("takes no body")
    req = rule.probe(world, path)  # type: ignore[misc]
    role = next(r for r in ("owner", "lead", "other") if r in rule.allowed)
    head = world.api.platform.app.recorder.max_notification_id()
    fields = req.json if req.files is None else {}  # a file upload's form fields, or a JSON body
    for name in SERVER_OWNED:
        if name in fields:
            continue
        value = OTHER if name in ("agency", "unit") else "forged"
        forged = (Req(req.path, json={**fields, name: value}) if req.files is None
                  else Req(req.path, data={name: value}, files=req.files))
        r = call(world, method, forged, role, rule.owner)
        assert r.status_code == 422, f"{route} + {name}: {r.status_code} {r.text}"
        assert ["body", name] in [e["loc"] for e in r.json()["errors"] if e["type"] == "extra_forbidden"], r.text
    assert world.api.platform.app.recorder.max_notification_id() == head
    assert succeeded(call(world, method, req, role, rule.owner)), f"{route}: the clean body failed"
