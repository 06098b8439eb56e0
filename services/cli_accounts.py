"""`lianxi accounts …`: people's accounts from the command line, for the first lead account and
for operators. Acts as ``cli`` in the audit trail. A new or reset password is printed once (the
last line); the person must change it at first sign-in. Errors are one line and a non-zero exit
(services/cli.py's main prints the DomainError)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

accounts_cli = typer.Typer(no_args_is_help=True, help="People's accounts: create, list, disable, enable, reset.")

ACTOR = "cli"
NameA = Annotated[str, typer.Argument(help="the account name (what the person types to sign in)")]


@contextmanager
def _platform() -> Iterator[Any]:
    from services.platform import Platform

    platform = Platform(group_commit=False)
    try:
        yield platform
    finally:
        platform.close()


def _named(platform: Any, name: str) -> Any:
    from events.errors import NotFound

    account = platform.accounts.by_name(name.strip().lower())
    if account is None:
        raise NotFound(f"没有账号名为「{name}」的账号。")
    return account


@accounts_cli.command("create")
def create(
    name: NameA,
    display_name: Annotated[str, typer.Option("--display-name", help="the person's name as pages show it")],
    unit: Annotated[str, typer.Option(help="member unit code (e.g. education), or review-group for 考核组/纪检")],
    role: Annotated[str, typer.Option(help="liaison | lead | auditor (auditor: review-group only)")] = "liaison",
    phone: Annotated[str, typer.Option(help="mobile number, for notifications only")] = "",
) -> None:
    """Create an account; prints its initial password once (the last line)."""
    with _platform() as platform:
        account, password = platform.accounts.create(
            ACTOR, account_name=name, display_name=display_name, unit=unit, role=role, phone=phone,
            known_units=platform.known_agencies(), now=platform.clock())
        typer.echo(f"account {account.account_name} ({account.role} of {account.unit}) created; "
                   "initial password (shown once, to be changed at first sign-in):")
        typer.echo(password)


@accounts_cli.command("list")
def list_accounts(unit: Annotated[str, typer.Option(help="only this unit's accounts")] = "") -> None:
    """List accounts (never passwords, secrets or phone numbers)."""
    with _platform() as platform:
        for a in platform.accounts.list(unit=unit or None):
            state = "enabled" if a.enabled else "disabled"
            extra = ", ".join(x for x in ("totp" if a.totp_enabled else "",
                                          "must-change-password" if a.must_change_password else "",
                                          "sso" if a.oidc_subject else "") if x)
            typer.echo(f"{a.account_name:<24} {a.unit:<22} {a.role:<8} {state}{'  ' + extra if extra else ''}")


@accounts_cli.command("disable")
def disable(name: NameA) -> None:
    """Disable an account: its sessions and API tokens end at once."""
    with _platform() as platform:
        platform.accounts.set_enabled(ACTOR, _named(platform, name).account_id, False, platform.clock())
        typer.echo(f"disabled {name}; its sessions and tokens have ended")


@accounts_cli.command("enable")
def enable(name: NameA) -> None:
    """Re-enable a disabled account (its old tokens stay revoked)."""
    with _platform() as platform:
        platform.accounts.set_enabled(ACTOR, _named(platform, name).account_id, True, platform.clock())
        typer.echo(f"enabled {name}")


@accounts_cli.command("reset-password")
def reset_password(
    name: NameA,
    clear_totp: Annotated[bool, typer.Option("--clear-totp", help="also remove the TOTP second factor")] = False,
) -> None:
    """A new initial password (printed once, the last line); the person must change it."""
    with _platform() as platform:
        password = platform.accounts.reset_password(ACTOR, _named(platform, name).account_id, platform.clock(),
                                                    clear_totp=clear_totp)
        typer.echo(f"password of {name} reset; its sessions have ended. New initial password (shown once):")
        typer.echo(password)


@accounts_cli.command("set-oidc")
def set_oidc(
    name: NameA,
    issuer: Annotated[str, typer.Option(help="the provider's issuer URL (empty: remove the mapping)")] = "",
    subject: Annotated[str, typer.Option(help="the person's subject at that provider")] = "",
) -> None:
    """Map a single sign-on subject to the account."""
    with _platform() as platform:
        platform.accounts.set_oidc(ACTOR, _named(platform, name).account_id, issuer or None, subject or None,
                                   platform.clock())
        typer.echo(f"single sign-on of {name}: {issuer + ' ' + subject if issuer else 'removed'}")
