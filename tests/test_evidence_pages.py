"""Evidence on the pages through the TestClient (SQLite): the duty-log and hazard forms take
files; a refused file comes back as the field's Chinese message and records nothing; the same
words with another photo are another submission; /evidence/... needs a session and follows the
API's access rule."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from tests.conftest import Api, register_schools
from tests.evidence_fixtures import metadata_of, photo_with_gps
from tests.test_web_pages import Browser

LIAISON, OTHER = "fire-rescue", "public-security"


def _post_files(b: Browser, path: str, data: dict[str, Any], files: list[tuple[str, bytes]],
                form_page: str) -> Any:
    return b.client.post(path, data={"csrf_token": b.csrf(form_page), **data},
                         files=[("evidence_files", (name, data, "application/octet-stream")) for name, data in files])


def _hazard(n: int) -> dict[str, str]:
    return {"school_id": "T001", "category": "fire", "severity": "major", "description": f"配电箱线路裸露 #{n}",
            "found_on": "2025-06-28"}


def test_forms_take_photos_and_evidence_urls_follow_the_access_rule(sqlite_api: Api) -> None:
    api = sqlite_api
    register_schools(api)
    liaison, other, lead = Browser(api, LIAISON), Browser(api, OTHER), Browser(api, "education", "lead")
    form = f"/units/{LIAISON}/hazards/new"
    head = api.platform.app.recorder.max_notification_id()

    # A renamed executable is refused beside the file field; nothing is recorded.
    r = _post_files(liaison, form, _hazard(1), [("照片.jpg", b"MZ\x90\x00" + bytes(500))], form)
    assert r.status_code == 422 and "不接受此类文件" in r.text and 'id="evidence_files-error"' in r.text
    assert api.platform.app.recorder.max_notification_id() == head

    r = _post_files(liaison, form, _hazard(2), [("照片.jpg", photo_with_gps("red"))], form)
    assert r.status_code == 303, r.text
    # The same words with another photo are another report, not a replay of the first.
    r = _post_files(liaison, form, _hazard(2), [("照片.jpg", photo_with_gps("green"))], form)
    assert r.status_code == 303, re.findall(r'class="(?:error|notice bad)"[^>]*>([^<]*)', r.text)
    api.settle()
    with api.platform.read_engine.connect() as conn:
        from projections.evidence import all_uploads, references

        uploads = all_uploads(conn)
        named = references(conn)
    assert len(uploads) == 2 and all(len(named[u["digest"]]) == 1 for u in uploads)
    digest = uploads[0]["digest"]

    # The reporter and the lead open the photo on their session; another unit and no session do not.
    photo = liaison.client.get(f"/evidence/{digest}")
    assert photo.status_code == 200 and hashlib.sha256(photo.content).hexdigest() == digest
    assert metadata_of(photo.content)["gps"] == {}
    assert lead.client.get(f"/evidence/{digest}/thumbnail").status_code == 200
    refused = other.client.get(f"/evidence/{digest}")
    assert refused.status_code == 403 and "无权查看此佐证材料" in refused.text
    assert Browser(api).client.get(f"/evidence/{digest}").status_code == 303  # to the sign-in page
    assert lead.client.get(f"/evidence/{'ab' * 32}").status_code == 404

    # The board shows the hazard's thumbnail to the lead.
    board = lead.client.get("/rectifications")
    assert f'src="/evidence/{digest}/thumbnail"' in board.text

    # The duty-log form takes a document too.
    log = f"/units/{LIAISON}/log"
    page = liaison.client.get(log).text
    form_id = re.search(r'name="form_id" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    pdf = b"%PDF-1.4\n%%EOF\n"
    r = _post_files(liaison, log, {"duty_code": "fire-rescue.inspection", "occurred_on": "2025-06-29",
                                   "school_ids": "T001", "summary": "消防检查并附检查记录", "form_id": form_id},
                    [("检查记录.pdf", pdf)], log)
    assert r.status_code == 303, r.text
    api.settle()
    with api.platform.read_engine.connect() as conn:
        assert [n["event_type"] for n in references(conn)[hashlib.sha256(pdf).hexdigest()]] == ["DutyPerformed"]


def test_the_reviews_evidence_page_shows_the_photos_of_the_events_behind_a_line(sqlite_api: Api) -> None:
    api = sqlite_api
    register_schools(api)
    r = api.client.post("/api/v1/evidence", headers=api.as_(LIAISON),
                        files=[("files", ("检查.jpg", photo_with_gps("red"), "image/jpeg"))])
    ref = r.json()["files"][0]
    r = api.client.post("/api/v1/duty-logs", headers=api.as_(LIAISON), json={
        "duty_code": "fire-rescue.inspection", "school_ids": ["T001"], "occurred_on": "2025-06-01",
        "summary": "消防安全检查", "evidence": [ref["ref"]]})
    assert r.status_code == 201, r.text
    record = r.json()["id"]
    api.settle()
    review = api.client.get(f"/api/v1/reviews/2025/units/{LIAISON}", headers=api.as_("education", "lead"))
    assert review.status_code == 200, review.text
    line = next((c["clause"], i["item"]) for c in review.json()["unit"]["clauses"] for i in c["items"]
                if record in i.get("event_ids", []))
    page = Browser(api, "education", "lead").client.get(
        f"/review/2025/units/{LIAISON}/evidence?clause={line[0]}&item={line[1]}")
    assert page.status_code == 200, page.text
    assert f'src="/evidence/{ref["digest"]}/thumbnail"' in page.text
