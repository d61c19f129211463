"""``fluxaudit report TARGET``: find the run a target names, rebuild its report from storage."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

import click
from rich.markup import escape

from fluxaudit.contract import ExitCode
from fluxaudit.errors import PermanentError, TransientError
from fluxaudit.layout import UnsafePathError, check_relative_path
from fluxaudit.report import build_report
from fluxaudit.spec import FluxAudit, SpecError, parse_document
from fluxaudit.storage import LocalStorage, NotFound, Storage, open_bucket

from .console import console, explain_failure, load_or_exit, report_to_open, where


def _find_runs(root: Path) -> list[Path]:
    """spec.json files of the runs stored under a local output folder ({prefix}/{runId}/spec.json)."""
    return sorted(p for p in root.glob("**/spec.json") if len(p.relative_to(root).parts) <= 6)


def _stored_audit(raw: bytes, source: str) -> FluxAudit:
    try:
        return parse_document(json.loads(raw), source)
    except (SpecError, ValueError) as exc:
        console.print(f"[red]{source}[/red]: not a stored audit document: {escape(str(exc))}")
        sys.exit(ExitCode.INVALID_SPEC)


BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


def _usage(message: str) -> NoReturn:
    console.print(f"[red]fluxaudit report[/red]: {escape(message)}")
    sys.exit(ExitCode.INVALID_SPEC)


class TargetError(ValueError):
    """A command's target that names no run (the message says what to give instead)."""


def bucket_run_folder(target: str) -> tuple[str, str]:
    """(bucket, run folder) of ``gs://BUCKET/PREFIX/RUN_ID``, checked before any request; nothing of the
    target but the bucket and folder is ever echoed (a ``user:password@`` in it stays out of every message)."""
    parsed = urlparse(target)
    if parsed.username is not None or parsed.password is not None:
        raise TargetError(
            "gs:// targets take no user or password: credentials come from the environment (README: Storage)"
        )
    bucket, folder = parsed.netloc, parsed.path.strip("/")
    if not BUCKET_NAME.match(bucket):
        raise TargetError(
            f"{bucket or '(none)'} is not a bucket name: give the run folder as gs://BUCKET/PREFIX/RUN_ID"
        )
    if not folder:
        raise TargetError(f"gs://{bucket} names no run folder: give gs://{bucket}/PREFIX/RUN_ID")
    try:
        check_relative_path(folder)
    except UnsafePathError:
        raise TargetError(f"gs://{bucket}/{folder} is not a run folder path (plain segments, no '..')") from None
    return bucket, folder


def _from_bucket(target: str) -> tuple[FluxAudit, Storage]:
    try:
        bucket, folder = bucket_run_folder(target)
    except TargetError as exc:
        _usage(str(exc))
    spec_path = f"{folder}/spec.json"
    storage = open_bucket(bucket)
    try:
        raw = storage.read_bytes(spec_path)
    except NotFound:
        _usage(f"gs://{bucket}/{folder}: no spec.json there; give the run folder gs://BUCKET/PREFIX/RUN_ID")
    return _stored_audit(raw, f"gs://{bucket}/{spec_path}"), storage


def _from_folder(path: Path, run_id: str | None) -> tuple[FluxAudit, Storage]:
    runs = [p for p in _find_runs(path) if run_id is None or p.parent.name == run_id]
    if len(runs) != 1:
        found = ", ".join(p.parent.name for p in _find_runs(path)) or "none"
        console.print(f"[red]{path}[/red]: expected one run{f' named {run_id}' if run_id else ''}, found: {found}")
        sys.exit(ExitCode.INVALID_SPEC)
    return _stored_audit(runs[0].read_bytes(), str(runs[0])), LocalStorage(path)


def report_command(target: str, out: str | None, run_id: str | None) -> int:
    try:
        return _report(target, out, run_id)
    except (PermanentError, TransientError) as exc:  # partials of another spec, an unreadable one, an outage
        return explain_failure(exc, "build this report")


def _report(target: str, out: str | None, run_id: str | None) -> int:
    if target.startswith("gs:"):
        audit, storage = _from_bucket(target)
    elif Path(target).is_dir():
        audit, storage = _from_folder(Path(target), run_id)
    else:
        audit, storage = load_or_exit(target), LocalStorage(out or "fluxaudit-out")
    built = build_report(audit, storage)
    click.echo(where(storage, report_to_open(storage, built.paths), audit.spec.storage.signed_url_hours))
    return ExitCode.OK if built.data.complete else ExitCode.GROUPS_FAILED
