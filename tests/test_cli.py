"""The `lianxi` command line, run as a newcomer would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LIANXI = [sys.executable, "-m", "services.cli"]


def run(args: list[str], db: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIANXI_DATABASE_URL": db}
    proc = subprocess.run(LIANXI + args, env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[1])
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_init_is_idempotent(db: str) -> None:
    assert "21 registered" in run(["init"], db).stdout
    assert "0 registered, 0 revised, 21 unchanged" in run(["init"], db).stdout


def test_token_issue_prints_the_token_last_and_revoke_works(db: str) -> None:
    run(["init"], db)
    out = run(["token", "issue", "--agency", "fire-rescue", "--role", "liaison"], db).stdout
    token = out.strip().splitlines()[-1]
    assert token.startswith("lx_") and len(token) > 30
    listing = run(["token", "list"], db).stdout
    assert "fire-rescue" in listing and token not in listing
    token_id = listing.split()[0]
    assert "revoked" in run(["token", "revoke", token_id], db).stdout
    assert "revoked" in run(["token", "list"], db).stdout


def test_errors_are_one_readable_line(db: str) -> None:
    run(["init"], db)
    cases = [
        ["token", "issue", "--agency", "nowhere"],
        ["token", "issue", "--agency", "fire-rescue", "--role", "lead"],
        ["token", "issue", "--agency", "fire-rescue", "--role", "boss"],
        ["token", "revoke", "no-such-id"],
        ["projections", "rebuild", "nope"],
        ["demo", "--schools", "0"],
    ]
    for args in cases:
        proc = run(args, db, ok=False)
        assert proc.returncode != 0, args
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("lianxi: error:"), (args, proc.stderr)
    bad_url = run(["init"], "mysql://x", ok=False)
    assert bad_url.returncode != 0 and "LIANXI_DATABASE_URL" in bad_url.stderr


def test_demo_then_rebuild(db: str) -> None:
    out = run(["demo", "--schools", "6", "--year", "2024", "--seed", "5"], db).stdout
    assert "6 schools" in out
    events = int(out.split("schools, ")[1].split(" events")[0])
    assert events > 500
    # Demo refuses to write twice into a store that holds events, unless asked to skip.
    assert run(["demo", "--schools", "6", "--year", "2024"], db, ok=False).returncode == 1
    assert "skipped" in run(["demo", "--if-empty"], db).stdout
    rebuilt = run(["projections", "rebuild", "ledger"], db).stdout
    assert "ledger: rebuilt from" in rebuilt and int(rebuilt.split("from ")[1].split()[0]) > 400


def test_control_characters_are_refused_and_the_quarantine_is_listed(database_url: str) -> None:
    """Issue 17 class 2 at the CLI, on SQLite and PostgreSQL: recorded free text obeys the
    API's rule (one Chinese line), and `projections quarantine` lists and retries."""
    run(["init"], database_url)
    for args in (["token", "issue", "--agency", "fire-rescue", "--label", "desk\x1b[2J"],
                 ["init", "--reason", "revised\x07"]):
        proc = run(args, database_url, ok=False)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 1 and len(lines) == 1 and "控制字符" in lines[0], (args, proc.stderr)
    assert "no quarantined events" in run(["projections", "quarantine"], database_url).stdout
    retried = run(["projections", "quarantine", "--retry"], database_url).stdout
    assert "retried: 0 applied, 0 still failing" in retried
    assert run(["projections", "quarantine", "nope"], database_url, ok=False).returncode == 1


def test_init_then_demo_and_the_as_of_ledger_of_a_demo_day_lists_the_duties(db: str) -> None:
    """A store holding only the catalogue is as good as empty for the demo, and the duties
    registered "now" by init are in force as of the demo's earlier days."""
    from datetime import UTC, date, datetime, timedelta

    from tests.conftest import Api, Clock, make_platform

    assert "21 registered" in run(["init"], db).stdout
    out = run(["demo", "--schools", "6"], db).stdout
    assert "6 schools" in out
    # The demo wrote more than the catalogue now: a second one is refused, naming the count.
    again = run(["demo", "--schools", "6"], db, ok=False)
    assert again.returncode == 1 and "events beyond the catalogue" in again.stderr

    now = datetime.now(UTC)
    today = now.date()
    day = max(date(today.year, 1, 1), today - timedelta(days=60))  # a demo day before init ran
    platform = make_platform(db, clock=Clock(now))
    try:
        api = Api(platform)
        r = api.client.get(f"/api/v1/agencies/fire-rescue/ledger?as_of={day.isoformat()}",
                           headers=api.as_("fire-rescue"))
        assert r.status_code == 200, r.text
        ledger = r.json()
        assert ledger["source"] == "as_of" and ledger["duties"], ledger
        assert {d["duty_code"] for d in ledger["duties"]} >= {"fire-rescue.inspection"}
        assert sum(d["performed_count"] for d in ledger["duties"]) > 0
    finally:
        platform.close()
