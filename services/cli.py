"""`lianxi` command line. Every error is one readable line on stderr and a non-zero exit."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import date
from typing import Annotated, Any

import typer
from tqdm import tqdm

from contracts.catalogue import CatalogueError, load_catalogue
from events.errors import DomainError

cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Lianxi 联席: campus-safety joint-meeting platform.")
token_cli = typer.Typer(no_args_is_help=True, help="Issue, list and revoke API tokens.")
projections_cli = typer.Typer(no_args_is_help=True, help="Read-model maintenance.")
cli.add_typer(token_cli, name="token")
cli.add_typer(projections_cli, name="projections")


class CliError(Exception):
    """A user-facing failure with a one-line message."""


def _platform(**kw: Any) -> Any:
    from services.platform import Platform

    return Platform(**kw)


def _bar(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="ev", file=sys.stderr, dynamic_ncols=True,
                disable=None)  # None: no bar when stderr is not a terminal


@cli.command()
def init(
    effective_on: Annotated[str | None, typer.Option(help="date a changed duty list takes effect")] = None,
    reason: Annotated[str, typer.Option(help="why the duties changed (recorded)")] = "catalogue revised",
) -> None:
    """Register the catalogue (units, duties) into the event log. Running it twice changes nothing."""
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
    platform = _platform(group_commit=False)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"projecting {', '.join(platform.runner.projections)}; Ctrl-C to stop", err=True)
    try:
        platform.runner.run_forever(stop)
    finally:
        platform.close()


@cli.command()
def demo(
    schools: Annotated[int, typer.Option(min=1, max=100_000, help="number of schools")] = 120,
    year: Annotated[int | None, typer.Option(help="calendar year (default: this year, up to today)")] = None,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same county")] = 1,
    if_empty: Annotated[bool, typer.Option("--if-empty", help="do nothing when the log already holds events")] = False,
) -> None:
    """Generate a deterministic synthetic county year into the log."""
    from services.demo import run_demo

    catalogue = load_catalogue()
    platform = _platform(group_commit=False)
    try:
        now = platform.clock()
        chosen_year = year or now.year
        if chosen_year > now.year:
            raise CliError(f"year {chosen_year} is in the future")
        head = platform.app.recorder.max_notification_id() or 0
        if head and if_empty:
            typer.echo(f"log already holds {head} events; demo skipped")
            return
        if head:
            raise CliError(f"the log already holds {head} events; demo needs an empty store "
                           "(use a new LIANXI_DATABASE_URL or --if-empty)")
        with _bar(total=0, desc="demo") as bar:
            counts = run_demo(platform.app, catalogue, schools=schools, year=chosen_year, seed=seed, now=now,
                              progress=bar.update)
        total = platform.app.recorder.max_notification_id() or 0
        with _bar(total=total * len(platform.runner.projections), desc="projections") as bar:
            platform.runner.catch_up(progress=bar.update)
        typer.echo(f"demo {chosen_year}: {counts['schools']} schools, {total} events in the log")
    finally:
        platform.close()


@token_cli.command("issue")
def token_issue(
    agency: Annotated[str, typer.Option(help="member unit code, e.g. fire-rescue")],
    role: Annotated[str, typer.Option(help="liaison | lead | auditor")] = "liaison",
    label: Annotated[str, typer.Option(help="who holds it (a role or desk, not an ID number)")] = "",
) -> None:
    """Print a new bearer token once (only its hash is stored). The token is the last line."""
    platform = _platform(group_commit=False)
    try:
        token_id, token = platform.tokens.issue(agency=agency, role=role, label=label or f"{agency}-{role}",
                                                known_agencies=platform.known_agencies())
        typer.echo(f"token id {token_id} ({role} of {agency}); store the token now, it is not shown again:")
        typer.echo(token)
    finally:
        platform.close()


@token_cli.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="the token id printed at issue")]) -> None:
    """Revoke a token by its id."""
    platform = _platform(group_commit=False)
    try:
        platform.tokens.revoke(token_id)
        typer.echo(f"revoked {token_id}")
    finally:
        platform.close()


@token_cli.command("list")
def token_list() -> None:
    """List tokens (ids, units, roles; never the tokens)."""
    platform = _platform(group_commit=False)
    try:
        for t in platform.tokens.list():
            state = f"revoked {t['revoked_at']}" if t["revoked_at"] else "active"
            typer.echo(f"{t['token_id']}  {t['agency']:<22} {t['role']:<8} {t['label']}  {state}")
    finally:
        platform.close()


@projections_cli.command("rebuild")
def projections_rebuild(
    name: Annotated[str | None, typer.Argument(help="one read model; default all")] = None,
) -> None:
    """Drop read models and rebuild them from the log, with a progress bar."""
    platform = _platform(group_commit=False)
    try:
        names = [name] if name else list(platform.runner.projections)
        for n in names:
            if n not in platform.runner.projections:
                raise CliError(f"unknown read model {n!r}; known: {', '.join(platform.runner.projections)}")
        head = platform.app.recorder.max_notification_id() or 0
        for n in names:
            platform.runner.reset(n)
            with _bar(total=head, desc=n) as bar:
                applied = platform.runner.catch_up(n, progress=bar.update)
            typer.echo(f"{n}: rebuilt from {applied} events")
    finally:
        platform.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cli(standalone_mode=False)
    except (CliError, CatalogueError, DomainError) as e:
        typer.echo(f"lianxi: error: {e}", err=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("lianxi: aborted", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors and infrastructure failures
        import click

        if isinstance(e, click.ClickException):
            typer.echo(f"lianxi: error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        typer.echo(f"lianxi: error: {type(e).__name__}: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
