"""/docs (Swagger UI) and /redoc (ReDoc) without the internet.

The assets come from the installed fastapi-offline package, which mounts them at
/static-offline-docs. The pages are FastAPI's own, answered here with a Content-Security-Policy
that confines every load to this server: ReDoc's bundle still names an image on its vendor's
CDN, and a county network would hang on it (a browser under this policy never asks)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

ASSETS = "/static-offline-docs"  # where fastapi_offline.FastAPIOffline mounts its files

# The pages' own bootstrap is an inline <script>; everything else must come from this origin.
_SAME_ORIGIN_ONLY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
                     "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
                     "frame-ancestors 'none'")


def install(app: FastAPI) -> None:
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} — 接口文档",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})})
        page.headers["Content-Security-Policy"] = _SAME_ORIGIN_ONLY
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(openapi_url=openapi_url, title=f"{app.title} — 接口文档",
                              redoc_js_url=f"{ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS}/favicon.png", with_google_fonts=False)
        page.headers["Content-Security-Policy"] = _SAME_ORIGIN_ONLY
        return page
