"""``fluxaudit``: validate, run, report, operator, demo.

Exit codes are ``fluxaudit.contract.ExitCode`` (the operator's Job podFailurePolicy
fails a Job at once on the permanent ones).  Heavy imports (torch, diffusers, kopf)
happen inside the commands that need them: ``validate`` stays instant, and ``demo``
can point the Hugging Face cache at the tiny model before huggingface_hub reads its
environment.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click
import yaml
from rich.markup import escape

from fluxaudit.contract import Env, ExitCode
from fluxaudit.spec import GPU_DEFAULT_REPEATS, FluxAudit, parse_document

from .comparing import compare_command
from .console import console, load_or_exit, setup_logging
from .running import run_audit_command
from .targets import report_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log what each group does.")
@click.version_option(package_name="fluxaudit")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Audit GGUF quantizations of FLUX.1-Fill: time, memory, quality, torch.compile."""
    ctx.obj = {"verbose": verbose}
    setup_logging(verbose)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file: str) -> None:
    """Check a FluxAudit YAML file; print every problem with its field path."""
    audit: FluxAudit = load_or_exit(file)
    s = audit.spec
    console.print(
        f"[green]valid[/green] {file}: {len(s.quants)} quants × {len(s.input_items())} input(s) × "
        f"{len(s.guidance_scales)} guidance × "
        f"{len(s.seeds)} seed(s) × {s.repeats or f'{GPU_DEFAULT_REPEATS} (GPU) or 1 (CPU)'} repeat(s), "
        f"reference {s.reference or 'the largest GGUF'}, run id {audit.run_id()}"
    )


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default=None,
    envvar=Env.STORAGE_ROOT,
    help="Local folder for images, partials and the report (default: spec.storage.bucket when set, "
    f"else ./fluxaudit-out); rerunning into it resumes. Env: {Env.STORAGE_ROOT} (a volume shared "
    "with the operator).",
)
@click.option("--quant", "only", multiple=True, help="Run only this group (repeatable); skips the report.")
@click.option(
    "--set-aside-corrupt",
    is_flag=True,
    help="Move an unreadable partial aside (kept, renamed *.corrupt-TIME.json) and recompute its group; "
    "without it, an unreadable partial stops its group with exit code 3.",
)
def run(file: str, out: str | None, only: tuple[str, ...], set_aside_corrupt: bool) -> None:
    """Run an audit on this machine (GPU if present), resuming what OUT already holds."""
    audit = load_or_exit(file)
    sys.exit(
        run_audit_command(audit, Path(out) if out else None, only, report=not only, set_aside_corrupt=set_aside_corrupt)
    )


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
    sys.exit(report_command(target, out, run_id))


@main.command()
@click.argument("a")
@click.argument("b")
@click.option(
    "--max-slowdown",
    default=0.05,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Fail when B is slower than A by more than this share, beyond the noise (95% interval).",
)
@click.option(
    "--max-psnr-drop",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Fail when a cell's whole-image PSNR against its reference drops by more than this (dB).",
)
def compare(a: str, b: str, max_slowdown: float, max_psnr_drop: float) -> None:
    """Compare audit B with baseline A: step time and quality per quant, guidance and seed.

    A and B are report.json files, run folders, output folders holding one run, or gs://BUCKET/PREFIX/RUN_ID.
    Exit 4 on a regression beyond the thresholds (for CI), 0 otherwise.
    """
    sys.exit(compare_command(a, b, max_slowdown, max_psnr_drop))


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
        sys.exit(ExitCode.INVALID_SPEC)
    try:
        run_operator(namespaces, liveness or None, log_format, verbose=bool(ctx.obj and ctx.obj.get("verbose")))
    except ConfigError as exc:
        console.print(f"[red]operator configuration[/red]: {escape(str(exc))}")
        sys.exit(ExitCode.INVALID_SPEC)


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
@click.option(
    "--inputs",
    "input_count",
    type=click.IntRange(1, 4),
    default=1,
    show_default=True,
    help="Scenes to audit (spec.inputs when more than one): the demo image, then others with their own prompts.",
)
@click.option("--seeds", "seed_count", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Seeds per cell, from --seed up.")  # fmt: skip
def demo(out: str, seed: int, model_dir: str | None, rebuild: bool, skip_compile_check: bool, input_count: int,
         seed_count: int) -> None:  # fmt: skip
    """Build a tiny random-weight FLUX.1-Fill with real GGUF files and audit it on CPU (about a minute)."""
    from fluxaudit_runner.demo import default_model_dir

    root = Path(model_dir) if model_dir else default_model_dir() / f"seed-{seed}"
    # Must precede the first huggingface_hub import: it reads these once.
    os.environ[Env.HF_HOME] = str(root / "hf-home")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from fluxaudit_runner.demo import demo_document, demo_inputs
    from fluxaudit_runner.tiny.builder import build_tiny_model

    with console.status("building the tiny FLUX.1-Fill (random weights, real GGUF files)…"):
        t0 = time.perf_counter()
        model = build_tiny_model(root, seed=seed, force=rebuild)
    console.print(f"tiny model ready in {time.perf_counter() - t0:.1f} s at {root}")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = demo_inputs(model, out_dir / "demo-inputs", input_count) if input_count > 1 else None
    doc = demo_document(model, seed, compile_check=not skip_compile_check, inputs=inputs, seeds=seed_count)
    spec_path = out_dir / "demo-audit.yaml"
    spec_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    console.print(f"audit spec: {spec_path} (rerun with: fluxaudit run {spec_path} --out {out_dir})")
    sys.exit(run_audit_command(parse_document(doc, str(spec_path)), out_dir, (), report=True))


if __name__ == "__main__":
    main()
