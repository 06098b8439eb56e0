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
from projections.catalogue_view import get_agency, list_schools
from services.api.sheets import duty_fix_table, duty_template_table, sheet_response
from services.documents.sheets import Table
from services.duty_log.spreadsheet import ImportFileError, RowError, check_rows, read_rows
from services.kernel.principal import Principal

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
    raw = read_rows(data)
    app = platform.app
    checked = check_rows(raw, unit=principal.agency, duties=lambda day: app.duty_choices(principal.agency, day),
                         schools=school_lookup(platform), today=local_date(now))
    report = ImportReport(rows=len(raw))
    if checked.errors and not partial:
        report.errors = checked.errors
    else:
        outcome = app.import_duty_rows(principal, checked.rows, partial=partial, now=now)
        report.errors = sorted(checked.errors + outcome.errors, key=lambda e: e.row)
        if not report.errors or partial:
            report.stored, report.already = outcome.stored, outcome.already
    report.fix = duty_fix_table(raw, report.errors)
    return report


IMPORTERS: dict[str, Importer] = {
    "duty-logs": Importer("duty-logs", "履职记录", duty_template, run_duty_import),
}


def template_response(platform: Any, principal: Principal, importer: Importer) -> Any:
    today = local_date(platform.clock()).isoformat()
    return sheet_response(importer.template(platform, principal), "xlsx",
                          f"{importer.name}-template-{principal.agency}", data_date=today, template_rows=TEMPLATE_ROWS)


def fix_response(platform: Any, importer: Importer, report: ImportReport) -> Any:
    tables: Sequence[Table] = [report.fix] if report.fix is not None else []
    return sheet_response(tables, "xlsx", f"{importer.name}-to-fix", data_date=local_date(platform.clock()).isoformat())
