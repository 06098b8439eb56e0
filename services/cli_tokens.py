"""`lianxi token issue|revoke|list`: API tokens for systems (people sign in with accounts)."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli_common import _platform, _storable

token_cli = typer.Typer(no_args_is_help=True, help="Issue, list and revoke API tokens.")


@token_cli.command("issue")
def token_issue(
    agency: Annotated[str, typer.Option(help="member unit code, e.g. fire-rescue")],
    role: Annotated[str, typer.Option(help="liaison | lead | auditor")] = "liaison",
    label: Annotated[str, typer.Option(help="who holds it (a role or desk, not an ID number)")] = "",
) -> None:
    """Print a new bearer token once (only its hash is stored). The token is the last line."""
    _storable("--label", label)
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
