"""Excel out: every exported workbook opened with openpyxl and checked against the API's JSON
of the same table (headers, types, values), the title row (county, table, data date), the
frozen header, CSV with a BOM, and the Accept header as the other way to ask."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

import openpyxl
import pytest

from services.documents.sheets import XLSX_MEDIA_TYPE
from services.platform import Platform
from tests.conftest import Api
from tests.test_brief import demo  # noqa: F401  (module fixture: a county demo year on SQLite)

COUNTY = "苏尼特左旗"


@pytest.fixture(scope="module")
def api(demo: Platform) -> Api:  # noqa: F811
    return Api(demo)


def workbook(body: bytes) -> Any:
    return openpyxl.load_workbook(io.BytesIO(body))


def sheet_rows(ws: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
    rows = list(ws.iter_rows(values_only=True))
    return list(rows[1]), rows[2:]


def as_date(value: str | None) -> datetime | None:
    return None if value is None else datetime.combine(date.fromisoformat(value[:10]), datetime.min.time())


def test_the_ledger_workbook_matches_its_json(api: Api) -> None:
    lead = api.as_("education", "lead")
    url = "/api/v1/agencies/public-security/ledger?period=2024"
    data = api.client.get(url, headers=lead).json()
    r = api.client.get(url, headers={**lead, "Accept": XLSX_MEDIA_TYPE})
    assert r.status_code == 200 and r.headers["content-type"] == XLSX_MEDIA_TYPE
    assert "attachment" in r.headers["content-disposition"]
    wb = workbook(r.content)
    assert wb.sheetnames == ["责任台账", "整改情况"]
    ws = wb["责任台账"]
    title = ws["A1"].value
    assert COUNTY in title and "旗公安局责任台账" in title and f"数据截至{data['as_of']}" in title
    assert ws.freeze_panes == "A3"
    header, rows = sheet_rows(ws)
    assert header == ["职责编号", "职责", "适用学校", "履职次数", "发现问题", "覆盖学校", "应覆盖学校", "覆盖率",
                      "最近履职日期", "责任盲区"]
    assert len(rows) == len(data["duties"]) > 0
    for row, duty in zip(rows, data["duties"], strict=True):
        assert row[0] == duty["duty_code"] and row[1] == duty["text"]
        assert isinstance(row[3], int) and row[3] == duty["performed_count"]
        assert row[8] == as_date(duty["last_performed_on"])  # a real date, not text
        if duty["coverage_ratio"] is not None:
            assert row[7] == pytest.approx(duty["coverage_ratio"])
    assert ws.cell(3, 8).number_format == "0.0%" and ws.cell(3, 9).number_format == "yyyy-mm-dd"
    assert ws.column_dimensions["B"].width > ws.column_dimensions["D"].width  # sized to content
    _, stats = sheet_rows(wb["整改情况"])
    assert stats[0][0] == data["rectifications"]["open"] and stats[0][1] == data["rectifications"]["overdue"]
    # ?format=json (and no format at all) is the JSON it always was
    assert api.client.get(url + "&format=json", headers=lead).json() == data


def test_the_board_workbook_holds_every_filtered_item(api: Api) -> None:
    lead = api.as_("education", "lead")
    items = api.client.get("/api/v1/rectifications?overdue=true&limit=500", headers=lead).json()["items"]
    assert items
    r = api.client.get("/api/v1/rectifications?overdue=true&limit=1&format=xlsx", headers=lead)
    assert r.status_code == 200
    ws = workbook(r.content)["整改台账"]
    assert "逾期：是" in ws["A1"].value and COUNTY in ws["A1"].value
    header, rows = sheet_rows(ws)
    col = {h: i for i, h in enumerate(header)}
    assert len(rows) == len(items)  # every item the filter chose, not one page
    by_id = {row[col["编号"]]: row for row in rows}
    for it in items:
        row = by_id[it["id"]]
        assert row[col["整改时限"]] == as_date(it["deadline"])
        assert row[col["逾期天数"]] == it["days_overdue"] and isinstance(row[col["逾期天数"]], int)
        assert row[col["状态"]] in ("整改中", "已交办", "回头看（重新整改）", "已上报")
        assert not row[col["学校"]].startswith("S0")  # a school name, not its code


def test_the_review_workbook_and_csv(api: Api) -> None:
    auditor = api.as_("education", "auditor")
    data = api.client.get("/api/v1/reviews/2024?rules=review-2025.v1", headers=auditor).json()
    r = api.client.get("/api/v1/reviews/2024?rules=review-2025.v1&format=xlsx", headers=auditor)
    assert r.status_code == 200, r.text
    wb = workbook(r.content)
    assert wb.sheetnames == ["考核排名", "条款得分", "计分事项"]
    header, rows = sheet_rows(wb["考核排名"])
    assert header == ["名次", "单位", "得分", "履职得分", "扣分"]
    assert [(row[0], row[1], row[2]) for row in rows] == [(u["rank"], u["name"], pytest.approx(u["score"]))
                                                         for u in data["units"]]
    _, clauses = sheet_rows(wb["条款得分"])
    assert len(clauses) == sum(len(u["clauses"]) for u in data["units"])
    assert all(isinstance(row[5], float | int) for row in clauses)
    text = api.client.get("/api/v1/reviews/2024?rules=review-2025.v1&format=csv", headers=auditor)
    assert text.headers["content-type"].startswith("text/csv")
    assert text.content.startswith(b"\xef\xbb\xbf")  # Excel opens Chinese CSV correctly only with the BOM
    parsed = list(csv.reader(io.StringIO(text.content.decode("utf-8-sig"))))
    assert parsed[0][:3] == ["名次", "单位", "条款"] and len(parsed) - 1 == len(clauses)
    assert parsed[1][1] == data["units"][0]["name"]


def test_text_a_worksheet_cannot_hold_is_cleaned_not_a_500() -> None:
    from services.documents.sheets import Column, Table, csv_bytes, xlsx

    table = Table("表", "控制\x07字符", [Column("名称"), Column("日期", "date")], [["灭火器\x1b过期", "2025-06-01"]])
    ws = workbook(xlsx([table], county=COUNTY, data_date="2025-06-30")).active
    assert ws["A1"].value == f"{COUNTY} 控制字符（数据截至2025-06-30）"
    assert ws["A3"].value == "灭火器过期" and ws["B3"].value == datetime(2025, 6, 1)
    assert csv_bytes(table).decode("utf-8-sig").splitlines() == ["名称,日期", "灭火器过期,2025-06-01"]


def test_the_compliance_workbook_holds_every_cell_and_the_rates(api: Api) -> None:
    lead = api.as_("education", "lead")
    url = "/api/v1/compliance?year=2024&status=missing"
    data = api.client.get(url + "&limit=500", headers=lead).json()
    assert 0 < data["total"] <= 500
    r = api.client.get(url + "&limit=1&format=xlsx", headers=lead)
    assert r.status_code == 200, r.text
    wb = workbook(r.content)
    assert wb.sheetnames == ["台账矩阵", "按类别", "按乡镇", "按责任单位", "合计"]
    ws = wb["台账矩阵"]
    assert "状态：缺报" in ws["A1"].value and f"数据截至{data['as_of']}" in ws["A1"].value
    header, rows = sheet_rows(ws)
    col = {h: i for i, h in enumerate(header)}
    assert len(rows) == data["total"]  # every matched cell, not one page
    by_key = {(row[col["学校代码"]], row[col["类别代码"]], row[col["周期"]]): row for row in rows}
    for cell in data["items"]:
        row = by_key[(cell["school_id"], cell["kind"], cell["period"])]
        assert row[col["状态"]] == "缺报" and row[col["乡镇"]] == cell["town"]
        assert row[col["应报日期"]] == as_date(cell["due_on"])
        assert row[col["记录数"]] == cell["records"] and isinstance(row[col["记录数"]], int)
        assert not row[col["学校"]].startswith("S0") and row[col["台账类别"]] != cell["kind"]
    _, kinds = sheet_rows(wb["按类别"])
    assert len(kinds) == len(data["rates"]["by_kind"])
    assert sum(row[3] for row in kinds) == data["rates"]["overall"]["missing"]  # 缺报 column, a number
    _, total = sheet_rows(wb["合计"])
    overall = data["rates"]["overall"]
    assert total[0][5] == overall["due"] and total[0][6] == pytest.approx(overall["on_time_rate"])
    assert wb["合计"].cell(3, 7).number_format == "0.0%"


def test_the_targets_workbook_has_a_row_per_target_and_scope(api: Api) -> None:
    auditor = api.as_("education", "auditor")
    data = api.client.get("/api/v1/targets?year=2024", headers=auditor).json()
    r = api.client.get("/api/v1/targets?year=2024", headers={**auditor, "Accept": XLSX_MEDIA_TYPE})
    assert r.status_code == 200
    wb = workbook(r.content)
    assert wb.sheetnames == ["目标进度", "月末值"]
    header, rows = sheet_rows(wb["目标进度"])
    assert header[:6] == ["指标", "范围", "当前值", "目标值", "差距", "达标"]
    assert len(rows) == sum(1 + len(t["towns"]) for t in data["targets"])
    county_rows = [row for row in rows if row[1] == COUNTY]
    assert [row[-1] for row in county_rows] == [t["code"] for t in data["targets"]]
    for row, t in zip(county_rows, data["targets"], strict=True):
        fig = t["county"]
        assert row[2] == (pytest.approx(fig["value"]) if fig.get("value") is not None else None)
        assert row[5] == {True: "是", False: "否"}.get(fig.get("met"))
    months_header, months = sheet_rows(wb["月末值"])
    assert months_header[2] == "2024-01" and len(months) == len(rows)
    first = data["targets"][0]["county"]["trend"]
    assert months[0][2:] == tuple(None if v is None else pytest.approx(v) for v in first.values())


def test_the_campaign_workbook_and_csv(api: Api) -> None:
    lead = api.as_("education", "lead")
    campaign = api.client.get("/api/v1/campaigns?year=2024", headers=lead).json()[0]
    url = f"/api/v1/campaigns/{campaign['campaign_id']}/matrix"
    cells = api.client.get(url, headers=lead).json()
    wb = workbook(api.client.get(url + "?format=xlsx", headers=lead).content)
    assert wb.sheetnames == ["阶段进度", "进度矩阵"]
    _, phases = sheet_rows(wb["阶段进度"])
    assert [(row[0], row[4], row[5], row[7]) for row in phases] == [
        (p["name"], p["schools"], p["on_time"], p["missed"]) for p in campaign["phase_status"]]
    assert phases[0][2] == as_date(campaign["phase_status"][0]["deadline"])
    header, rows = sheet_rows(wb["进度矩阵"])
    assert header == ["阶段", "学校", "整治内容", "结果", "问题数", "日期", "依据事件"]
    assert len(rows) == len(cells)
    by_event: dict[str, list[int]] = {}
    for c in cells:
        by_event.setdefault(c["event_id"], []).append(c["problems"])
    assert sorted(row[4] for row in rows) == sorted(c["problems"] for c in cells)
    assert any(row[3] == "发现问题" for row in rows)
    for row in rows:  # the result names what the event found, a number of problems beside it
        assert isinstance(row[4], int) and row[4] in by_event[row[6]]
        assert row[3] == ("发现问题" if row[4] else "通过")
    text = api.client.get(url + "?format=csv", headers=lead).content.decode("utf-8-sig")
    assert len(list(csv.reader(io.StringIO(text)))) == len(cells) + 1  # CSV carries the matrix


def test_the_warning_response_workbook_by_unit_and_school(api: Api) -> None:
    lead = api.as_("education", "lead")
    for kind, first in (("unit", "单位"), ("school", "学校")):
        url = f"/api/v1/warning-response?kind={kind}&from=2024-01-01&to=2024-12-31"
        data = api.client.get(url, headers=lead).json()
        ws = workbook(api.client.get(url + "&format=xlsx", headers=lead).content)["预警响应"]
        assert f"按{first}" in ws["A1"].value and "2024-01-01至2024-12-31" in ws["A1"].value
        header, rows = sheet_rows(ws)
        assert header[0] == first and len(rows) == len(data) > 0
        for row, fig in zip(rows, data, strict=True):
            assert row[-1] == fig["recipient"] and row[0] != fig["recipient"]  # a name, the code beside it
            assert row[1] == fig["received"] and isinstance(row[1], int)
            assert row[3] == pytest.approx(fig["rate"])
    # a liaison's spreadsheet holds its own unit's row only, as its JSON does
    own = workbook(api.client.get("/api/v1/warning-response?from=2024-01-01&format=xlsx",
                                  headers=api.as_("justice")).content)["预警响应"]
    assert [row[-1] for row in sheet_rows(own)[1]] == ["justice"]
