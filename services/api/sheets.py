"""Spreadsheet answers (XLSX, CSV) from the same endpoints that answer JSON.

A client asks with ``?format=xlsx`` / ``?format=csv`` or with an ``Accept`` header naming the
spreadsheet media type; the endpoint computes the same rows it would return as JSON and this
module turns them into documents/sheets.Table objects (Chinese headers, names not codes, typed
values). The CLI (``lianxi export``) and the pages' download buttons go through the same
builders, so every way out shows the same table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import Query, Request, Response

from projections.catalogue_view import list_agencies, list_schools
from services.documents import labels
from services.documents.sheets import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, Column, Table, csv_bytes, xlsx

__all__ = ["XLSX_MEDIA_TYPE", "FormatQ", "SheetFormat", "sheet_format", "sheet_response"]
from services.settings import get_settings

SheetFormat = Literal["xlsx", "csv"]
FormatQ = Annotated[Literal["json", "xlsx", "csv"] | None,
                    Query(description="json (default) | xlsx | csv; or ask with an Accept header")]


def sheet_format(request: Request, format: FormatQ = None) -> SheetFormat | None:
    """xlsx or csv when the query or the Accept header asks for a spreadsheet, else None (JSON)."""
    if format in ("xlsx", "csv"):
        return format
    if format == "json":
        return None
    accept = request.headers.get("accept", "")
    if XLSX_MEDIA_TYPE in accept:
        return "xlsx"
    if "text/csv" in accept:
        return "csv"
    return None


def sheet_response(tables: Sequence[Table], fmt: SheetFormat, filename: str, data_date: str,
                   csv_table: int = 0, template_rows: int = 0) -> Response:
    """The workbook (every table) or the CSV (one table: ``csv_table``) as an attachment."""
    if fmt == "xlsx":
        county = get_settings().county_name
        body = xlsx(tables, county=county, data_date=data_date, template_rows=template_rows)
        media, ext = XLSX_MEDIA_TYPE, "xlsx"
    else:
        body, media, ext = csv_bytes(tables[csv_table]), CSV_MEDIA_TYPE, "csv"
    name = f"{filename}.{ext}"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


def catalogue_names(conn: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Unit and school names by code: a spreadsheet shows names, a code column keeps the key."""
    units = {a["code"]: a["name"] for a in list_agencies(conn)}
    schools = {s["school_id"]: s["name"] for s in list_schools(conn, after=None, limit=100_000)}
    return units, schools


# -- the tables people read --------------------------------------------------------------------

def ledger_tables(ledger: dict[str, Any], unit_name: str) -> list[Table]:
    """A unit's 责任台账: one row per duty, then its rectification figures."""
    period = f"{ledger['period_start']}至{ledger['period_end']}"
    duties = Table("责任台账", f"{unit_name}责任台账 {period}", [
        Column("职责编号"), Column("职责"), Column("适用学校"), Column("履职次数", "int"), Column("发现问题", "int"),
        Column("覆盖学校", "int"), Column("应覆盖学校", "int"), Column("覆盖率", "percent"),
        Column("最近履职日期", "date"), Column("责任盲区"),
    ], [[d["duty_code"], d["text"], labels.name_of(labels.APPLIES_TO, d["applies_to"]), d["performed_count"],
         d["findings_count"], d["schools_covered"], d["schools_applicable"], d["coverage_ratio"],
         d["last_performed_on"], "是" if d["duty_code"] in ledger["blind_spots"] else ""] for d in ledger["duties"]])
    tables = [duties]
    stats = ledger.get("rectifications")
    if stats:
        tables.append(Table("整改情况", f"{unit_name}整改情况 {period}", [
            Column("未销号", "int"), Column("逾期", "int"), Column("升级督办", "int"), Column("期内销号", "int"),
            Column("按期销号", "int"), Column("按期率", "percent"), Column("销号用时中位数（天）", "float"),
            Column("协办未销号", "int"),
        ], [[stats["open"], stats["overdue"], stats["escalated"], stats["closed"], stats["closed_on_time"],
             stats["on_time_rate"], stats["median_days_to_close"], stats["cooperating_open"]]]))
    return tables


BOARD_COLUMNS = [
    Column("学校"), Column("问题类别"), Column("等级"), Column("问题描述"), Column("发现日期", "date"),
    Column("牵头单位"), Column("配合单位"), Column("状态"), Column("整改时限", "date"), Column("整改措施"),
    Column("进度", "percent"), Column("回告日期", "date"), Column("销号日期", "date"), Column("逾期"),
    Column("逾期天数", "int"), Column("督办层级"), Column("延期次数", "int"), Column("退回次数", "int"),
    Column("整改资金（元）", "float"), Column("编号"),
]


def board_table(items: Sequence[dict[str, Any]], names: dict[str, str], schools: dict[str, str],
                filters: str) -> Table:
    """The rectification board (as the filters chose it): names for units and schools."""
    def unit(code: str) -> str:
        return names.get(code, code)

    rows = [[schools.get(it["school_id"], it["school_id"]), it["category"],
             labels.name_of(labels.SEVERITY, it["severity"]), it["description"], it["found_on"],
             unit(it["lead_unit"]) if it["lead_unit"] else "", "、".join(unit(u) for u in it["cooperating_units"]),
             labels.name_of(labels.RECT_STATUS, it["status"]), it["deadline"], "；".join(it["measures"] or []),
             None if it["progress_percent"] is None else it["progress_percent"] / 100, it["completed_on"],
             it["closed_on"], "是" if it["overdue"] else "", it["days_overdue"] or None, it["escalation_name"] or "",
             it["extensions"], it["rejections"],
             it["funds"]["amount_cny"] if it.get("funds") else None, it["id"]] for it in items]
    title = "隐患整改台账" + (f"（{filters}）" if filters else "")
    return Table("整改台账", title, BOARD_COLUMNS, rows)


def review_tables(document: dict[str, Any]) -> list[Table]:
    """The annual review: the ranking, then every unit's score per clause, then each item."""
    year = document["year"]
    ranking = Table("考核排名", f"{year}年度考核排名", [
        Column("名次", "int"), Column("单位"), Column("得分", "float"), Column("履职得分", "float"),
        Column("扣分", "float"),
    ], [[u["rank"], u["name"], u["score"], u["credit"], u["deductions"]] for u in document["units"]])
    clauses = Table("条款得分", f"{year}年度考核条款得分", [
        Column("名次", "int"), Column("单位"), Column("条款"), Column("类别"), Column("条款内容"),
        Column("得分", "float"), Column("分值", "float"), Column("计分事项", "int"),
    ], [[u["rank"], u["name"], c["clause"], "加分" if c["kind"] == "credit" else "扣分", c["text"], c["points"],
         c["max_points"], sum(1 for it in c["items"] if it["counted"])]
        for u in document["units"] for c in u["clauses"]])
    items = Table("计分事项", f"{year}年度考核计分事项", [
        Column("单位"), Column("条款"), Column("事项"), Column("分值", "float"), Column("计入"),
        Column("事件数", "int"), Column("依据事件"),
    ], [[u["name"], c["clause"], it["label"], it["points"], "是" if it["counted"] else "否", it["event_count"],
         " ".join(it["event_ids"][:20])]
        for u in document["units"] for c in u["clauses"] for it in c["items"]])
    return [ranking, clauses, items]


# -- import templates ---------------------------------------------------------------------------

DUTY_COLUMNS = ("职责", "发生日期", "学校", "情况说明", "发现问题数", "问题描述")  # duty_log/spreadsheet.COLUMNS


def duty_template_table(unit_name: str, duty_texts: Sequence[str], schools: Sequence[str]) -> Table:
    return Table("履职记录", f"{unit_name}履职记录导入模板", [
        Column("职责", choices=duty_texts, note="从下拉列表选择本单位职责"),
        Column("发生日期", "date", note="履职日期，如 2024-05-03"),
        Column("学校", choices=schools, note="从下拉列表选择；多所学校用“、”分隔；不针对学校可留空"),
        Column("情况说明", note="必填"),
        Column("发现问题数", "int", note="非负整数，默认0"),
        Column("问题描述"),
    ])


def duty_fix_table(raw: Sequence[tuple[int, list[Any]]], errors: Sequence[Any]) -> Table:
    """The rows left out, as they were, with the reasons beside them, to fix and upload again."""
    reasons: dict[int, list[str]] = {}
    for e in errors:
        reasons.setdefault(e.row, []).append(f"{e.column}：{e.reason}")
    columns = [Column("职责"), Column("发生日期"), Column("学校"), Column("情况说明"),
               Column("发现问题数"), Column("问题描述"), Column("原行号", "int"), Column("原因")]
    rows = [[*values, number, "；".join(reasons[number])] for number, values in raw if number in reasons]
    return Table("待修改", "履职记录待修改行", columns, rows)


# -- compliance, targets, campaigns, warnings -----------------------------------------------------

COMPLIANCE_STATUS = {"on_time": "按时报送", "late": "逾期报送", "missing": "缺报", "pending": "未到期"}
RATE_COLUMNS = [Column("按时", "int"), Column("逾期报送", "int"), Column("缺报", "int"), Column("未到期", "int"),
                Column("应报", "int"), Column("按时率", "percent"), Column("报送率", "percent")]


def _rate_row(rate: dict[str, Any]) -> list[Any]:
    return [rate["on_time"], rate["late"], rate["missing"], rate["pending"], rate["due"], rate["on_time_rate"],
            rate["filed_rate"]]


def compliance_tables(cells: Sequence[dict[str, Any]], rates: dict[str, Any], kinds: dict[str, str],
                      units: dict[str, str], schools: dict[str, str], filters: str) -> list[Table]:
    """The compliance matrix (one row per school x kind x period, as the filters chose it) and
    its rates per kind, town and responsible unit."""
    suffix = f"（{filters}）" if filters else ""
    matrix = Table("台账矩阵", "台账报送矩阵" + suffix, [
        Column("学校"), Column("乡镇"), Column("台账类别"), Column("周期"), Column("责任单位"),
        Column("应报日期", "date"), Column("缺报认定日期", "date"), Column("状态"), Column("记录数", "int"),
        Column("首次报送日期", "date"), Column("已提示缺报"), Column("计量值", "float"), Column("学校代码"),
        Column("类别代码"),
    ], [[schools.get(c["school_id"], c["school_id"]), c["town"], kinds.get(c["kind"], c["kind"]), c["period"],
         units.get(c["responsible"], c["responsible"]), c["due_on"], c["missing_after"],
         COMPLIANCE_STATUS[c["status"]], c["records"], c["first_recorded_on"], "是" if c["flagged_missing"] else "",
         c["measure"], c["school_id"], c["kind"]] for c in cells])
    tables = [matrix]
    for key, sheet, label, names in (("by_kind", "按类别", "台账类别", kinds), ("by_town", "按乡镇", "乡镇", {}),
                                     ("by_unit", "按责任单位", "责任单位", units)):
        if key in rates:
            tables.append(Table(sheet, f"台账报送率（{sheet}）" + suffix, [Column(label), *RATE_COLUMNS],
                                [[names.get(k, k), *_rate_row(v)] for k, v in rates[key].items()]))
    tables.append(Table("合计", "台账报送率（合计）" + suffix, [Column("范围"), *RATE_COLUMNS],
                        [["全部", *_rate_row(rates["overall"])]]))
    return tables


def targets_tables(data: dict[str, Any], county: str) -> list[Table]:
    """Every target of the year for the county and each town, then the month-end values."""
    year = data["year"]
    columns = [Column("指标"), Column("范围"), Column("当前值", "float"), Column("目标值", "float"),
               Column("差距", "float"), Column("达标"), Column("分子", "int"), Column("分母", "int"),
               Column("统计周期"), Column("已设定目标"), Column("指标代码")]
    rows: list[list[Any]] = []
    months: list[str] = []
    trend_rows: list[list[Any]] = []
    for t in data["targets"]:
        scopes = [(county, t.get("county") or {})] + [(tw["town"], tw) for tw in t.get("towns") or []]
        for scope, fig in scopes:
            rows.append([t["text"], scope, fig.get("value"), fig.get("target"), fig.get("gap"),
                         {True: "是", False: "否"}.get(fig.get("met"), ""), fig.get("numerator"),
                         fig.get("denominator"), fig.get("period"), "是" if t.get("set") else "否", t["code"]])
            trend = fig.get("trend") or {}
            months = months or sorted(trend)
            trend_rows.append([t["text"], scope, *(trend.get(m) for m in months)])
    progress = Table("目标进度", f"{year}年度目标进度", columns, rows)
    trend_table = Table("月末值", f"{year}年度目标月末值",
                        [Column("指标"), Column("范围"), *(Column(m, "float") for m in months)], trend_rows)
    return [progress, trend_table]


def campaign_tables(status: dict[str, Any], matrix: Sequence[dict[str, Any]], schools: dict[str, str]) -> list[Table]:
    """A campaign's progress per phase, then the matrix phase x school x aspect."""
    name = status["name"]
    phases = {p["code"]: p["name"] for p in status["phases"]}
    aspects = {a["code"]: a["text"] for a in status["aspects"]}
    phase_table = Table("阶段进度", f"{status['year']}年{name}阶段进度", [
        Column("阶段"), Column("开始日期", "date"), Column("截止日期", "date"), Column("状态"),
        Column("学校数", "int"), Column("按时完成", "int"), Column("逾期完成", "int"), Column("未完成", "int"),
        Column("未到期", "int"), Column("完成率", "percent"), Column("未完成学校"),
    ], [[p["name"], p["starts"], p["deadline"], labels.name_of(labels.PHASE_STATE, p["state"]), p["schools"],
         p["on_time"], p["late"], p["missed"], p["pending"], p["completion"],
         "、".join(schools.get(s, s) for s in p["missed_schools"])] for p in status["phase_status"]])
    order = {code: i for i, code in enumerate(phases)}
    cells = sorted(matrix, key=lambda c: (order.get(c["phase"], 99), c["school_id"], c["aspect"]))
    matrix_table = Table("进度矩阵", f"{status['year']}年{name}进度矩阵", [
        Column("阶段"), Column("学校"), Column("整治内容"), Column("结果"), Column("问题数", "int"),
        Column("日期", "date"), Column("依据事件"),
    ], [[phases.get(c["phase"], c["phase"]), schools.get(c["school_id"], c["school_id"]),
         aspects.get(c["aspect"], c["aspect"]), "发现问题" if c["status"] == "problems" else "通过", c["problems"],
         c["occurred_on"], c["event_id"]] for c in cells])
    return [phase_table, matrix_table]


def warning_response_table(rows: Sequence[dict[str, Any]], kind: str, names: dict[str, str], window: str) -> Table:
    """Per unit or school: warnings received and acknowledged, the rate and the latencies."""
    label = "学校" if kind == "school" else "单位"
    return Table("预警响应", f"预警响应情况（按{label}，{window}）", [
        Column(label), Column("收到预警", "int"), Column("已签收", "int"), Column("签收率", "percent"),
        Column("签收用时中位数（分钟）", "float"), Column("最长用时（分钟）", "float"), Column("超时签收", "int"),
        Column("代码"),
    ], [[names.get(r["recipient"], r["recipient"]), r["received"], r["acknowledged"], r["rate"],
         r["median_latency_minutes"], r["max_latency_minutes"], r["slow"], r["recipient"]] for r in rows])
