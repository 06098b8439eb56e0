"""`lianxi export …` and `lianxi import …`: the spreadsheets of the API, from the command line.

Export calls the same endpoint functions the API serves (so a file from the CLI is the file the
API and the pages' buttons give), as a read-all credential of the lead unit named ``cli``.
Import acts as the unit given with ``--unit`` (its lead credential for the lead unit), recorded
in the log as ``…:cli:lianxi import``. Errors are one Chinese line and a non-zero exit
(``click.ClickException``: services/cli.py's main prints it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import click
import typer

from services.kernel.principal import Principal

if TYPE_CHECKING:
    from services.api.sheets import SheetFormat

export_cli = typer.Typer(no_args_is_help=True, help="Tables as spreadsheets (xlsx, or csv for machines).")
import_cli = typer.Typer(no_args_is_help=True, help="Registers from spreadsheets: duty-logs, hazards, schools.")

OutputO = Annotated[Path, typer.Option("-o", "--output", help="file to write (.xlsx or .csv)")]
FormatO = Annotated[str | None, typer.Option("--format", help="xlsx | csv (default: from the file name)")]


@contextmanager
def _platform() -> Iterator[Any]:
    from services.platform import Platform

    platform = Platform(group_commit=False)
    try:
        platform.runner.catch_up()
        yield platform
    finally:
        platform.close()


def _format(output: Path, fmt: str | None) -> SheetFormat:
    chosen = fmt or output.suffix.lstrip(".").lower()
    if chosen not in ("xlsx", "csv"):
        raise click.ClickException(f"无法确定文件格式“{chosen or output.name}”：请用 --format xlsx 或 csv")
    return cast("SheetFormat", chosen)


def _reader(platform: Any) -> Principal:
    return Principal(token_id="cli", agency=platform.app.lead_code, role="auditor", label="lianxi export")


def _export(output: Path, fmt: str | None, call: Callable[[Any, Principal, SheetFormat], Any]) -> None:
    """Runs an endpoint function for a spreadsheet and writes its body."""
    from services.api.problems import ProblemError

    chosen = _format(output, fmt)
    with _platform() as platform:
        try:
            response = call(platform, _reader(platform), chosen)
        except ProblemError as e:
            raise click.ClickException(e.detail) from None
    body = bytes(response.body)
    try:
        output.write_bytes(body)
    except OSError as e:
        raise click.ClickException(f"无法写入{output}：{e.strerror}") from None
    typer.echo(f"已写出 {output}（{chosen}，{len(body)}字节）")


@export_cli.command("ledger")
def export_ledger(
    unit: Annotated[str, typer.Option(help="unit code, e.g. public-security")], output: OutputO,
    period: Annotated[str | None, typer.Option(help="YYYY, YYYY-S1|S2, YYYY-Q1..4 or YYYY-MM")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="the ledger as it stood at the end of this day")] = None,
    fmt: FormatO = None,
) -> None:
    """A unit's 责任台账 (duties, then its rectification figures)."""
    from services.api.routes.duty_log import agency_ledger

    day = _day("--as-of", as_of)
    _export(output, fmt, lambda p, who, f: agency_ledger(unit, p, who, period=period, as_of=day, fmt=f))


@export_cli.command("board")
def export_board(
    output: OutputO, fmt: FormatO = None,
    unit: Annotated[str | None, typer.Option(help="a responsible unit")] = None,
    school: Annotated[str | None, typer.Option(help="a school id")] = None,
    status: Annotated[str | None, typer.Option(help="a status, or open")] = None,
    overdue: Annotated[bool | None, typer.Option("--overdue/--not-overdue", help="past the deadline")] = None,
    severity: Annotated[str | None, typer.Option()] = None,
    category: Annotated[str | None, typer.Option()] = None,
) -> None:
    """The rectification board (隐患整改台账), every item the filters choose."""
    from services.api.routes.rectifications import board

    statuses = ("open", "reported", "assigned", "in_progress", "completed", "closed", "reopened")
    if status is not None and status not in statuses:
        raise click.ClickException(f"--status 应为 {'、'.join(statuses)} 之一")
    _export(output, fmt, lambda p, who, f: board(p, who, limit=100, cursor=None, unit=unit, school=school,
                                                 status=status, overdue=overdue, severity=severity,  # type: ignore[arg-type]
                                                 category=category, fmt=f))


@export_cli.command("compliance")
def export_compliance(
    output: OutputO, fmt: FormatO = None,
    year: Annotated[int | None, typer.Option()] = None, town: Annotated[str | None, typer.Option()] = None,
    school: Annotated[str | None, typer.Option()] = None, kind: Annotated[str | None, typer.Option()] = None,
    period: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="on_time | late | missing | pending")] = None,
) -> None:
    """The compliance matrix (台账报送) with its rates."""
    from services.api.routes.logistics import compliance_index

    if status is not None and status not in ("on_time", "late", "missing", "pending"):
        raise click.ClickException("--status 应为 on_time、late、missing、pending 之一")
    _export(output, fmt, lambda p, who, f: compliance_index(p, who, limit=200, cursor=None, school=school, kind=kind,
                                                            period=period, town=town, year=year, status=status,
                                                            fmt=f))


@export_cli.command("targets")
def export_targets(output: OutputO, fmt: FormatO = None, year: Annotated[int | None, typer.Option()] = None) -> None:
    """The year's targets for the county and each town, with month-end values."""
    from services.api.routes.logistics import targets_progress

    _export(output, fmt, lambda p, who, f: targets_progress(p, who, year=year, fmt=f))


@export_cli.command("campaign")
def export_campaign(
    campaign: Annotated[str, typer.Option(help="campaign id, or a template code of --year (e.g. fire-safety)")],
    output: OutputO, fmt: FormatO = None, year: Annotated[int | None, typer.Option()] = None,
) -> None:
    """A campaign's progress per phase and its matrix (phase x school x aspect)."""
    from events.base import local_date
    from projections.campaign_progress import campaigns_overview
    from services.api.routes.campaigns import matrix

    def call(platform: Any, who: Principal, f: SheetFormat) -> Any:
        today = local_date(platform.clock())
        with platform.read_engine.connect() as conn:
            found = [c["campaign_id"] for c in campaigns_overview(conn, today, year or today.year)
                     if campaign in (c["campaign_id"], c["template"])]
        if not found:
            raise click.ClickException(f"{year or today.year}年没有专项整治“{campaign}”")
        return matrix(found[0], platform, who, fmt=f)

    _export(output, fmt, call)


@export_cli.command("warning-response")
def export_warning_response(
    output: OutputO, fmt: FormatO = None,
    kind: Annotated[str, typer.Option(help="unit | school")] = "unit",
    from_: Annotated[str | None, typer.Option("--from", help="first day (default 1 January)")] = None,
    to: Annotated[str | None, typer.Option("--to", help="last day (default today)")] = None,
) -> None:
    """Warning response per unit or school: received, acknowledged, rate, latency."""
    from services.api.routes.warnings import response_figures

    if kind not in ("unit", "school"):
        raise click.ClickException("--kind 应为 unit 或 school")
    start, end = _day("--from", from_), _day("--to", to)
    _export(output, fmt, lambda p, who, f: response_figures(p, who, kind=kind, from_=start, to=end,  # type: ignore[arg-type]
                                                            fmt=f))


@export_cli.command("review")
def export_review(
    year: Annotated[int, typer.Option()], output: OutputO, fmt: FormatO = None,
    rules: Annotated[str | None, typer.Option(help="rules set, e.g. review-2025.v1 (default: the year's)")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of")] = None,
) -> None:
    """The annual review: ranking, scores per clause, scored items."""
    from services.api.routes.reviews import get_review

    _export(output, fmt, lambda p, who, f: get_review(year, p, who, rules=rules, as_of=as_of, compare_rules=None,
                                                      format=f, accept=None))


def _day(option: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise click.ClickException(f"{option} “{text}”不是日期（例：2024-05-03）") from None


# -- import ---------------------------------------------------------------------------------------

UnitO = Annotated[str, typer.Option(help="the unit the rows are recorded for (unit code)")]
PartialO = Annotated[bool, typer.Option("--partial", help="store the valid rows and write the rest to --fix")]
FixO = Annotated[Path | None, typer.Option("--fix", help="write the rows left out (with reasons) to this .xlsx")]


def _writer(platform: Any, unit: str) -> Principal:
    unit = unit or platform.app.lead_code
    known = platform.known_agencies()
    if unit not in known:
        raise click.ClickException(f"未知单位“{unit}”（可用：{'、'.join(sorted(known))}）")
    return Principal(token_id="cli", agency=unit, role="lead" if known[unit] else "liaison", label="lianxi import")


def _import(kind: str, file: Path, unit: str, partial: bool, fix: Path | None) -> None:
    from services.api.imports import IMPORTERS, ImportFileError, fix_response

    try:
        data = file.read_bytes()
    except OSError as e:
        raise click.ClickException(f"无法读取{file}：{e.strerror}") from None
    importer = IMPORTERS[kind]
    with _platform() as platform:
        try:
            report = importer.run(platform, _writer(platform, unit), data, partial)
        except ImportFileError as e:
            raise click.ClickException(f"{file}：{e}") from None
        for error in report.errors:
            typer.echo(error.text())
        if fix is not None and report.errors:
            fix.write_bytes(bytes(fix_response(platform, importer, report).body))
            typer.echo(f"待修改的{report.rejected}行已写入 {fix}")
    if report.errors and not partial:
        raise click.ClickException(f"{importer.label}：{report.summary()}")
    typer.echo(f"{importer.label}：{report.summary()}")
    if report.errors:
        sys.exit(2)  # the valid rows are stored; the rest still need fixing


def _template(kind: str, unit: str, output: Path) -> None:
    from services.api.imports import IMPORTERS, template_response

    with _platform() as platform:
        body = bytes(template_response(platform, _writer(platform, unit), IMPORTERS[kind]).body)
    output.write_bytes(body)
    typer.echo(f"已写出{IMPORTERS[kind].label}导入模板 {output}")


@import_cli.command("template")
def import_template(
    kind: Annotated[str, typer.Argument(help="duty-logs | hazards | schools")], unit: UnitO, output: OutputO,
) -> None:
    """A unit's upload template (its duties and the schools as drop-down lists)."""
    from services.api.imports import IMPORTERS

    if kind not in IMPORTERS:
        raise click.ClickException(f"“{kind}”不是可导入的台账（可用：{'、'.join(IMPORTERS)}）")
    _template(kind, unit, output)


@import_cli.command("duty-logs")
def import_duty_logs(file: Annotated[Path, typer.Argument(help="the filled template (.xlsx)")], unit: UnitO,
                     partial: PartialO = False, fix: FixO = None) -> None:
    """Duty records (履职记录) from a filled template; nothing stored unless every row is valid."""
    _import("duty-logs", file, unit, partial, fix)



@import_cli.command("hazards")
def import_hazards(file: Annotated[Path, typer.Argument(help="the filled template (.xlsx)")], unit: UnitO,
                   partial: PartialO = False, fix: FixO = None) -> None:
    """Hazards a unit found (隐患排查), one per row; each becomes a rectification on the board."""
    _import("hazards", file, unit, partial, fix)


@import_cli.command("schools")
def import_schools(file: Annotated[Path, typer.Argument(help="the filled template (.xlsx)")],
                   partial: PartialO = False, fix: FixO = None,
                   unit: Annotated[str | None, typer.Option(help="default: the lead unit")] = None) -> None:
    """The school register (学校名册), registered by the lead unit; registered schools are left as they are."""
    _import("schools", file, unit or "", partial, fix)
