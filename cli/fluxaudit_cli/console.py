"""The terminal: one rich console on stderr (stdout carries only the report's location)."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from fluxaudit.contract import ExitCode
from fluxaudit.spec import FluxAudit, SpecError, load_file
from fluxaudit.storage import Storage

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
