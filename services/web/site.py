"""The pages installed into the API's app: every page router, /static and the error pages.

Apart from services/web/base.py so that the pages can import base without base importing them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from services.web import error_pages
from services.web.base import PasswordChangeNeeded, SignInNeeded, WebError, error_page, redirect
from services.web.pages import (
    accounts,
    channels,
    dashboard,
    duty_log,
    events,
    evidence,
    hazards,
    liaison,
    meetings,
    rectifications,
    reviews,
    sheets,
    signin,
    sso,
    warnings,
)

STATIC = Path(__file__).resolve().parent.parent / "static"

# Included in this order; no two pages' paths overlap, so the order only keeps listings stable.
PAGES = (signin, sso, accounts, duty_log, rectifications, hazards, liaison, warnings, dashboard, meetings, events,
         reviews, sheets, channels, evidence)


def install(app: FastAPI) -> None:
    """Add the pages, their static files and their error pages to the API's app."""
    for page in PAGES:
        app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    error_pages.install(app)  # 404/403/500 for a browser as a Chinese page; the API keeps problem+json

    @app.exception_handler(WebError)
    async def _web_error(request: Request, exc: WebError) -> HTMLResponse:
        return await run_in_threadpool(error_page, request, exc.status, exc.title, exc.message)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        if request.method != "GET":
            return redirect("/signin")
        return redirect("/signin?" + urlencode({"next": exc.target}))

    @app.exception_handler(PasswordChangeNeeded)
    async def _change_password(request: Request, exc: PasswordChangeNeeded) -> Response:
        return redirect("/account/password")
