"""The terminal: one rich console on stderr (stdout carries only the report's location)."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from fluxaudit.contract import ExitCode
from fluxaudit.errors import FluxAuditError, PermanentError
from fluxaudit.spec import FluxAudit, SpecError, load_file
from fluxaudit.storage import CredentialsError, Storage, StorageUnavailable

console = Console(stderr=True, soft_wrap=True)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )


def print_spec_error(exc: SpecError) -> None:
    console.print(f"[red]invalid spec[/red] {escape(exc.source)}: {len(exc.errors)} error(s)")
    for field, msg in exc.errors:
        console.print(f"  [bold]{escape(field)}[/bold]: {escape(msg)}", highlight=False)


def load_or_exit(path: str) -> FluxAudit:
    try:
        return load_file(path)
    except SpecError as exc:
        print_spec_error(exc)
        sys.exit(ExitCode.INVALID_SPEC)


def where(storage: Storage, path: str, hours: float) -> str:
    """Where a person finds an object: its path in a local folder, a signed URL (valid ``hours``)
    in a bucket."""
    return storage.signed_url(path, hours) if storage.signed_urls_expire else storage.location(path)


def explain_failure(exc: FluxAuditError, doing: str) -> ExitCode:
    """Print why ``doing`` (e.g. "run this audit") stopped and return the exit code its type calls for:
    credentials and other permanent causes 3 (no retry helps), outages and other transient ones 1."""
    if isinstance(exc, CredentialsError):
        console.print(f"[red]credentials[/red]: {escape(str(exc))}")
        return ExitCode.BAD_INPUT
    if isinstance(exc, StorageUnavailable):
        console.print(f"[red]storage unavailable[/red]: {escape(str(exc))}")
        return ExitCode.GROUPS_FAILED
    if isinstance(exc, PermanentError):
        console.print(f"[red]cannot {doing}[/red]: {escape(str(exc))}")
        return ExitCode.BAD_INPUT
    console.print(f"[red]try again later[/red]: {escape(str(exc))}")
    return ExitCode.GROUPS_FAILED
