"""``fluxaudit report TARGET``: find the run a target names, rebuild its report from storage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.markup import escape

from fluxaudit.contract import ExitCode
from fluxaudit.report import build_report
from fluxaudit.spec import FluxAudit, SpecError, parse_document
from fluxaudit.storage import LocalStorage, NotFound, Storage, open_bucket

from .console import console, load_or_exit, where


def _find_runs(root: Path) -> list[Path]:
    """spec.json files of the runs stored under a local output folder ({prefix}/{runId}/spec.json)."""
    return sorted(p for p in root.glob("**/spec.json") if len(p.relative_to(root).parts) <= 6)


def _stored_audit(raw: bytes, source: str) -> FluxAudit:
    try:
        return parse_document(json.loads(raw), source)
    except (SpecError, ValueError) as exc:
        console.print(f"[red]{source}[/red]: not a stored audit document: {escape(str(exc))}")
        sys.exit(ExitCode.INVALID_SPEC)


def _from_bucket(target: str) -> tuple[FluxAudit, Storage]:
    bucket, _, folder = target.removeprefix("gs://").partition("/")
    storage = open_bucket(bucket)
    try:
        raw = storage.read_bytes(f"{folder.rstrip('/')}/spec.json")
    except NotFound:
        console.print(f"[red]{target}[/red]: no spec.json there; give the run folder gs://BUCKET/PREFIX/RUN_ID")
        sys.exit(ExitCode.INVALID_SPEC)
    return _stored_audit(raw, f"{target}/spec.json"), storage


def _from_folder(path: Path, run_id: str | None) -> tuple[FluxAudit, Storage]:
    runs = [p for p in _find_runs(path) if run_id is None or p.parent.name == run_id]
    if len(runs) != 1:
        found = ", ".join(p.parent.name for p in _find_runs(path)) or "none"
        console.print(f"[red]{path}[/red]: expected one run{f' named {run_id}' if run_id else ''}, found: {found}")
        sys.exit(ExitCode.INVALID_SPEC)
    return _stored_audit(runs[0].read_bytes(), str(runs[0])), LocalStorage(path)


def report_command(target: str, out: str | None, run_id: str | None) -> int:
    if target.startswith("gs://"):
        audit, storage = _from_bucket(target)
    elif Path(target).is_dir():
        audit, storage = _from_folder(Path(target), run_id)
    else:
        audit, storage = load_or_exit(target), LocalStorage(out or "fluxaudit-out")
    built = build_report(audit, storage)
    click.echo(where(storage, built.paths["report"], audit.spec.storage.signed_url_hours))
    return ExitCode.OK if built.data.complete else ExitCode.GROUPS_FAILED
