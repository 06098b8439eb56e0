"""Joint meetings (联席会议): schedule, propose agenda items, the agenda assembled from the log,
record the meeting, adopt resolutions whose tasks are tracked like rectifications; and the
brief (联席会议简报) as HTML, DOCX or PDF.

Who may write: the lead bureau schedules, records the meeting, adopts resolutions, and
verifies, rejects or extends tasks; any unit proposes agenda items; a task's responsible unit
reports progress and completion (回告). Every token reads meetings, agendas and tasks; the
brief is for the lead bureau and auditors.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from contracts.api import Page
from contracts.api_meetings import (
    AgendaItemIn,
    HeldIn,
    MeetingDetailOut,
    MeetingIn,
    MeetingOut,
    ResolutionIn,
    TaskCompletionIn,
    TaskDetailOut,
    TaskExtensionIn,
    TaskOut,
    TaskProgressIn,
    TaskRejectionIn,
    TaskVerificationIn,
    Written,
)
from events.base import local_date
from projections.meetings import (
    assemble_agenda,
    get_meeting,
    get_task,
    list_agenda_items,
    list_meetings,
    list_resolutions,
    list_tasks,
)
from services.api.deps import (
    CursorQ,
    LimitQ,
    PlatformDep,
    PrincipalDep,
    answer,
    decode_position,
    encode_cursor,
    require_all_reader,
    require_lead,
    require_writer,
)
from services.api.problems import WRITE_ERRORS, ProblemError
from services.kernel.use_cases import parse_id
from services.meetings.briefs import RETRY_AFTER_S, StillBuilding

router = APIRouter(prefix="/api/v1", tags=["meetings"])

_MEETING_FIELDS = tuple(MeetingOut.model_fields)
_TASK_FIELDS = tuple(TaskOut.model_fields)


def _meeting_out(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in _MEETING_FIELDS}


@router.post("/meetings", status_code=201, response_model=Written, responses=WRITE_ERRORS)
def schedule(body: MeetingIn, platform: PlatformDep, principal: PrincipalDep, response: Response) -> Written:
    """The lead bureau convenes a joint meeting on a date. Meetings are numbered 1, 2, 3... in
    the year of their date in the order they are convened: the platform assigns the next
    number; a `number` given must be that one (a higher one is 422, a taken one 409)."""
    require_writer(principal)
    require_lead(principal)
    w = platform.app.schedule_meeting(principal, number=body.number, title=body.title,
                                      scheduled_for=body.scheduled_for, place=body.place, now=platform.clock())
    response.headers["Location"] = f"/api/v1/meetings/{w.id}"
    return answer(Written, w)


@router.get("/meetings", response_model=list[MeetingOut])
def index(
    platform: PlatformDep, principal: PrincipalDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> list[MeetingOut]:
    with platform.read_engine.connect() as conn:
        return [MeetingOut(**_meeting_out(m)) for m in list_meetings(conn, year)]


@router.get("/meetings/{meeting_id}", response_model=MeetingDetailOut, responses={404: {"description": "unknown"}})
def detail(meeting_id: str, platform: PlatformDep, principal: PrincipalDep) -> MeetingDetailOut:
    mid = str(parse_id(meeting_id, "meeting"))
    with platform.read_engine.connect() as conn:
        m = get_meeting(conn, mid)
        if m is None:
            raise ProblemError(404, f"unknown meeting {meeting_id!r}")
        return MeetingDetailOut(**_meeting_out(m), agenda_items=list_agenda_items(conn, mid),
                                resolutions=list_resolutions(conn, mid))


@router.get("/meetings/{meeting_id}/agenda", response_model=dict[str, Any],
            responses={404: {"description": "unknown"}})
def agenda(meeting_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict[str, Any]:
    """The agenda assembled from the log since the previous meeting; every entry names its event ids."""
    mid = str(parse_id(meeting_id, "meeting"))
    with platform.read_engine.connect() as conn:
        out = assemble_agenda(conn, mid, local_date(platform.clock()))
    if out is None:
        raise ProblemError(404, f"unknown meeting {meeting_id!r}")
    return out


@router.post("/meetings/{meeting_id}/agenda-items", status_code=201, response_model=Written, responses=WRITE_ERRORS)
def propose(meeting_id: str, body: AgendaItemIn, platform: PlatformDep, principal: PrincipalDep) -> Written:
    """Any member unit proposes an item for the meeting's agenda (提请会议研究事项)."""
    require_writer(principal)
    return answer(Written, platform.app.propose_agenda_item(
        principal, parse_id(meeting_id, "meeting"), title=body.title, detail=body.detail,
        related_event_ids=list(body.related_event_ids), now=platform.clock(),
    ))


@router.post("/meetings/{meeting_id}/held", response_model=Written, responses=WRITE_ERRORS)
def held(meeting_id: str, body: HeldIn, platform: PlatformDep, principal: PrincipalDep) -> Written:
    """The lead bureau records the meeting: the day, attendance by unit, the minutes."""
    require_writer(principal)
    require_lead(principal)
    return answer(Written, platform.app.hold_meeting(
        principal, parse_id(meeting_id, "meeting"), held_on=body.held_on, attendance=list(body.attendance),
        absent=list(body.absent), minutes=body.minutes, now=platform.clock(),
    ))


@router.post("/meetings/{meeting_id}/resolutions", status_code=201, response_model=Written, responses=WRITE_ERRORS)
def resolve(meeting_id: str, body: ResolutionIn, platform: PlatformDep, principal: PrincipalDep) -> Written:
    """The lead bureau records a resolution; each of its tasks is assigned to a unit with a deadline
    (`related` lists the task ids)."""
    require_writer(principal)
    require_lead(principal)
    return answer(Written, platform.app.adopt_resolution(
        principal, parse_id(meeting_id, "meeting"), text=body.text, agenda_item_ids=list(body.agenda_item_ids),
        tasks=[t.model_dump() for t in body.tasks], now=platform.clock(),
    ))


_MEDIA = {
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}


@router.get("/meetings/{meeting_id}/brief", response_class=Response,
            responses={200: {"content": {m: {} for m in _MEDIA.values()}, "description": "the brief"},
                       202: {"description": "still rendering (正在生成): ask again after Retry-After seconds"},
                       403: {"description": "not the lead bureau or an auditor"},
                       404: {"description": "unknown meeting"}})
def brief(
    meeting_id: str, platform: PlatformDep, principal: PrincipalDep,
    format: Annotated[Literal["html", "docx", "pdf"], Query()] = "html",
) -> Response:
    """The joint-meeting brief (联席会议简报) rendered from the read models."""
    require_all_reader(principal)
    mid = str(parse_id(meeting_id, "meeting"))
    today = local_date(platform.clock())
    # One wait for the data and the render together: the answer starts well before the request
    # timeout (a 503) however busy the machine is.
    deadline = time.monotonic() + platform.settings.brief_wait_s
    try:
        data = platform.briefs.data_for(
            (mid, today, platform.app.recorder.max_notification_id()),
            lambda: platform.assemble_brief(mid, today), wait_s=platform.settings.brief_wait_s)
        if data is None:
            raise ProblemError(404, f"unknown meeting {meeting_id!r}")
        body = platform.briefs.get(data, format, wait_s=max(0.0, deadline - time.monotonic()))
    except StillBuilding:
        body = None
    if body is None:
        return JSONResponse({"status": "rendering", "detail": "简报正在生成，请稍后再取。"}, status_code=202,
                            headers={"Retry-After": str(RETRY_AFTER_S)})
    assert data is not None  # the body came from it
    filename = f"brief-{data['meeting']['year']}-{data['meeting']['number']}.{format}"
    return Response(body, media_type=_MEDIA[format],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# -- tasks ---------------------------------------------------------------------------------


def _task_out(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in _TASK_FIELDS}


@router.get("/tasks", response_model=Page[TaskOut])
def tasks_index(
    platform: PlatformDep, principal: PrincipalDep, limit: LimitQ = 100, cursor: CursorQ = None,
    unit: Annotated[str | None, Query(max_length=60, description="responsible or cooperating unit")] = None,
    status: Annotated[Literal["open", "assigned", "in_progress", "reopened", "completed", "verified"] | None,
                      Query()] = None,
    overdue: Annotated[bool | None, Query()] = None,
    meeting: Annotated[str | None, Query(max_length=36)] = None,
) -> Page[TaskOut]:
    """Tasks from resolutions, newest first."""
    before = decode_position(cursor)
    today = local_date(platform.clock())
    with platform.read_engine.connect() as conn:
        rows = list_tasks(conn, today=today, limit=limit + 1, before=before, unit=unit,
                          status=status, overdue=overdue, meeting=meeting)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[TaskOut](items=[TaskOut(**_task_out(r)) for r in rows],
                         next_cursor=encode_cursor(str(rows[-1]["assigned_position"])) if more else None)


@router.get("/tasks/{task_id}", response_model=TaskDetailOut, responses={404: {"description": "unknown task"}})
def task_detail(task_id: str, platform: PlatformDep, principal: PrincipalDep) -> TaskDetailOut:
    with platform.read_engine.connect() as conn:
        row = get_task(conn, str(parse_id(task_id, "task")), local_date(platform.clock()))
    if row is None:
        raise ProblemError(404, f"unknown task {task_id!r}")
    return TaskDetailOut(**_task_out(row), history=row["history"])


@router.post("/tasks/{task_id}/progress", response_model=Written, responses=WRITE_ERRORS)
def task_progress(task_id: str, body: TaskProgressIn, platform: PlatformDep, principal: PrincipalDep) -> Written:
    """A responsible (or cooperating) unit reports progress."""
    require_writer(principal)
    return answer(Written, platform.app.report_task_progress(
        principal, parse_id(task_id, "task"), note=body.note, percent=body.percent, occurred_on=body.occurred_on,
        now=platform.clock()))


@router.post("/tasks/{task_id}/completion", response_model=Written, responses=WRITE_ERRORS)
def task_completion(task_id: str, body: TaskCompletionIn, platform: PlatformDep, principal: PrincipalDep) -> Written:
    """The responsible unit reports the task done (回告)."""
    require_writer(principal)
    return answer(Written, platform.app.complete_task(
        principal, parse_id(task_id, "task"), summary=body.summary, evidence=list(body.evidence),
        occurred_on=body.occurred_on, now=platform.clock()))


@router.post("/tasks/{task_id}/verification", response_model=Written, responses=WRITE_ERRORS)
def task_verification(
    task_id: str, body: TaskVerificationIn, platform: PlatformDep, principal: PrincipalDep,
) -> Written:
    """The lead bureau verifies a completed task."""
    require_writer(principal)
    return answer(Written, platform.app.verify_task(principal, parse_id(task_id, "task"), note=body.note,
                                                    now=platform.clock()))


@router.post("/tasks/{task_id}/rejection", response_model=Written, responses=WRITE_ERRORS)
def task_rejection(task_id: str, body: TaskRejectionIn, platform: PlatformDep, principal: PrincipalDep) -> Written:
    """The lead bureau rejects a completion with a reason and a new deadline."""
    require_writer(principal)
    return answer(Written, platform.app.reject_task(
        principal, parse_id(task_id, "task"), reason=body.reason, new_deadline=body.new_deadline, now=platform.clock()))


@router.post("/tasks/{task_id}/extension", response_model=Written, responses=WRITE_ERRORS)
def task_extension(task_id: str, body: TaskExtensionIn, platform: PlatformDep, principal: PrincipalDep) -> Written:
    """The lead bureau extends a task's deadline with a reason (max_extensions of escalation.yaml)."""
    require_writer(principal)
    return answer(Written, platform.app.extend_task_deadline(
        principal, parse_id(task_id, "task"), reason=body.reason, new_deadline=body.new_deadline, now=platform.clock()))
