"""Member units and their duties; the schools registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from contracts.api import (
    AgencyOut,
    Created,
    DutyOut,
    Page,
    SchoolIn,
    SchoolOut,
)
from projections.catalogue_view import current_duties, get_agency, list_agencies, list_schools
from services.api.deps import (
    CursorQ,
    LimitQ,
    PlatformDep,
    PrincipalDep,
    decode_cursor,
    encode_cursor,
    require_lead,
)
from services.api.problems import ProblemError

router = APIRouter(prefix="/api/v1", tags=["catalogue"])


@router.get("/agencies", response_model=list[AgencyOut])
def agencies_index(platform: PlatformDep, principal: PrincipalDep) -> list[AgencyOut]:
    with platform.read_engine.connect() as conn:
        return [
            AgencyOut(**a, duties=[DutyOut(**d) for d in current_duties(conn, a["code"])])
            for a in list_agencies(conn)
        ]


@router.get("/agencies/{code}", response_model=AgencyOut, responses={404: {"description": "unknown unit"}})
def agency_detail(code: str, platform: PlatformDep, principal: PrincipalDep) -> AgencyOut:
    with platform.read_engine.connect() as conn:
        agency = get_agency(conn, code)
        if agency is None:
            raise ProblemError(404, f"unknown member unit {code!r}")
        return AgencyOut(**agency, duties=[DutyOut(**d) for d in current_duties(conn, code)])


def _school_out(row: dict[str, object]) -> SchoolOut:
    return SchoolOut(id=str(row["school_id"]), **{k: row[k] for k in  # type: ignore[arg-type]
                     ("name", "town", "kind", "boarding", "canteen", "school_bus")})


@router.get("/schools", response_model=Page[SchoolOut])
def schools_index(
    platform: PlatformDep, principal: PrincipalDep, limit: LimitQ = 100, cursor: CursorQ = None,
    town: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[SchoolOut]:
    after = decode_cursor(cursor)
    with platform.read_engine.connect() as conn:
        rows = list_schools(conn, after=after, limit=limit + 1, town=town)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[SchoolOut](items=[_school_out(r) for r in rows],
                           next_cursor=encode_cursor(str(rows[-1]["school_id"])) if more else None)


@router.post("/schools", status_code=201, response_model=Created,
             responses={403: {"description": "not the lead"}, 409: {"description": "already registered"}})
def schools_create(body: SchoolIn, platform: PlatformDep, principal: PrincipalDep, response: Response) -> Created:
    require_lead(principal)
    appended = platform.app.register_school(
        principal, school_id=body.id, name=body.name, town=body.town, kind=body.kind,
        boarding=body.boarding, canteen=body.canteen, school_bus=body.school_bus, now=platform.clock(),
    )
    response.headers["Location"] = f"/api/v1/schools/{body.id}"
    return Created(id=appended.id, position=appended.position)
