"""The pages' spreadsheets: 下载Excel on the ledger, the board (with its filters) and the
review give the API's workbook; the duty-log upload form answers with the per-row report in
Chinese, stores nothing from a file with bad rows, and stores a file once."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import openpyxl

from services.documents.sheets import XLSX_MEDIA_TYPE
from tests.conftest import Api, register_schools
from tests.test_web_pages import _CSRF, Browser

UNIT = "fire-rescue"


def workbook(body: bytes) -> Any:
    return openpyxl.load_workbook(io.BytesIO(body))


def test_download_buttons_give_the_apis_workbooks(sqlite_api: Api) -> None:
    api = sqlite_api
    register_schools(api, 2)
    api.settle()
    me = Browser(api, UNIT)
    page = me.client.get(f"/units/{UNIT}?period=2025-Q2")
    assert f'href="/units/{UNIT}/ledger.xlsx?period=2025-Q2"' in page.text and "从Excel导入" in page.text
    r = me.client.get(f"/units/{UNIT}/ledger.xlsx?period=2025-Q2")
    assert r.status_code == 200 and r.headers["content-type"] == XLSX_MEDIA_TYPE
    from_api = api.client.get(f"/api/v1/agencies/{UNIT}/ledger?period=2025-Q2&format=xlsx", headers=api.as_(UNIT))
    assert [list(row) for row in workbook(r.content)["责任台账"].iter_rows(values_only=True)] == \
        [list(row) for row in workbook(from_api.content)["责任台账"].iter_rows(values_only=True)]
    assert me.client.get("/units/public-security/ledger.xlsx").status_code == 403
    assert "统计期" in me.client.get(f"/units/{UNIT}/ledger.xlsx?period=2025-X9").text

    r = api.client.post("/api/v1/duty-logs", headers=api.as_(UNIT), json={
        "duty_code": "fire-rescue.inspection", "school_ids": ["T001"], "occurred_on": "2025-06-01",
        "summary": "消防安全检查"})
    assert r.status_code == 201, r.text  # the review ranks a county that has a duty record
    api.settle()
    lead = Browser(api, "education", "lead")
    board = lead.client.get("/rectifications?severity=major&overdue=yes")
    assert 'href="/rectifications.xlsx?overdue=yes&amp;severity=major"' in board.text
    sheet = workbook(lead.client.get("/rectifications.xlsx?overdue=yes&severity=major").content)["整改台账"]
    assert "逾期：是" in sheet["A1"].value and "等级：较大" in sheet["A1"].value
    assert 'href="/review/2025.xlsx"' in lead.client.get("/review?year=2025").text
    review = lead.client.get("/review/2025.xlsx")
    assert review.status_code == 200 and workbook(review.content).sheetnames[0] == "考核排名"


def upload(b: Browser, data: bytes, partial: bool = False) -> Any:
    csrf = _CSRF.search(b.client.get(f"/units/{UNIT}/import").text)
    assert csrf is not None
    form = {"csrf_token": csrf.group(1), **({"partial": "1"} if partial else {})}
    return b.client.post(f"/units/{UNIT}/import", data=form,
                         files={"file": ("台账.xlsx", data, "application/octet-stream")})


def performed(api: Api) -> int:
    api.settle()
    ledger = api.client.get(f"/api/v1/agencies/{UNIT}/ledger?period=2025", headers=api.as_(UNIT)).json()
    return sum(d["performed_count"] for d in ledger["duties"])


def test_the_upload_form_reports_each_row_in_chinese(sqlite_api: Api) -> None:
    api = sqlite_api
    register_schools(api, 2)
    api.settle()
    me = Browser(api, UNIT)
    form = me.client.get(f"/units/{UNIT}/import")
    assert 'enctype="multipart/form-data"' in form.text and f"/units/{UNIT}/import/template.xlsx" in form.text
    wb = workbook(me.client.get(f"/units/{UNIT}/import/template.xlsx").content)
    duty, school = wb["选项"].cell(2, 1).value, wb["选项"].cell(2, 2).value
    ws = wb.worksheets[0]
    ws.append([duty, date(2025, 5, 6), school, "检查消防设施", 0, None])
    ws.append([duty, "五月", school, "检查", 0, None])
    ws.append(["不是职责", date(2025, 5, 7), school, "检查", 0, None])
    out = io.BytesIO()
    wb.save(out)
    refused = upload(me, out.getvalue())
    assert refused.status_code == 422
    assert "2行有误，未导入任何记录" in refused.text
    assert "第4行" in refused.text and "发生日期" in refused.text and "第5行" in refused.text
    assert performed(api) == 0
    stored = upload(me, out.getvalue(), partial=True)
    assert stored.status_code == 200 and "新导入1行" in stored.text and performed(api) == 1
    again = upload(me, out.getvalue(), partial=True)
    assert "此前已导入1行" in again.text and performed(api) == 1
    assert "不是有效的Excel" in upload(me, b"hello").text
    other = Browser(api, "public-security")
    assert other.client.get(f"/units/{UNIT}/import").status_code == 403


def test_the_warnings_page_downloads_the_apis_workbook_and_the_form_imports_hazards_and_schools(
        sqlite_api: Api) -> None:
    api = sqlite_api
    register_schools(api, 2)
    api.settle()
    lead = Browser(api, "education", "lead")
    page = lead.client.get("/warnings")
    assert 'href="/warnings.xlsx?kind=unit"' in page.text
    r = lead.client.get("/warnings.xlsx?kind=school")
    from_api = api.client.get("/api/v1/warning-response?kind=school&format=xlsx", headers=api.as_("education", "lead"))
    assert r.status_code == 200 and r.headers["content-type"] == XLSX_MEDIA_TYPE
    assert [list(x) for x in workbook(r.content).active.iter_rows(values_only=True)] == \
        [list(x) for x in workbook(from_api.content).active.iter_rows(values_only=True)]
    assert Browser(api, UNIT).client.get("/warnings.xlsx").status_code == 403  # a liaison reads its own unit only

    # The same form takes a hazard register and a school register, each with its own template.
    for kind, label in (("hazards", "隐患"), ("schools", "学校名册")):
        form = lead.client.get(f"/units/education/import?kind={kind}")
        assert form.status_code == 200 and f"从Excel导入{label}" in form.text
        template = lead.client.get(f"/units/education/import/template.xlsx?kind={kind}")
        assert template.status_code == 200 and template.headers["content-type"] == XLSX_MEDIA_TYPE
        token = _CSRF.search(form.text).group(1)  # type: ignore[union-attr]
        empty = lead.client.post(f"/units/education/import?kind={kind}", data={"csrf_token": token},
                                 files={"file": ("x.xlsx", template.content, XLSX_MEDIA_TYPE)})
        assert empty.status_code in (200, 422) and f"导入{label}" in empty.text
    assert lead.client.get("/units/education/import?kind=passwords").status_code == 404
