"""Excel in for duty logs: download the unit's template, fill 200 rows, upload, and find 200
DutyPerformed events and the ledger updated; upload again and find none added; a file with
three bad rows stores nothing and names the three rows; partial=true stores the good rows and
returns the bad ones as a workbook to fix."""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

import openpyxl

from services.documents.sheets import XLSX_MEDIA_TYPE
from tests.conftest import Api

UNIT = "market-supervision"
SCHOOLS = [(f"S{i:03d}", f"第{i}中心小学") for i in range(1, 6)]


def setup_schools(api: Api) -> None:
    lead = api.as_("education", "lead")
    for sid, name in SCHOOLS:
        r = api.client.post("/api/v1/schools", headers=lead, json={"id": sid, "name": name, "town": "满都拉图镇",
                                                                    "kind": "primary", "canteen": True})
        assert r.status_code == 201, r.text
    api.settle()


def template(api: Api) -> Any:
    r = api.client.get("/api/v1/duty-logs/template", headers=api.as_(UNIT))
    assert r.status_code == 200 and r.headers["content-type"] == XLSX_MEDIA_TYPE
    return openpyxl.load_workbook(io.BytesIO(r.content))


def filled(wb: Any, rows: list[list[Any]]) -> bytes:
    ws = wb.worksheets[0]
    for i, row in enumerate(rows, 3):
        for j, value in enumerate(row, 1):
            ws.cell(i, j, value)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def upload(api: Api, data: bytes, query: str = "") -> Any:
    headers = {**api.as_(UNIT), "Content-Type": XLSX_MEDIA_TYPE}
    return api.client.post(f"/api/v1/duty-logs/import{query}", headers=headers, content=data)


def duty_events(api: Api) -> int:
    rec = api.platform.app.recorder
    return sum(1 for n in rec.select_notifications(start=1, limit=100_000) if n.topic.endswith("DutyPerformed"))


def performed(api: Api) -> int:
    ledger = api.client.get(f"/api/v1/agencies/{UNIT}/ledger?period=2025", headers=api.as_(UNIT)).json()
    return sum(d["performed_count"] for d in ledger["duties"])


def test_template_round_trip_is_idempotent_and_all_or_nothing(api: Api) -> None:
    setup_schools(api)
    wb = template(api)
    ws = wb.worksheets[0]
    assert [c.value for c in ws[2]] == ["职责", "发生日期", "学校", "情况说明", "发现问题数", "问题描述"]
    options = wb["选项"]
    assert options.sheet_state == "hidden"
    duty_texts = [c.value for c in next(options.iter_cols(min_col=1, max_col=1, min_row=2))]
    school_names = [c.value for c in next(options.iter_cols(min_col=2, max_col=2, min_row=2))]
    assert duty_texts and set(school_names) == {n for _, n in SCHOOLS}
    assert {str(dv.sqref).split(":")[0] for dv in ws.data_validations.dataValidation} == {"A3", "C3"}

    start = date(2025, 3, 1)
    rows = [[duty_texts[i % len(duty_texts)], start + timedelta(days=i % 100), school_names[i % len(school_names)],
             f"第{i}次检查食堂", i % 3, "留样记录不全" if i % 3 else None] for i in range(200)]
    before_events, before_ledger = duty_events(api), performed(api)
    good = filled(wb, rows)
    r = upload(api, good)
    assert r.status_code == 200, r.text
    assert r.json() == {"rows": 200, "stored": 200, "already_stored": 0, "rejected": 0, "errors": []}
    api.settle()
    assert duty_events(api) == before_events + 200
    assert performed(api) == before_ledger + 200

    again = upload(api, good)
    assert again.status_code == 200 and again.json()["stored"] == 0 and again.json()["already_stored"] == 200
    api.settle()
    assert duty_events(api) == before_events + 200 and performed(api) == before_ledger + 200

    # three bad rows (file rows 5, 50 and 120): nothing stored, each named with column and reason
    bad_rows = [list(r) for r in rows]
    bad_rows[2][0] = "不存在的职责"
    bad_rows[47][1] = "2025年13月1日"
    bad_rows[117][2] = "查无此校"
    bad = filled(template(api), [[*r[:3], r[3] + "（补）", *r[4:]] for r in bad_rows])
    r = upload(api, bad)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(5, "职责"), (50, "发生日期"), (120, "学校")]
    assert body["errors"][2]["text"].startswith("第120行“学校”：“查无此校”不是在册学校")
    assert "3行有误" in body["detail"]
    api.settle()
    assert duty_events(api) == before_events + 200

    # when asked, the good 197 rows go in and the three come back as a workbook to fix
    fix = upload(api, bad, "?partial=true&format=xlsx")
    assert fix.status_code == 200 and fix.headers["content-type"] == XLSX_MEDIA_TYPE
    left = list(openpyxl.load_workbook(io.BytesIO(fix.content)).worksheets[0].iter_rows(min_row=3, values_only=True))
    assert [row[6] for row in left] == [5, 50, 120] and "不是在册学校" in left[2][7]
    api.settle()
    assert duty_events(api) == before_events + 397


def test_a_file_that_is_not_a_template_gets_one_chinese_line(api: Api) -> None:
    r = upload(api, b"not a workbook")
    assert r.status_code == 422 and "不是有效的Excel工作簿" in r.json()["detail"]
    wb = openpyxl.Workbook()
    wb.active.append(["标题"])
    wb.active.append(["单位", "日期"])
    out = io.BytesIO()
    wb.save(out)
    r = upload(api, out.getvalue())
    assert r.status_code == 422 and "第2行应为表头" in r.json()["detail"]
    assert api.client.post("/api/v1/duty-logs/import", headers=api.as_(UNIT, "auditor"),
                           content=out.getvalue()).status_code == 403


def test_a_row_in_the_seeds_wording_names_its_duty(api: Api) -> None:
    """A template filled before the catalogue's texts were normalised (the seed's half-width
    punctuation) still names the duty it meant."""
    from contracts.catalogue import default_catalogue

    setup_schools(api)
    duty = next(d for d in default_catalogue().unit(UNIT).duties if d.text != d.text_verbatim)
    assert "," in duty.text_verbatim and "，" in duty.text
    r = upload(api, filled(template(api), [[duty.text_verbatim, date(2025, 3, 1), SCHOOLS[0][1], "检查", 0, None]]))
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    api.settle()
    stored = [n for n in api.platform.app.recorder.select_notifications(start=1, limit=100_000)
              if n.topic.endswith("DutyPerformed")]
    assert len(stored) == 1 and duty.code.encode() in stored[0].state
