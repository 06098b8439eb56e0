"""`lianxi export …` and `lianxi import …` run as a person would (a subprocess on a demo year):
the exported workbook is the API's table, the import stores once, and every error is one
readable line with a non-zero exit."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from contracts.catalogue import default_catalogue
from services.demo.year import run_demo
from tests.conftest import FIXED_NOW, Api, make_platform
from tests.zygote import run_cli

LIANXI = [sys.executable, "-m", "services.cli"]
UNIT = "market-supervision"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli-sheets') / 'demo.db'}"
    p = make_platform(url)
    run_demo(p.app, default_catalogue(), schools=12, year=2024, seed=5, now=FIXED_NOW)
    p.runner.catch_up()
    p.close()
    yield url


def run(db: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIANXI_DATABASE_URL": db}
    return run_cli([*map(str, args)], env=env, timeout=180)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lianxi: error: "), proc.stderr
    return lines[0]


def test_export_ledger_is_the_api_table(db: str, tmp_path: Path) -> None:
    out = tmp_path / "ledger.xlsx"
    proc = run(db, "export", "ledger", "--unit", UNIT, "--period", "2024", "--as-of", "2024-12-31", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "已写出" in proc.stdout
    p = make_platform(db)
    try:
        api = Api(p)
        data = api.client.get(f"/api/v1/agencies/{UNIT}/ledger?period=2024&as_of=2024-12-31",
                              headers=api.as_(UNIT)).json()
    finally:
        p.close()
    rows = list(openpyxl.load_workbook(out)["责任台账"].iter_rows(min_row=3, values_only=True))
    assert [(r[0], r[3]) for r in rows] == [(d["duty_code"], d["performed_count"]) for d in data["duties"]]
    assert any(r[3] for r in rows)


def test_export_compliance_csv_and_the_other_tables(db: str, tmp_path: Path) -> None:
    out = tmp_path / "compliance.csv"
    assert run(db, "export", "compliance", "--year", "2024", "-o", out).returncode == 0
    body = out.read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:3] == ["学校", "乡镇", "台账类别"] and len(rows) > 12
    for args, sheet in ((("targets", "--year", "2024"), "目标进度"),
                        (("campaign", "--campaign", "fire-safety", "--year", "2024"), "进度矩阵"),
                        (("warning-response", "--from", "2024-01-01", "--to", "2024-12-31"), "预警响应"),
                        (("board", "--status", "open"), "整改台账"),
                        (("review", "--year", "2024", "--rules", "review-2025.v1"), "考核排名")):
        target = tmp_path / f"{args[0]}.xlsx"
        proc = run(db, "export", *args, "-o", target)
        assert proc.returncode == 0, proc.stderr
        ws = openpyxl.load_workbook(target)[sheet]
        assert ws.max_row > 2, args  # a title, the headers and rows


def test_export_errors_are_one_line(db: str, tmp_path: Path) -> None:
    assert "no-such" in one_error_line(run(db, "export", "ledger", "--unit", "no-such", "-o", tmp_path / "x.xlsx"))
    assert "--format" in one_error_line(run(db, "export", "targets", "-o", tmp_path / "x.pdf"))
    assert "不是日期" in one_error_line(run(db, "export", "warning-response", "--from", "2024-13-01",
                                        "-o", tmp_path / "w.xlsx"))
    assert "没有专项整治" in one_error_line(run(db, "export", "campaign", "--campaign", "nope", "--year", "2024",
                                          "-o", tmp_path / "c.xlsx"))
    assert not (tmp_path / "x.xlsx").exists()


def fill(template: Path, rows: list[list[Any]], out: Path) -> Path:
    wb = openpyxl.load_workbook(template)
    ws = wb.worksheets[0]
    for i, row in enumerate(rows, 3):
        for j, value in enumerate(row, 1):
            ws.cell(i, j, value)
    wb.save(out)
    return out


def test_import_duty_logs_stores_once_and_names_bad_rows(db: str, tmp_path: Path) -> None:
    template = tmp_path / "template.xlsx"
    assert run(db, "import", "template", "duty-logs", "--unit", UNIT, "-o", template).returncode == 0
    wb = openpyxl.load_workbook(template)
    duty = wb["选项"].cell(2, 1).value
    school = wb["选项"].cell(2, 2).value
    good = fill(template, [[duty, date(2025, 3, d), school, f"检查食堂{d}", 0, None] for d in (1, 2, 3)],
                tmp_path / "good.xlsx")
    first = run(db, "import", "duty-logs", good, "--unit", UNIT)
    assert first.returncode == 0, first.stderr
    assert "新导入3行" in first.stdout
    again = run(db, "import", "duty-logs", good, "--unit", UNIT)
    assert again.returncode == 0 and "新导入0行，此前已导入3行" in again.stdout
    bad = fill(template, [[duty, date(2025, 3, 4), "不存在的学校", "检查", 0, None],
                          [duty, "三月", school, "检查", 0, None], [duty, date(2025, 3, 5), school, "检查", 0, None]],
               tmp_path / "bad.xlsx")
    proc = run(db, "import", "duty-logs", bad, "--unit", UNIT)
    assert "2行有误，未导入任何记录" in one_error_line(proc)
    assert "第3行“学校”" in proc.stdout and "第4行“发生日期”" in proc.stdout
    fix = tmp_path / "fix.xlsx"
    partial = run(db, "import", "duty-logs", bad, "--unit", UNIT, "--partial", "--fix", fix)
    assert partial.returncode == 2 and "新导入1行" in partial.stdout
    assert [r[6] for r in openpyxl.load_workbook(fix).worksheets[0].iter_rows(min_row=3, values_only=True)] == [3, 4]
    assert "无法读取" in one_error_line(run(db, "import", "duty-logs", tmp_path / "none.xlsx", "--unit", UNIT))
    (tmp_path / "not.xlsx").write_text("hello")
    assert "不是有效的Excel" in one_error_line(run(db, "import", "duty-logs", tmp_path / "not.xlsx", "--unit", UNIT))
    assert "未知单位" in one_error_line(run(db, "import", "duty-logs", good, "--unit", "nobody"))


def test_import_schools_and_hazards(db: str, tmp_path: Path) -> None:
    schools_template = tmp_path / "schools-template.xlsx"
    assert run(db, "import", "template", "schools", "--unit", "education", "-o", schools_template).returncode == 0
    register = fill(schools_template, [["C001", "命令行小学", "满都拉图镇", "小学", "否", "是", "否"]],
                    tmp_path / "schools.xlsx")
    proc = run(db, "import", "schools", register)  # the lead unit by default
    assert proc.returncode == 0 and "学校名册：共1行，新导入1行" in proc.stdout, proc.stderr
    refused = run(db, "import", "schools", register, "--unit", UNIT)
    assert "lead bureau" in one_error_line(refused)
    hazards_template = tmp_path / "hazards-template.xlsx"
    assert run(db, "import", "template", "hazards", "--unit", UNIT, "-o", hazards_template).returncode == 0
    assert "命令行小学" in [c.value for c in openpyxl.load_workbook(hazards_template)["选项"]["A"]]
    found = fill(hazards_template, [["命令行小学", "消防安全", "较大", "疏散通道堵塞", date(2025, 3, 1)]],
                 tmp_path / "hazards.xlsx")
    assert "隐患：共1行，新导入1行" in run(db, "import", "hazards", found, "--unit", UNIT).stdout
    assert "此前已导入1行" in run(db, "import", "hazards", found, "--unit", UNIT).stdout
