"""``fluxaudit``: validate, run, demo, report.

Exit codes (the operator's Job podFailurePolicy relies on 3):
  0 the audit (or command) succeeded
  1 the audit finished but some groups failed; the report says which
  2 the spec is invalid (every error printed with its field path) or bad usage
  3 the audit's input is unusable (missing image, bad GGUF, spec changed under a run)

Heavy imports (torch, diffusers) happen inside the commands that need them:
``validate`` stays instant, and ``demo`` can point the Hugging Face cache at the
tiny model before huggingface_hub reads its environment.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .spec import FluxAudit, SpecError, load_file

EXIT_OK = 0
EXIT_GROUPS_FAILED = 1
EXIT_INVALID_SPEC = 2
EXIT_BAD_INPUT = 3

console = Console(stderr=True, soft_wrap=True)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )


def _load_or_exit(path: str) -> FluxAudit:
    try:
        return load_file(path)
    except SpecError as exc:
        console.print(f"[red]invalid spec[/red] {escape(exc.source)}: {len(exc.errors)} error(s)")
        for field, msg in exc.errors:
            console.print(f"  [bold]{escape(field)}[/bold]: {escape(msg)}", highlight=False)
        sys.exit(EXIT_INVALID_SPEC)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log what each group does.")
@click.version_option(package_name="fluxaudit")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Audit GGUF quantizations of FLUX.1-Fill: time, memory, quality, torch.compile."""
    ctx.obj = {"verbose": verbose}
    _setup_logging(verbose)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file: str) -> None:
    """Check a FluxAudit YAML file; print every problem with its field path."""
    audit = _load_or_exit(file)
    s = audit.spec
    console.print(
        f"[green]valid[/green] {file}: {len(s.quants)} quants × {len(s.guidance_scales)} guidance × "
        f"{len(s.seeds)} seed(s) × {s.repeats} repeat(s), run id {audit.run_id()}"
    )


def _run(audit: FluxAudit, out: Path | None, only: tuple[str, ...], report: bool) -> int:
    from fluxaudit.assets import AssetError
    from fluxaudit.storage import open_storage
    from fluxaudit_runner.group import ResumeConflict
    from fluxaudit_runner.local import quiet_libraries, run_audit

    quiet_libraries()
    groups = audit.spec.group_labels()
    for label in only:
        if label not in groups:
            console.print(f"[red]--quant {label}[/red]: not a group of this audit {groups}")
            return EXIT_INVALID_SPEC
    try:
        storage = open_storage(audit.spec.storage, out)
    except Exception as exc:
        if type(exc).__name__ != "CredentialsError":
            raise
        console.print(f"[red]credentials[/red]: {escape(str(exc))}")
        return EXIT_BAD_INPUT
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

        def on_progress(label: str, partial: Any) -> None:
            bar.update(tasks[label], completed=partial.cells_done, total=partial.cells_total, state=partial.status)

        try:
            outcome = run_audit(audit, storage, only=only or None, progress=on_progress, report=report)
        except (AssetError, ResumeConflict) as exc:
            console.print(f"[red]cannot run this audit[/red]: {escape(str(exc))}")
            return EXIT_BAD_INPUT
        except Exception as exc:
            # Storage outages past the retry deadline may pass on a retry; bad credentials will not.
            name = type(exc).__name__
            if name == "StorageUnavailable":
                console.print(f"[red]storage unavailable[/red]: {escape(str(exc))}")
                return EXIT_GROUPS_FAILED
            if name == "CredentialsError":
                console.print(f"[red]credentials[/red]: {escape(str(exc))}")
                return EXIT_BAD_INPUT
            raise
    elapsed = time.perf_counter() - start
    if outcome.report is not None:
        summary = outcome.report.json["summary"]
        report_path = _where(storage, outcome.report.paths["report"], audit.spec.storage.signed_url_hours)
        console.print(
            f"[bold]{'done' if outcome.ok else 'finished with failures'}[/bold] in {elapsed:.1f} s: "
            f"{len(labels) - len(outcome.failures)}/{len(labels)} groups complete; recommended quant "
            f"{summary['recommendedQuant']}, guidance {summary['suggestedGuidance']}, "
            f"torch.compile {summary['compileVerdict']} — report: {report_path}"
        )
        click.echo(str(report_path))
    for label, err in outcome.failures.items():
        console.print(f"[red]group {label} failed[/red]: {escape(err)}")
    if not outcome.failures:
        return EXIT_OK
    # Only bad input everywhere is permanent (a Job must not retry it); anything else may pass on retry.
    if len(outcome.failures) == len(labels) and set(outcome.failures) <= outcome.input_failures:
        return EXIT_BAD_INPUT
    return EXIT_GROUPS_FAILED


def _where(storage: Any, path: str, hours: float) -> str:
    """Where a user finds an object: a local path, or a signed URL (valid ``hours``) in a bucket."""
    local = getattr(storage, "local_path", None)
    return str(local(path)) if local else storage.generate_signed_url(path, hours)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default=None,
    envvar="FLUXAUDIT_STORAGE_ROOT",
    help="Local folder for images, partials and the report (default: spec.storage.bucket when set, "
    "else ./fluxaudit-out); rerunning into it resumes. Env: FLUXAUDIT_STORAGE_ROOT (a volume shared "
    "with the operator).",
)
@click.option("--quant", "only", multiple=True, help="Run only this group (repeatable); skips the report.")
def run(file: str, out: str | None, only: tuple[str, ...]) -> None:
    """Run an audit on this machine (GPU if present), resuming what OUT already holds."""
    audit = _load_or_exit(file)
    sys.exit(_run(audit, Path(out) if out else None, only, report=not only))


def _find_runs(root: Path) -> list[Path]:
    """spec.json files of the runs stored under a local output folder ({prefix}/{runId}/spec.json)."""
    return sorted(p for p in root.glob("**/spec.json") if len(p.relative_to(root).parts) <= 6)


def _stored_audit(raw: bytes, source: str) -> FluxAudit:
    from fluxaudit.spec import parse_document

    try:
        return parse_document(json.loads(raw), source)
    except (SpecError, ValueError) as exc:
        console.print(f"[red]{source}[/red]: not a stored audit document: {escape(str(exc))}")
        sys.exit(EXIT_INVALID_SPEC)


@main.command()
@click.argument("target")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default=None,
    help="With a spec FILE: the folder holding its run (default fluxaudit-out).",
)
@click.option("--run", "run_id", default=None, help="With a DIR holding several runs: which one.")
def report(target: str, out: str | None, run_id: str | None) -> None:
    """Rebuild REPORT.md, report.json and the pictures from stored partials, running nothing.

    TARGET is an output DIR, a run folder in a bucket (gs://BUCKET/PREFIX/RUN_ID), both read
    through the run's stored spec.json, or a spec FILE (then --out DIR).
    """
    from fluxaudit.report import build_report
    from fluxaudit.storage import LocalStorage, NotFound, Storage

    storage: Storage
    if target.startswith("gs://"):
        from fluxaudit.storage.firebase import FirebaseStorage

        bucket, _, folder = target.removeprefix("gs://").partition("/")
        storage = FirebaseStorage(bucket)
        try:
            audit = _stored_audit(storage.read_bytes(f"{folder.rstrip('/')}/spec.json"), f"{target}/spec.json")
        except NotFound:
            console.print(f"[red]{target}[/red]: no spec.json there; give the run folder gs://BUCKET/PREFIX/RUN_ID")
            sys.exit(EXIT_INVALID_SPEC)
    elif Path(target).is_dir():
        path = Path(target)
        runs = [p for p in _find_runs(path) if run_id is None or p.parent.name == run_id]
        if len(runs) != 1:
            found = ", ".join(p.parent.name for p in _find_runs(path)) or "none"
            console.print(
                f"[red]{target}[/red]: expected one run{f' named {run_id}' if run_id else ''}, found: {found}"
            )
            sys.exit(EXIT_INVALID_SPEC)
        audit = _stored_audit(runs[0].read_bytes(), str(runs[0]))
        storage = LocalStorage(path)
    else:
        audit = _load_or_exit(target)
        storage = LocalStorage(out or "fluxaudit-out")
    built = build_report(audit, storage)
    click.echo(_where(storage, built.paths["report"], audit.spec.storage.signed_url_hours))
    sys.exit(EXIT_OK if built.data.complete else EXIT_GROUPS_FAILED)


@main.command()
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch only this namespace (repeatable). Default: FLUXAUDIT_NAMESPACES, else all namespaces.",
)
@click.option(
    "--liveness",
    default="http://0.0.0.0:8080/healthz",
    show_default=True,
    help="Health endpoint for the pod's liveness probe; empty to disable.",
)
@click.option("--log-format", type=click.Choice(["json", "plain", "full"]), default="json", show_default=True)
@click.pass_context
def operator(ctx: click.Context, namespaces: tuple[str, ...], liveness: str, log_format: str) -> None:
    """Run the Kubernetes operator (kopf): one Job per quant for every FluxAudit, status, report."""
    try:
        from fluxaudit_operator.config import ConfigError
        from fluxaudit_operator.main import run as run_operator
    except ImportError as exc:
        console.print(f"[red]the operator needs its extra[/red]: pip install 'fluxaudit[operator]' ({exc})")
        sys.exit(EXIT_INVALID_SPEC)
    try:
        run_operator(namespaces, liveness or None, log_format, verbose=bool(ctx.obj and ctx.obj.get("verbose")))
    except ConfigError as exc:
        console.print(f"[red]operator configuration[/red]: {escape(str(exc))}")
        sys.exit(EXIT_INVALID_SPEC)


@main.command()
@click.option("--out", "out", type=click.Path(file_okay=False), default="fluxaudit-out", show_default=True)
@click.option("--seed", default=0, show_default=True, help="Seed of the tiny model's weights and of every cell.")
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the tiny model is built (default: ~/.cache/fluxaudit/tiny-model).",
)
@click.option("--rebuild", is_flag=True, help="Rebuild the tiny model even if it exists.")
@click.option(
    "--no-compile-check",
    "skip_compile_check",
    is_flag=True,
    help="Skip the torch.compile check (most of the demo's minute on CPU: dynamo traces the whole pipeline).",
)
def demo(out: str, seed: int, model_dir: str | None, rebuild: bool, skip_compile_check: bool) -> None:
    """Build a tiny random-weight FLUX.1-Fill with real GGUF files and audit it on CPU (about a minute)."""
    from fluxaudit_runner.demo import default_model_dir

    root = Path(model_dir) if model_dir else default_model_dir() / f"seed-{seed}"
    # Must precede the first huggingface_hub import: it reads these once.
    os.environ["HF_HOME"] = str(root / "hf-home")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from fluxaudit.spec import parse_document
    from fluxaudit_runner.demo import demo_document
    from fluxaudit_runner.tiny.builder import build_tiny_model

    with console.status("building the tiny FLUX.1-Fill (random weights, real GGUF files)…"):
        t0 = time.perf_counter()
        model = build_tiny_model(root, seed=seed, force=rebuild)
    console.print(f"tiny model ready in {time.perf_counter() - t0:.1f} s at {root}")
    doc = demo_document(model, seed, compile_check=not skip_compile_check)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec_path = out_dir / "demo-audit.yaml"
    spec_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    console.print(f"audit spec: {spec_path} (rerun with: fluxaudit run {spec_path} --out {out_dir})")
    sys.exit(_run(parse_document(doc, str(spec_path)), out_dir, (), report=True))


if __name__ == "__main__":
    main()
