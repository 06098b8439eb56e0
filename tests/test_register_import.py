"""Excel in for hazards and school registers: the template's drop-down lists, all-or-nothing
uploads that name every bad row, partial uploads with the rows to fix, and re-uploads that
store nothing twice."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import openpyxl

from services.documents.sheets import XLSX_MEDIA_TYPE
from tests.conftest import Api, register_schools

UNIT = "fire-rescue"


def template(api: Api, path: str, headers: dict[str, str]) -> Any:
    r = api.client.get(path, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == XLSX_MEDIA_TYPE, r.text
    return openpyxl.load_workbook(io.BytesIO(r.content))


def filled(wb: Any, rows: list[list[Any]]) -> bytes:
    ws = wb.worksheets[0]
    for i, row in enumerate(rows, 3):
        for j, value in enumerate(row, 1):
            ws.cell(i, j, value)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def upload(api: Api, path: str, headers: dict[str, str], data: bytes) -> Any:
    return api.client.post(path, headers={**headers, "Content-Type": XLSX_MEDIA_TYPE}, content=data)


def options(wb: Any, column: int) -> list[str]:
    return [c.value for c in next(wb["选项"].iter_cols(min_col=column, max_col=column, min_row=2)) if c.value]


def board(api: Api) -> list[dict[str, Any]]:
    api.settle()
    r = api.client.get("/api/v1/rectifications?limit=500", headers=api.as_("education", "lead"))
    return list(r.json()["items"])


def test_hazards_round_trip(api: Api) -> None:
    register_schools(api, 3)
    api.settle()
    me = api.as_(UNIT)
    wb = template(api, "/api/v1/hazards/template", me)
    assert [c.value for c in wb.worksheets[0][2]] == ["学校", "问题类别", "等级", "问题描述", "发现日期"]
    schools, categories, severities = options(wb, 1), options(wb, 2), options(wb, 3)
    assert schools == ["测试学校1", "测试学校2", "测试学校3"] and "消防安全" in categories
    assert severities == ["一般", "较大", "重大"]
    rows = [[schools[i % 3], "消防安全", "一般", f"灭火器过期{i}", date(2025, 6, 1 + i)] for i in range(5)]
    data = filled(wb, rows)
    first = upload(api, "/api/v1/hazards/import", me, data)
    assert first.status_code == 200, first.text
    assert first.json() | {"errors": []} == {"rows": 5, "stored": 5, "already_stored": 0, "rejected": 0,
                                             "errors": []}
    items = board(api)
    assert sorted(it["description"] for it in items) == [f"灭火器过期{i}" for i in range(5)]
    assert {it["school_id"] for it in items} == {"T001", "T002", "T003"} and items[0]["category"] == "fire"
    again = upload(api, "/api/v1/hazards/import", me, data).json()
    assert again["stored"] == 0 and again["already_stored"] == 5 and len(board(api)) == 5
    # three bad rows among good ones: nothing stored, each named
    bad = filled(template(api, "/api/v1/hazards/template", me), [
        *rows[:2], ["不存在学校", "消防安全", "一般", "x", date(2025, 6, 1)],
        [schools[0], "火灾", "一般", "y", date(2025, 6, 1)], [schools[0], "消防安全", "一般", "", "昨天"]])
    refused = upload(api, "/api/v1/hazards/import", me, bad)
    assert refused.status_code == 422 and refused.json()["detail"] == "3行有误，未导入任何记录"
    named = {(e["row"], e["column"]) for e in refused.json()["errors"]}
    assert named == {(5, "学校"), (6, "问题类别"), (7, "问题描述"), (7, "发现日期")}
    assert len(board(api)) == 5
    fix = upload(api, "/api/v1/hazards/import?partial=true&format=xlsx", me, bad)
    assert fix.status_code == 200
    to_fix = list(openpyxl.load_workbook(io.BytesIO(fix.content)).worksheets[0].iter_rows(min_row=3, values_only=True))
    assert [r[5] for r in to_fix] == [5, 6, 7] and "不是在册学校" in to_fix[0][6]
    assert len(board(api)) == 5  # rows 3 and 4 are the first file's rows 3 and 4: already stored


def test_a_reader_gets_no_hazard_template_and_a_non_template_is_refused(api: Api) -> None:
    assert api.client.get("/api/v1/hazards/template", headers=api.as_("education", "auditor")).status_code == 403
    r = upload(api, "/api/v1/hazards/import", api.as_(UNIT), b"not a workbook")
    assert r.status_code == 422 and "不是有效的Excel" in r.json()["detail"]
    duty_template = api.client.get("/api/v1/duty-logs/template", headers=api.as_(UNIT)).content
    wrong = upload(api, "/api/v1/hazards/import", api.as_(UNIT), duty_template)
    assert wrong.status_code == 422 and "第2行应为表头" in wrong.json()["detail"]


def test_school_register_round_trip(api: Api) -> None:
    lead = api.as_("education", "lead")
    assert api.client.get("/api/v1/schools/template", headers=api.as_(UNIT)).status_code == 403
    wb = template(api, "/api/v1/schools/template", lead)
    assert [c.value for c in wb.worksheets[0][2]] == ["学校代码", "学校名称", "乡镇", "学段", "寄宿", "食堂", "校车"]
    assert options(wb, 1) == ["幼儿园", "小学", "初中", "高中", "职业学校"]
    rows = [["X001", "满都拉图镇第一小学", "满都拉图镇", "小学", "否", "是", "是"],
            ["X002", "满都拉图镇中学", "满都拉图镇", "初中", "是", "是", "否"],
            [3, "巴彦淖尔镇幼儿园", "巴彦淖尔镇", "kindergarten", None, "否", "否"]]
    data = filled(wb, rows)
    first = upload(api, "/api/v1/schools/import", lead, data)
    assert first.status_code == 200 and first.json()["stored"] == 3, first.text
    api.settle()
    listed = {s["id"]: s for s in api.client.get("/api/v1/schools", headers=lead).json()["items"]}
    assert listed["X002"]["name"] == "满都拉图镇中学" and listed["X002"]["boarding"] is True
    assert listed["3"]["kind"] == "kindergarten" and listed["3"]["boarding"] is False
    again = upload(api, "/api/v1/schools/import", lead, data).json()
    assert again["stored"] == 0 and again["already_stored"] == 3
    changed = filled(template(api, "/api/v1/schools/template", lead), [
        ["X001", "满都拉图镇第二小学", "满都拉图镇", "小学", "否", "是", "是"],  # a registered code, other details
        ["X009", "新学校", "满都拉图镇", "大学", "否", "也许", "否"],
        ["X009", "新学校", "满都拉图镇", "小学", "否", "否", "否"],
        ["X010", "新学校十", "满都拉图镇", "小学", "否", "否", "否"]])
    refused = upload(api, "/api/v1/schools/import", lead, changed)
    assert refused.status_code == 422
    named = {(e["row"], e["column"]) for e in refused.json()["errors"]}
    assert named == {(3, "学校代码"), (4, "学段"), (4, "食堂"), (5, "学校代码")}
    assert "已登记为“满都拉图镇第一小学”" in next(e["reason"] for e in refused.json()["errors"] if e["row"] == 3)
    api.settle()
    ids = {s["id"] for s in api.client.get("/api/v1/schools", headers=lead).json()["items"]}
    assert "X010" not in ids  # all or nothing
    partial = upload(api, "/api/v1/schools/import?partial=true", lead, changed).json()
    assert partial["stored"] == 1 and partial["rejected"] == 3
