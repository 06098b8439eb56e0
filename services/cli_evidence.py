"""`lianxi verify --evidence` and `lianxi evidence orphans`: the stored evidence blobs read back
and hashed again, and the blobs no record names. Messages name the events that reference a
broken blob (position, type, event id), so an auditor can find the record."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Annotated, Any

import click
import typer

evidence_cli = typer.Typer(no_args_is_help=True, help="Evidence uploads: blobs no record references.")


def _cited(events: list[dict[str, Any]]) -> str:
    return "、".join(f"第{e['position']}条日志 {e['event_type']}（{e['event_id']}）" for e in events)


def check_evidence(platform: Any, progress: Any = None) -> tuple[int, list[str]]:
    """(blobs checked, one Chinese line per missing or altered blob)."""
    from services.evidence.use_cases import verify_blobs

    platform.runner.catch_up("evidence")
    checked, problems = 0, []
    with platform.read_engine.connect() as conn:
        for _, problem in verify_blobs(conn, platform.blobs):
            checked += 1
            if progress is not None:
                progress(1)
            if problem is None:
                continue
            what = "缺失" if problem.problem == "missing" else "内容被改动（摘要不符）"
            kind = f"（sha256:{problem.thumbnail_of} 的缩略图）" if problem.thumbnail_of else ""
            problems.append(f"佐证材料 sha256:{problem.digest}{kind}{what}；引用它的记录：{_cited(problem.events)}")
    return checked, problems


@evidence_cli.command("orphans")
def orphans(
    older_than_h: Annotated[float | None, typer.Option("--older-than-h", help="age in hours (default: the setting "
                                                                           "LIANXI_EVIDENCE_ORPHAN_AGE_H)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per blob")] = False,
) -> None:
    """List stored blobs that no record references (failed or never attached uploads), and the
    temporary files of uploads killed mid-write (older than an hour; the nightly job removes them)."""
    from services.evidence.use_cases import orphan_blobs, stale_temps
    from services.platform import Platform

    platform = Platform(group_commit=False)
    try:
        platform.runner.catch_up("evidence")
        age = timedelta(hours=platform.settings.evidence_orphan_age_h if older_than_h is None else older_than_h)
        with platform.read_engine.connect() as conn:
            found = orphan_blobs(conn, platform.blobs, now=platform.clock(), min_age=age)
        temps = stale_temps(platform.blobs, now=platform.clock())
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    finally:
        platform.close()
    for o in found:
        typer.echo(json.dumps(o) if as_json else f"sha256:{o['digest']}\t{o['size']}\t{o['stored_at']}")
    for t in temps:
        typer.echo(json.dumps(t) if as_json else f"temp:{t['temp']}\t{t['size']}\t{t['written_at']}")
    print(f"{len(found)} 个未被任何记录引用的文件，{len(temps)} 个中断上传留下的临时文件"
          f"（{platform.blobs.describe()}）", file=sys.stderr)
