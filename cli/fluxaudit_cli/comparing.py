"""``fluxaudit compare A B``: two audits' report.json side by side; exit 4 on a regression (a CI gate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from fluxaudit.contract import ExitCode
from fluxaudit.errors import PermanentError, TransientError
from fluxaudit.report.compare import PSNR_CAP_DB, Comparison, compare
from fluxaudit.storage import NotFound, open_bucket

from .console import console, explain_failure
from .targets import TargetError, bucket_run_folder


def read_report(target: str) -> dict[str, Any]:
    """report.json of a target: the file itself, a run folder holding it, an output folder holding one
    run, or a run folder in a bucket (gs://BUCKET/PREFIX/RUN_ID)."""
    if target.startswith("gs:"):
        bucket, folder = bucket_run_folder(target)
        try:
            return json.loads(open_bucket(bucket).read_bytes(f"{folder}/report.json"))
        except NotFound:
            raise TargetError(
                f"gs://{bucket}/{folder}/report.json: no report there; run `fluxaudit report` first"
            ) from None
    p = Path(target)
    if p.is_dir():
        found = [p / "report.json"] if (p / "report.json").is_file() else sorted(p.glob("**/report.json"))
        if len(found) != 1:
            raise TargetError(f"{p}: expected one report.json, found {len(found)}; name the run folder")
        p = found[0]
    if not p.is_file():
        raise TargetError(f"{target}: no such file or folder")
    try:
        doc = json.loads(p.read_text())
    except ValueError as exc:
        raise TargetError(f"{p}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or "cells" not in doc or "groups" not in doc:
        raise TargetError(f"{p}: not a FluxAudit report.json")
    return doc


def _db(value: float) -> str:
    return "identical" if value >= PSNR_CAP_DB else f"{value:.2f}"


def _print(result: Comparison, a: str, b: str) -> None:
    speed = Table(title=f"Step time per image, B ÷ A (A = {a}, B = {b})", title_justify="left")
    for column in ("quant", "A median ms/step", "B median ms/step", "samples A/B", "B ÷ A [95% interval]", "verdict"):
        speed.add_column(column)
    for s in result.speed:
        speed.add_row(
            s.quant,
            f"{1000 * s.a_median:.2f}",
            f"{1000 * s.b_median:.2f}",
            f"{s.samples[0]}/{s.samples[1]}",
            f"{s.interval.ratio:.3f} [{s.interval.low:.3f}, {s.interval.high:.3f}]",
            s.verdict,
        )
    console.print(speed)
    quality = Table(title="Whole-image PSNR against each audit's reference (dB)", title_justify="left")
    for column in ("quant", "guidance", "seed", "A", "B", "change"):
        quality.add_column(column)
    for q in result.quality:
        quality.add_row(q.quant, f"{q.guidance:g}", str(q.seed), _db(q.a_psnr), _db(q.b_psnr),
                        f"{q.delta:+.2f}" + (" regression" if q.regression else ""))  # fmt: skip
    console.print(quality)
    for note in result.notes:
        console.print(f"[yellow]note[/yellow]: {escape(note)}")


def compare_command(a: str, b: str, max_slowdown: float, max_psnr_drop: float) -> int:
    try:
        docs = read_report(a), read_report(b)
    except TargetError as exc:
        console.print(f"[red]fluxaudit compare[/red]: {escape(str(exc))}")
        return ExitCode.INVALID_SPEC
    except (PermanentError, TransientError) as exc:
        return explain_failure(exc, "read this report")
    result = compare(*docs, max_slowdown=max_slowdown, max_psnr_drop=max_psnr_drop)
    _print(result, a, b)
    if result.regressions:
        for line in result.regressions:
            console.print(f"[red]regression[/red]: {escape(line)}")
        return ExitCode.REGRESSION
    console.print(f"[green]no regression[/green] beyond {max_slowdown:.0%} slower or {max_psnr_drop:g} dB PSNR")
    return ExitCode.OK
