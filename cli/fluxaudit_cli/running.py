"""``fluxaudit run`` and ``fluxaudit demo``: the local runner behind a progress bar, typed errors to exit codes."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fluxaudit.contract import ExitCode
from fluxaudit.errors import PermanentError, TransientError
from fluxaudit.results import Partial
from fluxaudit.spec import FluxAudit
from fluxaudit.storage import CredentialsError, open_storage

from .console import console, explain_failure, report_to_open, where


def run_audit_command(
    audit: FluxAudit, out: Path | None, only: tuple[str, ...], report: bool, set_aside_corrupt: bool = False
) -> int:
    from fluxaudit_runner.local import quiet_libraries, run_audit

    quiet_libraries()
    groups = audit.spec.group_labels()
    for label in only:
        if label not in groups:
            console.print(f"[red]--quant {label}[/red]: not a group of this audit {groups}")
            return ExitCode.INVALID_SPEC
    try:
        storage = open_storage(audit.spec.storage, out)
    except CredentialsError as exc:
        console.print(f"[red]credentials[/red]: {escape(str(exc))}")
        return ExitCode.BAD_INPUT
    labels = list(only) or groups
    start = time.perf_counter()
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks = {label: bar.add_task(label, total=None, state="waiting") for label in labels}

        def on_progress(label: str, partial: Partial) -> None:
            bar.update(tasks[label], completed=partial.cells_done, total=partial.cells_total, state=partial.status)

        try:
            outcome = run_audit(
                audit,
                storage,
                only=only or None,
                progress=on_progress,
                report=report,
                set_aside_corrupt=set_aside_corrupt,
            )
        except (PermanentError, TransientError) as exc:
            return explain_failure(exc, "run this audit")
    elapsed = time.perf_counter() - start
    if outcome.report is not None:
        summary = outcome.report.json["summary"]
        report_path = where(storage, report_to_open(storage, outcome.report.paths), audit.spec.storage.signed_url_hours)
        console.print(
            f"[bold]{'done' if outcome.ok else 'finished with failures'}[/bold] in {elapsed:.1f} s: "
            f"{len(labels) - len(outcome.failures)}/{len(labels)} groups complete; recommended quant "
            f"{summary['recommendedQuant']}, guidance {summary['suggestedGuidance']}, "
            f"torch.compile {summary['compileVerdict']} — report: {report_path}"
        )
        click.echo(report_path)
    for label, err in outcome.failures.items():
        console.print(f"[red]group {label} failed[/red]: {escape(err)}")
    if not outcome.failures:
        return ExitCode.OK
    # Only bad input everywhere is permanent (a Job must not retry it); anything else may pass on retry.
    if len(outcome.failures) == len(labels) and set(outcome.failures) <= outcome.input_failures:
        return ExitCode.BAD_INPUT
    return ExitCode.GROUPS_FAILED
