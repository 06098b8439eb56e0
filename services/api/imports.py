"""Excel in, shared by the API routes, the pages and the CLI: read the upload, check every row,
store the valid ones (all or, when asked, ``partial``) and report row by row in Chinese.

Each kind of register (duty logs, hazards, school registers) is an ``Importer``: its template
and its runner. The runner answers an ``ImportReport``; the entry points decide how to show it
(problem+json, a page, one line on the CLI).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from events.base import local_date
from events.errors import NotPermitted
from projections.catalogue_view import get_agency, list_schools
from services.api.sheets import duty_fix_table, duty_template_table, sheet_response
from services.catalogue import spreadsheet as school_sheet
from services.documents.sheet_rows import ImportFileError, RowError, read_rows
from services.documents.sheets import Column, Table
from services.duty_log.spreadsheet import check_rows
from services.duty_log.spreadsheet import read_rows as read_duty_rows
from services.kernel.principal import Principal
from services.rectifications import spreadsheet as hazard_sheet

__all__ = ["IMPORTERS", "ImportFileError", "ImportReport", "Importer", "school_lookup"]
TEMPLATE_ROWS = 2000


@dataclass
class ImportReport:
    rows: int
    stored: int = 0
    already: int = 0
    errors: list[RowError] = field(default_factory=list)
    fix: Table | None = None  # the rows left out, with their reasons, to fix and upload again

    @property
    def rejected(self) -> int:
        return len({e.row for e in self.errors})

    def summary(self) -> str:
        """One Chinese line: what was stored, or why nothing was."""
        if self.errors and not self.stored and not self.already:
            return f"{self.rejected}行有误，未导入任何记录"
        text = f"共{self.rows}行，新导入{self.stored}行，此前已导入{self.already}行"
        return text + (f"，{self.rejected}行有误未导入" if self.errors else "")

    def as_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "stored": self.stored, "already_stored": self.already, "rejected": self.rejected,
                "errors": [{"row": e.row, "column": e.column, "reason": e.reason, "text": e.text()}
                           for e in self.errors]}


@dataclass(frozen=True)
class Importer:
    """One register that can come in from a spreadsheet."""

    name: str  # the CLI's and the file names' word: duty-logs, hazards, schools
    label: str  # Chinese, for pages and messages
    template: Callable[[Any, Principal], list[Table]]
    run: Callable[[Any, Principal, bytes, bool], ImportReport]


def school_lookup(platform: Any) -> dict[str, str]:
    """School names (and ids) → ids."""
    with platform.read_engine.connect() as conn:
        schools = list_schools(conn, after=None, limit=100_000)
    return {**{s["school_id"]: s["school_id"] for s in schools}, **{s["name"]: s["school_id"] for s in schools}}


def unit_name(platform: Any, code: str) -> str:
    with platform.read_engine.connect() as conn:
        return str((get_agency(conn, code) or {}).get("name", code))


# -- duty logs ----------------------------------------------------------------------------------

def duty_template(platform: Any, principal: Principal) -> list[Table]:
    platform.app.require_writer(principal)
    today = local_date(platform.clock())
    duties = platform.app.agency(principal.agency).duties_on(today)
    with platform.read_engine.connect() as conn:
        schools = [s["name"] for s in list_schools(conn, after=None, limit=100_000)]
    return [duty_template_table(unit_name(platform, principal.agency), [d["text"] for d in duties.values()],
                                schools)]


def run_duty_import(platform: Any, principal: Principal, data: bytes, partial: bool) -> ImportReport:
    """Raises ImportFileError when the file is not the template."""
    platform.app.require_writer(principal)
    now = platform.clock()
    raw = read_duty_rows(data)
    app = platform.app
    checked = check_rows(raw, unit=principal.agency, duties=lambda day: app.duty_choices(principal.agency, day),
                         schools=school_lookup(platform), today=local_date(now))
    report = ImportReport(rows=len(raw))
    _store(report, checked.errors, partial,
           lambda dry: app.import_duty_rows(principal, checked.rows, partial=partial, now=now, dry_run=dry))
    report.fix = duty_fix_table(raw, report.errors)
    return report


def fix_table(title: str, columns: Sequence[str], raw: Sequence[tuple[int, list[Any]]],
              errors: Sequence[RowError]) -> Table:
    """The rows left out, as they were, with the reasons beside them, to fix and upload again."""
    reasons: dict[int, list[str]] = {}
    for e in errors:
        reasons.setdefault(e.row, []).append(f"{e.column}：{e.reason}")
    rows = [[*values, number, "；".join(reasons[number])] for number, values in raw if number in reasons]
    return Table("待修改", title, [*(Column(c) for c in columns), Column("原行号", "int"), Column("原因")], rows)


def _store(report: ImportReport, checked_errors: list[RowError], partial: bool,
           store: Callable[[bool], Any]) -> None:
    """All or nothing unless ``partial``. When a row failed the checks the use case still
    judges the others without storing (``dry_run``), so the report names every bad row."""
    outcome = store(bool(checked_errors) and not partial)
    report.errors = sorted(checked_errors + outcome.errors, key=lambda e: e.row)
    if not report.errors or partial:
        report.stored, report.already = outcome.stored, outcome.already


# -- hazards ------------------------------------------------------------------------------------

def _hazard_names(platform: Any) -> tuple[dict[str, str], dict[str, str]]:
    hazards = platform.app.catalogue.hazards
    categories = {**{c.code: c.code for c in hazards.categories}, **{c.name: c.code for c in hazards.categories}}
    severities = {**{s.code: s.code for s in hazards.severities}, **{s.name: s.code for s in hazards.severities}}
    return categories, severities


def hazard_template(platform: Any, principal: Principal) -> list[Table]:
    platform.app.require_writer(principal)
    hazards = platform.app.catalogue.hazards
    with platform.read_engine.connect() as conn:
        schools = [s["name"] for s in list_schools(conn, after=None, limit=100_000)]
    return [Table("隐患", f"{unit_name(platform, principal.agency)}隐患排查导入模板", [
        Column("学校", choices=schools, note="从下拉列表选择"),
        Column("问题类别", choices=[c.name for c in hazards.categories], note="从下拉列表选择"),
        Column("等级", choices=[s.name for s in hazards.severities], note="从下拉列表选择"),
        Column("问题描述", note="必填：发现的问题"),
        Column("发现日期", "date", note="如 2024-05-03"),
    ])]


def run_hazard_import(platform: Any, principal: Principal, data: bytes, partial: bool) -> ImportReport:
    platform.app.require_writer(principal)
    now = platform.clock()
    raw = read_rows(data, hazard_sheet.COLUMNS)
    categories, severities = _hazard_names(platform)
    checked = hazard_sheet.check_hazard_rows(raw, unit=principal.agency, schools=school_lookup(platform),
                                             categories=categories, severities=severities, today=local_date(now))
    report = ImportReport(rows=len(raw))
    _store(report, checked.errors, partial,
           lambda dry: platform.app.import_hazard_rows(principal, checked.rows, partial=partial, now=now,
                                                      dry_run=dry))
    report.fix = fix_table("隐患待修改行", hazard_sheet.COLUMNS, raw, report.errors)
    return report


# -- school registers ---------------------------------------------------------------------------

def _require_lead(platform: Any, principal: Principal) -> None:
    if not platform.app.is_lead(principal):
        raise NotPermitted("only the lead bureau registers schools")


def school_template(platform: Any, principal: Principal) -> list[Table]:
    _require_lead(platform, principal)
    yes_no = ("是", "否")
    return [Table("学校名册", "学校名册导入模板", [
        Column("学校代码", note="字母、数字、“-”“_”，最多40位；已登记的学校不会被修改"),
        Column("学校名称", note="必填"), Column("乡镇", note="必填：所在苏木镇"),
        Column("学段", choices=list(school_sheet.KIND_NAMES.values()), note="从下拉列表选择"),
        Column("寄宿", choices=yes_no), Column("食堂", choices=yes_no), Column("校车", choices=yes_no),
    ])]


def run_school_import(platform: Any, principal: Principal, data: bytes, partial: bool) -> ImportReport:
    _require_lead(platform, principal)
    now = platform.clock()
    raw = read_rows(data, school_sheet.COLUMNS)
    checked = school_sheet.check_school_rows(raw)
    report = ImportReport(rows=len(raw))
    _store(report, checked.errors, partial,
           lambda dry: platform.app.import_school_rows(principal, checked.rows, partial=partial, now=now,
                                                      dry_run=dry))
    report.fix = fix_table("学校名册待修改行", school_sheet.COLUMNS, raw, report.errors)
    return report


IMPORTERS: dict[str, Importer] = {
    "duty-logs": Importer("duty-logs", "履职记录", duty_template, run_duty_import),
    "hazards": Importer("hazards", "隐患", hazard_template, run_hazard_import),
    "schools": Importer("schools", "学校名册", school_template, run_school_import),
}


def template_response(platform: Any, principal: Principal, importer: Importer) -> Any:
    today = local_date(platform.clock()).isoformat()
    return sheet_response(importer.template(platform, principal), "xlsx",
                          f"{importer.name}-template-{principal.agency}", data_date=today, template_rows=TEMPLATE_ROWS)


def fix_response(platform: Any, importer: Importer, report: ImportReport) -> Any:
    tables: Sequence[Table] = [report.fix] if report.fix is not None else []
    return sheet_response(tables, "xlsx", f"{importer.name}-to-fix", data_date=local_date(platform.clock()).isoformat())
