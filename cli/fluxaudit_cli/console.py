"""The terminal: one rich console on stderr (stdout carries only the report's location)."""

from __future__ import annotations

import json
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


class JsonLines(logging.Formatter):
    """One JSON object per record, for log collectors (Cloud Logging reads ``severity``): a runner
    pod's phase and cell records carry their numbers as fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "severity": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if event := getattr(record, "event", None):
            doc["event"] = event
            doc.update(getattr(record, "fields", {}))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(verbose: bool) -> None:
    """On a terminal: rich, warnings only unless ``-v`` (the progress bar says the rest).  Elsewhere
    (a pod, CI, a pipe): JSON lines, with FluxAudit's own phase records always included."""
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_path=False, show_time=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler], force=True)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("fluxaudit").setLevel(logging.INFO)


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


def report_to_open(storage: Storage, paths: dict[str, str]) -> str:
    """What to hand a person: in a bucket, the self-contained report.html (a browser opens its signed
    link; REPORT.md's relative picture links need the folder); locally, REPORT.md beside its pictures."""
    return paths["html"] if storage.signed_urls_expire else paths["report"]


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
