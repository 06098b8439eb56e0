"""`lianxi` command line. Every error is one readable line on stderr and a non-zero exit."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import date
from typing import Annotated, Any

import typer

from events.errors import DomainError
from services.cli_accounts import accounts_cli
from services.cli_common import CliError, _bar, _platform, _read_side, _storable
from services.cli_evidence import check_evidence, evidence_cli
from services.cli_sheets import export_cli, import_cli
from services.cli_tokens import token_cli

cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Lianxi 联席: campus-safety joint-meeting platform.")
projections_cli = typer.Typer(no_args_is_help=True, help="Read-model maintenance.")
cli.add_typer(token_cli, name="token")
cli.add_typer(projections_cli, name="projections")
cli.add_typer(export_cli, name="export")
cli.add_typer(import_cli, name="import")
cli.add_typer(accounts_cli, name="accounts")
cli.add_typer(evidence_cli, name="evidence")


@cli.command()
def init(
    effective_on: Annotated[str | None, typer.Option(help="date a changed duty list takes effect")] = None,
    reason: Annotated[str, typer.Option(help="why the duties changed (recorded)")] = "catalogue revised",
) -> None:
    """Register the catalogue (units, duties) into the event log. Running it twice changes nothing."""
    from contracts.catalogue import load_catalogue

    _storable("--reason", reason)
    catalogue = load_catalogue()
    platform = _platform(group_commit=False)
    try:
        eff = date.fromisoformat(effective_on) if effective_on else None
        result = platform.app.register_catalogue(catalogue, now=platform.clock(), effective_on=eff, reason=reason)
        platform.runner.catch_up()
        typer.echo(f"catalogue: {result.registered} registered, {result.revised} revised, {result.unchanged} unchanged")
    finally:
        platform.close()


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers_inprocess: Annotated[bool, typer.Option("--projections/--no-projections",
                                                    help="follow the log in-process")] = True,
) -> None:
    """Serve the API (and, on the embedded default, projections) until interrupted."""
    import uvicorn

    from services.api.main import create_app

    platform = _platform()
    background = workers_inprocess and platform.settings.inprocess_projections
    app = create_app(platform, background=background)
    try:
        uvicorn.run(app, host=host, port=port, log_level=platform.settings.log_level.lower())
    finally:
        platform.close()


@cli.command()
def project() -> None:
    """Run the projection worker: follow the log and keep every read model current."""
    platform = _read_side()
    stop = _until_signalled()
    typer.echo(f"projecting {', '.join(platform.runner.projections)}; Ctrl-C to stop", err=True)
    try:
        platform.runner.run_forever(stop)
    finally:
        platform.close()


def _worker_settings() -> Any:
    """Settings of a Kafka worker: LIANXI_KAFKA_BOOTSTRAP is required; log at LIANXI_LOG_LEVEL."""
    from services.settings import get_settings

    settings = get_settings()
    if not settings.kafka_bootstrap:
        raise CliError("LIANXI_KAFKA_BOOTSTRAP is not set (host:port of the Kafka brokers)")
    logging.getLogger("services").setLevel(settings.log_level.upper())
    return settings


def _until_signalled() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@cli.command()
def relay() -> None:
    """Publish the event log to Kafka as CloudEvents (at least once, in order per unit)."""
    from services.app import LianxiApp
    from services.kafka.relay import Relay, kafka_producer_factory
    from services.store.database import Database

    s = _worker_settings()
    database = Database.from_url(s.database_url)
    app = LianxiApp(database)
    engine = database.sqlalchemy_engine(writer=True)
    factory = kafka_producer_factory(
        s.kafka_bootstrap, client_id=f"{s.kafka_client_id}-relay",
        ensure_topics=[(s.kafka_events_topic, s.kafka_partitions, s.kafka_replication)],
    )
    worker = Relay(app.recorder, engine, factory, topic=s.kafka_events_topic, batch_size=s.relay_batch_size)
    stop = _until_signalled()
    try:
        worker.setup()
        typer.echo(f"relaying to {s.kafka_events_topic} from position {worker.position()}; Ctrl-C to stop", err=True)
        worker.run_forever(stop)
    finally:
        worker.close()
        app.close()
        engine.dispose()


@cli.command()
def ingest() -> None:
    """Consume agency feeds from Kafka: valid messages become events, the rest dead letters."""
    from services.app import LianxiApp
    from services.kafka.ingest import Ingestor, KafkaIngest
    from services.platform import utcnow
    from services.store.database import Database

    s = _worker_settings()
    app = LianxiApp(Database.from_url(s.database_url))
    topics = [(t, s.kafka_partitions, s.kafka_replication) for t in (s.kafka_inbound_topic, s.kafka_dlq_topic)]
    worker = KafkaIngest(
        Ingestor(app, utcnow), bootstrap=s.kafka_bootstrap, topic=s.kafka_inbound_topic,
        dlq_topic=s.kafka_dlq_topic, group_id=s.kafka_ingest_group, client_id=f"{s.kafka_client_id}-ingest",
        session_timeout_ms=s.kafka_session_timeout_ms, ensure_topics=topics,
    )
    stop = _until_signalled()
    typer.echo(f"ingesting {s.kafka_inbound_topic} (dead letters to {s.kafka_dlq_topic}); Ctrl-C to stop", err=True)
    try:
        worker.run_forever(stop)
    finally:
        worker.close()
        app.close()


@cli.command()
def schemas(
    write: Annotated[bool, typer.Option("--write", help="rewrite contracts/schemas/ from the code")] = False,
) -> None:
    """Check (or with --write, regenerate) the event JSON Schemas and contracts/asyncapi.yaml."""
    from contracts import schemas as event_schemas
    from services.kafka.ingest import INBOUND_COMMANDS

    inbound = sorted(INBOUND_COMMANDS)
    if write:
        drift = event_schemas.write(inbound)
        typer.echo(f"schemas: {'up to date' if drift.clean else 'rewrote ' + drift.describe()}")
        return
    drift = event_schemas.check(inbound)
    if not drift.clean:
        raise CliError(f"event schemas drifted from the code ({drift.describe()}); run `make schemas`")
    typer.echo("schemas: up to date")


@cli.command()
def demo(
    schools: Annotated[int, typer.Option(min=1, max=100_000, help="number of schools")] = 120,
    year: Annotated[int | None, typer.Option(help="calendar year (default: this year, up to today)")] = None,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same county")] = 1,
    if_empty: Annotated[bool, typer.Option(
        "--if-empty", help="do nothing when the log holds more than the catalogue")] = False,
) -> None:
    """Generate a deterministic synthetic county year into the log."""
    from contracts.catalogue import load_catalogue
    from services.demo.follow import Follower
    from services.demo.year import run_demo

    catalogue = load_catalogue()
    platform = _platform(group_commit=False)
    try:
        now = platform.clock()
        chosen_year = year or now.year
        if chosen_year > now.year:
            raise CliError(f"year {chosen_year} is in the future")
        # `lianxi init` then `lianxi demo`: the catalogue alone is as good as empty (the demo
        # registers the same catalogue, which records nothing new).
        beyond = platform.app.events_beyond_the_catalogue()
        if beyond and if_empty:
            typer.echo(f"log already holds {beyond} events beyond the catalogue; demo skipped")
            return
        if beyond:
            raise CliError(f"the log already holds {beyond} events beyond the catalogue; demo needs an empty "
                           "store or one holding only the catalogue (use a new LIANXI_DATABASE_URL or --if-empty)")
        with _bar(total=0, desc="demo") as bar, Follower() as follower:  # read models follow in a 2nd process
            counts = run_demo(platform.app, catalogue, schools=schools, year=chosen_year, seed=seed, now=now,
                              progress=bar.update)
        total = platform.app.recorder.max_notification_id() or 0
        with _bar(total=total, desc="projections") as bar:  # what the follower left: nothing, unless it failed
            from services.security import hashchain
            hashchain.catch_up(platform.write_engine, progress=bar.update)  # raw fast path of the log_chain follower
            platform.runner.catch_up(progress=bar.update)
        typer.echo(f"demo {chosen_year}: {counts['schools']} schools, {total} events in the log; "
                   + follower.report(platform.runner))
        from services.demo.accounts import DEMO_PASSWORD, create_demo_accounts

        made = create_demo_accounts(platform.accounts, platform.known_agencies(), now)
        if made:
            typer.echo(f"demo accounts (demo data; password {DEMO_PASSWORD}): {', '.join(made)}")
        names = {u.code: u.name for u in catalogue.units.units}
        for label, key in (("履职到位（planted diligent）", "diligent"),
                           ("履职不力（planted negligent）", "negligent")):
            typer.echo(f"{label}：" + "、".join(f"{names[c]}（{c}）" for c in counts[key]))
    finally:
        platform.close()


@projections_cli.command("rebuild")
def projections_rebuild(
    name: Annotated[str | None, typer.Argument(help="one read model; default all")] = None,
) -> None:
    """Drop read models and rebuild them from the log, with a progress bar."""
    platform = _read_side()
    try:
        names = [name] if name else list(platform.runner.projections)
        for n in names:
            if n not in platform.runner.projections:
                raise CliError(f"unknown read model {n!r}; known: {', '.join(platform.runner.projections)}")
        head = platform.head()
        platform.runner.reset(*names)
        # Every read model in one pass over the log (each batch read and decoded once).
        with _bar(total=head, desc=name or "projections") as bar:
            applied = platform.runner.catch_up(name, progress=bar.update)
        typer.echo(f"{', '.join(names)}: rebuilt from {applied} events (the log holds {head})")
    finally:
        platform.close()


@projections_cli.command("quarantine")
def projections_quarantine(
    name: Annotated[str | None, typer.Argument(help="one read model; default all")] = None,
    retry: Annotated[bool, typer.Option("--retry", help="apply the quarantined events again")] = False,
) -> None:
    """List the events a read model could not apply (position, type, error); --retry applies
    them again, and those that now apply leave the quarantine."""
    platform = _read_side()
    try:
        if name and name not in platform.runner.projections:
            raise CliError(f"unknown read model {name!r}; known: {', '.join(platform.runner.projections)}")
        if retry:
            applied, failing = platform.runner.retry_quarantined(name)
            typer.echo(f"retried: {applied} applied, {failing} still failing")
        entries = platform.runner.quarantined(name)
        for q in entries:
            typer.echo(f"{q['name']}\t{q['position']}\t{q['topic']}\t{q['attempts']}\t{q['error']}")
        if not entries:
            typer.echo("no quarantined events")
    finally:
        platform.close()


# -- scheduled jobs (services/scheduler.py) ------------------------------------------------

jobs_cli = typer.Typer(no_args_is_help=True, help="Scheduled jobs (overdue and escalation sweep).")
cli.add_typer(jobs_cli, name="jobs")


def _parse_now(text: str) -> Any:
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--now {text!r} is not an ISO 8601 date-time, e.g. 2023-06-01T09:00:00+08:00") from None
    if moment.tzinfo is None:
        raise CliError(f"--now {text!r} needs a UTC offset, e.g. 2023-06-01T09:00:00+08:00")
    return moment


def _job_line(name: str, r: dict[str, Any]) -> str:
    levels = ", ".join(f"L{k}: {v}" for k, v in r.get("escalations", {}).items()) or "none"
    return (f"{name} as of {r.get('as_of')}: {r.get('candidates', 0)} candidate(s), {r.get('overdue', 0)} "
            f"overdue, escalations {levels}, {r.get('conflicts', 0)} conflict(s), {r.get('seconds', 0)} s")


@jobs_cli.command("run-once")
def jobs_run_once(
    now: Annotated[str | None, typer.Option(help="the instant to run as, ISO 8601 with offset (default: now)")] = None,
) -> None:
    """Run every scheduled job once, as of --now. Safe to repeat: no step is ever taken twice."""
    from services.scheduler import LianxiScheduler

    moment = _parse_now(now) if now else None
    platform = _platform(group_commit=False)
    try:
        scheduler = LianxiScheduler(platform)
        for name, result in scheduler.run_once(moment or platform.clock()).items():
            if "escalations" in result and "candidates" in result:
                typer.echo(_job_line(name, result))
            else:
                typer.echo(f"{name}: " + ", ".join(f"{k}={v}" for k, v in result.items()))
    finally:
        platform.close()


@cli.command("scheduler")
def scheduler_command() -> None:
    """Run the scheduled jobs (hourly overdue and escalation sweep) until interrupted."""
    from services.scheduler import JOBS, LianxiScheduler

    platform = _platform(group_commit=False)
    scheduler = LianxiScheduler(platform)
    stop = _until_signalled()
    try:
        scheduler.start()
        typer.echo(f"scheduler running {', '.join(JOBS)}; Ctrl-C to stop", err=True)
        stop.wait()
    finally:
        scheduler.shutdown()
        platform.close()


@cli.command()
def brief(
    meeting: Annotated[str, typer.Option(
        help="meeting id, or YEAR-NUMBER (e.g. 2024-4), or 'latest' (the latest scheduled date)")],
    format: Annotated[str, typer.Option("--format", help="html | docx | pdf")] = "html",
    output: Annotated[str, typer.Option("-o", "--output", help="file to write")] = "",
) -> None:
    """Render the joint-meeting brief (联席会议简报) of one meeting as HTML, DOCX or PDF."""
    import time
    import uuid
    from pathlib import Path

    from events.base import local_date
    from events.meetings import meeting_id
    from projections.meetings import latest_meeting
    from services.documents.brief import FORMATS, render

    if format not in FORMATS:
        raise CliError(f"--format {format!r} is not one of {', '.join(FORMATS)}")
    if not output:
        raise CliError("-o FILE is required")
    platform = _platform(group_commit=False)
    try:
        platform.runner.catch_up()
        if meeting == "latest":
            with platform.read_engine.connect() as conn:
                latest = latest_meeting(conn)  # by scheduled date, not by number
            if latest is None:
                raise CliError("no meeting has been scheduled yet")
            mid = latest["meeting_id"]
        elif "-" in meeting and meeting.replace("-", "").isdigit() and meeting.count("-") == 1:
            year, number = meeting.split("-")
            mid = str(meeting_id(int(year), int(number)))
        else:
            try:
                mid = str(uuid.UUID(meeting))
            except ValueError:
                raise CliError(f"--meeting {meeting!r} is not a meeting id, YEAR-NUMBER or 'latest'") from None
        started = time.perf_counter()
        data = platform.assemble_brief(mid, local_date(platform.clock()))
        if data is None:
            raise CliError(f"unknown meeting {meeting!r}")
        body = render(data, format)
        Path(output).write_bytes(body)
        typer.echo(f"brief {data['meeting']['year']}-{data['number']} ({format}, {len(body)} bytes) written to "
                   f"{output} in {time.perf_counter() - started:.2f} s")
    finally:
        platform.close()


# -- tamper evidence and the annual review (services/security/hashchain.py, checkpoint.py, review.py) --


@cli.command()
def checkpoint(
    output: Annotated[str | None, typer.Option("-o", "--output", help="write the checkpoint here (default stdout)")]
    = None,
    public_key_out: Annotated[str | None, typer.Option(
        "--public-key-out", help="also write the signing key's public half (PEM), to pin where checkpoints are "
                                 "verified")] = None,
) -> None:
    """Verify the whole log, then sign its head (Ed25519). Keep the file off the platform."""
    from pathlib import Path

    from services.security.checkpoint import CheckpointError, checkpoint_now, load_key, public_pem

    platform = _platform(group_commit=False)
    try:
        head = platform.app.recorder.max_notification_id() or 0
        with _bar(total=head, desc="verify") as bar:
            cp, result = checkpoint_now(platform, now=platform.clock(), progress=bar.update)
        if public_key_out:
            Path(public_key_out).write_bytes(public_pem(load_key(create=False)))
        typer.echo(f"signed with public key {cp.public_key}"
                   + (f" (written to {public_key_out})" if public_key_out else ""), err=True)
        if output:
            Path(output).write_bytes(cp.to_json())
            typer.echo(f"checkpoint at position {cp.position} ({result.events} events), head {cp.head_hash}, "
                       f"written to {output}", err=True)
        else:
            sys.stdout.write(cp.to_json().decode())
    except CheckpointError as e:
        raise CliError(str(e)) from None
    finally:
        platform.close()


@cli.command()
def verify(
    checkpoint_file: Annotated[str | None, typer.Option("--checkpoint", help="a checkpoint the log must still match")]
    = None,
    public_key: Annotated[str | None, typer.Option(
        "--public-key", help="the platform's public key the checkpoint must be signed by: 64 hex digits or a file "
                             "(`lianxi checkpoint --public-key-out`)")] = None,
    evidence: Annotated[bool, typer.Option("--evidence", help="also hash every stored evidence blob again")] = False,
) -> None:
    """Recompute the hash chain over the whole log. Exit 0 when intact (and matching the
    checkpoint); otherwise exit 1 naming the first position that breaks. With --evidence, also
    every evidence blob: a missing or altered one fails, naming the events that reference it."""
    from pathlib import Path

    from services.security.checkpoint import Checkpoint, CheckpointError, trusted_key, verify_against

    platform = _platform(group_commit=False)
    try:
        cp = Checkpoint.read(Path(checkpoint_file)) if checkpoint_file else None
        trust = trusted_key(public_key)
        head = platform.app.recorder.max_notification_id() or 0
        with _bar(total=head, desc="verify") as bar:
            result = verify_against(platform, cp, trusted_public_key=trust.public_key, progress=bar.update)
        if not result.ok:
            raise CliError(result.describe())
        matched = f"; matches the checkpoint at position {cp.position}, {trust.describe()}" if cp else ""
        typer.echo(result.describe() + matched)
        if evidence:
            with _bar(total=0, desc="evidence") as bar:
                checked, problems = check_evidence(platform, bar.update)
            for line in problems:
                typer.echo(line, err=True)
            if problems:
                raise CliError(f"{len(problems)} of {checked} evidence blobs missing or altered")
            typer.echo(f"evidence: {checked} blobs intact ({platform.blobs.describe()})")
    except CheckpointError as e:
        raise CliError(str(e)) from None
    finally:
        platform.close()


@cli.command()
def review(
    year: Annotated[int, typer.Option(help="the year to review")],
    rules: Annotated[str | None, typer.Option(help="rules file or name (default: the rules declaring the year)")]
    = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="count what was recorded by then (default: the log "
                                                                "head, so the same log gives the same bytes)")] = None,
    compare_rules: Annotated[str | None, typer.Option("--compare-rules", help="draft rules: side-by-side table")]
    = None,
    fmt: Annotated[str, typer.Option("--format", help="json | html | docx")] = "json",
    output: Annotated[str | None, typer.Option("-o", "--output", help="write here (default stdout; docx needs -o)")]
    = None,
) -> None:
    """Replay the year from the verified log and score every unit (年度考核)."""
    from pathlib import Path

    from contracts.rules import RulesError, rules_for_year
    from services.documents.review import FORMATS, render
    from services.reviews.document import compute_review
    from services.reviews.facts import ReviewError, load_rules_arg, parse_as_of
    from services.security.checkpoint import CheckpointError

    if fmt not in FORMATS:
        raise CliError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "docx" and not output:
        raise CliError("--format docx needs -o FILE")
    platform = _platform(group_commit=False)
    try:
        rule_set = load_rules_arg(rules) if rules else rules_for_year(year)
        draft = load_rules_arg(compare_rules) if compare_rules else None
        moment = parse_as_of(as_of) if as_of else None
        head = platform.app.recorder.max_notification_id() or 0
        with _bar(total=head, desc="review") as bar:
            document = compute_review(platform, year=year, rules=rule_set, as_of=moment, compare=draft,
                                      progress=bar.update)
        data = render(document, fmt)
        if output:
            Path(output).write_bytes(data)
            typer.echo(f"review {year} ({rule_set.name}, as of {document['as_of']}) written to {output}", err=True)
        else:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)  # bytes as they are: no decoded copy of a province-sized review
            sys.stdout.buffer.flush()
    except (RulesError, ReviewError, CheckpointError) as e:
        raise CliError(str(e)) from None
    finally:
        platform.close()


def _is_catalogue_error(e: Exception) -> bool:
    """A CatalogueError, without importing the contracts (pydantic models, YAML) on paths
    that never load one: only a process that loaded them can raise one."""
    contracts = sys.modules.get("contracts.catalogue")
    return contracts is not None and isinstance(e, contracts.CatalogueError)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cli(standalone_mode=False)
    except (CliError, DomainError) as e:
        typer.echo(f"lianxi: error: {e}", err=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("lianxi: aborted", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors and infrastructure failures
        import click

        if _is_catalogue_error(e):
            typer.echo(f"lianxi: error: {e}", err=True)
            sys.exit(1)
        if isinstance(e, click.ClickException):
            typer.echo(f"lianxi: error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        typer.echo(f"lianxi: error: {type(e).__name__}: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
