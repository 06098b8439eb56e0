"""A page form submits once: Post/Redirect/Get plus a key derived from the submission itself.

A form's own random id does not survive the browser: Back re-renders the page (it is no-store)
with a fresh id while Chromium restores the typed fields. So the key is a digest of who submits
what to where (every field but the CSRF token and the form id) and the county day; forms that
move an item from one state to the next also carry the item's version (a hidden ``seen`` field),
so the same words on a later round are a new action. The first submission claims the key, runs,
and records where it redirected; a replay (double tap, retry, Back-and-resubmit) is sent there
instead of acting again, and a concurrent duplicate waits briefly for the first to finish.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import date, datetime

import sqlalchemy as sa
from starlette.datastructures import FormData, UploadFile

from projections.base import utc_text
from services.kernel.principal import Principal
from services.web.session import web_submissions

UNKEYED = {"csrf_token", "form_id"}
WAIT_S = 5.0


def form_key(principal: Principal, path: str, form: FormData, day: date) -> str:
    fields = sorted((k, v if isinstance(v, str) else _file_digest(v)) for k, v in form.multi_items()
                    if k not in UNKEYED)
    text = json.dumps([principal.agency, principal.role, path, day.isoformat(), fields], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_digest(upload: UploadFile) -> str:
    """A chosen file keys the submission by its bytes: the same words with another photo are
    another report."""
    digest = hashlib.sha256()
    upload.file.seek(0)
    for chunk in iter(lambda: upload.file.read(1 << 20), b""):
        digest.update(chunk)
    upload.file.seek(0)
    return f"file:{digest.hexdigest()}"


def submit_once(engine: sa.Engine, principal: Principal, key: str, now: datetime,
                act: Callable[[], str | None]) -> str | None:
    """Runs ``act`` (which returns the URL to redirect to, or None when the form failed and is
    shown again) unless this key already ran; then returns the first run's URL."""
    t = web_submissions.c
    with engine.connect() as conn:
        prior = conn.execute(sa.select(t.result_url).where(t.form_key == key)).first()
    claimed = False
    if prior is None:
        try:
            with engine.begin() as conn:
                conn.execute(web_submissions.insert().values(form_key=key, agency=principal.agency, result_url=None,
                                                             created_at=utc_text(now)))
            claimed = True
        except sa.exc.IntegrityError:
            pass  # another request claimed it a moment ago
    if not claimed:
        return _first_result(engine, key)
    try:
        url = act()
    except BaseException:
        _release(engine, key)
        raise
    if url is None:
        _release(engine, key)
        return None
    with engine.begin() as conn:
        conn.execute(web_submissions.update().where(t.form_key == key).values(result_url=url))
    return url


def _first_result(engine: sa.Engine, key: str) -> str | None:
    t = web_submissions.c
    deadline = time.monotonic() + WAIT_S
    while True:
        with engine.connect() as conn:
            row = conn.execute(sa.select(t.result_url).where(t.form_key == key)).first()
        if row is None:  # the first one failed and released the key: show the page afresh
            return ""
        if row[0] is not None or time.monotonic() > deadline:
            return row[0] or ""
        time.sleep(0.1)


def _release(engine: sa.Engine, key: str) -> None:
    with engine.begin() as conn:
        conn.execute(web_submissions.delete().where(web_submissions.c.form_key == key,
                                                    web_submissions.c.result_url.is_(None)))
