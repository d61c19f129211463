"""The default audit, as a user runs it, at full size on one GPU under an L4-sized memory cap, N times.

    python -m benchmarks.default_audit --root /tmp/full --out benchmarks/results --runs 2 --cap-gib 22

Builds (or reuses) FLUX.1-Fill-dev-shaped random weights — T5-XXL, CLIP-L, the VAE, the bf16
transformer (23.8 GB: the default reference) and full-size GGUF files of well-formed random
blocks for Q4_0, Q5_K_S and Q8_0 — in a local hub cache, makes a 1365×1024 JPEG input (1024×768
after resizing, like the issue's), then runs the audit with the defaults only (the input, the
repos and the files' names aside) through ``run_audit`` (local mode, as ``fluxaudit run``) and ``build_report``,
under ``torch.cuda.set_per_process_memory_fraction`` at ``--cap-gib``.  Each run writes a
fresh run folder; the JSON line records wall time and peak memory per group, each group's memory
mode and why, its step times per runtime, and the report's answers, so runs compare.

Timing does not depend on weight values; image quality does, so with random weights no quant
passes against the bf16 reference (``quantBasis: none-pass``) and the speed rule is read from
``summary.speedRanking`` (the same rule, quality aside).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks.full_size_repos import BASE_REPO, GGUF_REPO, build_repos, gguf_file
from benchmarks.records import append_jsonl

QUANTS = ("Q4_0", "Q5_K_S", "Q8_0")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/fluxaudit-full"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--cap-gib", type=float, default=22.0, help="per-process GPU memory cap (an L4's usable memory)")
    p.add_argument("--weights-dir", type=Path, default=None, help="where the 23.8 GB bf16 shards go (default: --root)")
    p.add_argument("--build-only", action="store_true")
    p.add_argument("--reference-first", action="store_true", help="run the bf16 reference group before the quants")
    p.add_argument("--stacks-every", type=float, default=0, help="dump every thread's stack this often (s; 0: never)")
    p.add_argument("--baseline-tree", type=Path, default=None,
                   help="after the runs, the same audit by another commit's code (benchmarks/baseline_audit.py)")  # fmt: skip
    return p.parse_args()


def build(root: Path, weights_dir: Path | None) -> dict[str, float]:
    """The base repo (bf16 transformer weights included: the default reference) and the GGUF files,
    once per root, and the input: a 1365×1024 JPEG and its mask."""
    from fluxaudit_runner.tiny.builder import demo_image_and_mask

    marker = root / "built.txt"
    if marker.exists():
        return {}
    seconds, _ = build_repos(root, list(QUANTS), transformer_weights=True, weights_dir=weights_dir)
    image, mask = demo_image_and_mask(1024)
    image.resize((1365, 1024)).save(root / "original.jpg", quality=92)
    mask.resize((1365, 1024)).save(root / "mask_auto.png")
    marker.write_text("ok")
    return seconds


def audit_document(root: Path) -> dict:
    """The defaults, plus what a user must give: the input, and where this machine's weights are."""
    return {
        "apiVersion": "fluxaudit.dev/v1alpha1",
        "kind": "FluxAudit",
        "metadata": {"name": "default"},
        "spec": {
            "input": {"image": (root / "original.jpg").as_uri(), "mask": (root / "mask_auto.png").as_uri()},
            "model": {"ggufRepo": GGUF_REPO, "baseRepo": BASE_REPO},
            "quants": [{"label": q, "file": gguf_file(q)} for q in QUANTS],
        },
    }


class _Phases(logging.Handler):
    """Every ``.done`` record's seconds by group and phase, and the cells' wall, from the runner's own log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: dict[str, dict[str, float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        event, fields = getattr(record, "event", None), getattr(record, "fields", None) or {}
        if not event or "seconds" not in fields:
            return
        name = "cells" if event == "cell" else event.removesuffix(".done") if event.endswith(".done") else None
        if name is not None:
            group = self.seconds.setdefault(fields["group"], {})
            group[name] = group.get(name, 0.0) + float(fields["seconds"])


def _denoise_seconds(partial) -> float:
    """Every timed step of the group: the sweep's cells and the stock-runtime sample."""
    cells = sum(sum(c.step_seconds) for c in partial.cells)
    return cells + (sum(sum(i.step_seconds) for i in partial.stock_sample.images) if partial.stock_sample else 0.0)


def one_run(root: Path, run: int, reference_first: bool = False) -> dict:
    """The audit as ``fluxaudit run`` runs it: ``run_audit`` (local mode: the next group's weights read
    ahead), then the report; group walls and peaks from the progress callback, phases from the log."""
    import torch

    from fluxaudit.report import build_report
    from fluxaudit.spec import parse_document
    from fluxaudit.storage import LocalStorage
    from fluxaudit_runner.local import run_audit

    audit = parse_document(audit_document(root))
    storage = LocalStorage(root / f"out-{run}")
    labels = audit.spec.group_labels()
    if reference_first:
        labels = labels[-1:] + labels[:-1]
    seen: dict[str, list[float]] = {}
    peaks: dict[str, float] = {}

    def progress(label: str, partial) -> None:
        now = time.perf_counter()
        if label not in seen:
            torch.cuda.reset_peak_memory_stats()
            seen[label] = [now, now]
        seen[label][1] = now
        peaks[label] = torch.cuda.max_memory_allocated() / 2**30

    phases = _Phases()
    logging.getLogger("fluxaudit.runner").addHandler(phases)
    start = time.perf_counter()
    try:
        outcome = run_audit(audit, storage, only=labels if reference_first else None, progress=progress, report=False)
    finally:
        logging.getLogger("fluxaudit.runner").removeHandler(phases)
    groups_seconds = time.perf_counter() - start
    t_report = time.perf_counter()
    built = build_report(audit, storage)
    report_seconds = time.perf_counter() - t_report
    wall = time.perf_counter() - start
    groups: dict[str, dict] = {}
    for label in labels:
        partial = outcome.partials.get(label)
        if partial is None:
            groups[label] = {"error": outcome.failures.get(label, "no partial")[:500]}
            continue
        groups[label] = {
            "wallSeconds": seen[label][1] - seen[label][0],
            "peakGiB": peaks.get(label),
            "placement": partial.placement.to_json() if partial.placement else None,
            "calibration": partial.calibration.to_json() if partial.calibration else None,
            "load": partial.load.to_json() if partial.load else None,
            "fastPath": partial.fast_path.to_json() if partial.fast_path else None,
            "denoiseSeconds": _denoise_seconds(partial),
            "cells": len(partial.cells),
            "phases": phases.seconds.get(label, {}),
        }
        print(f"run {run} {label}: {groups[label]['wallSeconds']:.1f} s, peak {peaks.get(label, 0):.1f} GiB, "
              f"{partial.placement.mode if partial.placement else '?'}", flush=True)  # fmt: skip
    doc = built.json
    for g in doc["groups"]:
        if g["label"] in groups:
            groups[g["label"]]["timings"] = g["timings"]
    summary = doc["summary"]
    denoise = sum(g.get("denoiseSeconds", 0.0) for g in groups.values())
    print(f"run {run}: {wall:.1f} s for {denoise:.1f} s of timed denoising (×{wall / denoise:.2f}); recommended "
          f"{summary['recommendedQuant']} ({summary['quantBasis']}); speed ranking {summary['speedRanking']}",
          flush=True)  # fmt: skip
    return {
        "run": run,
        "auditWallSeconds": wall,
        "groupsSeconds": groups_seconds,
        "reportSeconds": report_seconds,
        "denoiseSeconds": denoise,
        "wallOverDenoise": wall / denoise if denoise else None,
        "failures": outcome.failures,
        "groups": groups,
        "summary": {
            k: summary.get(k)
            for k in (
                "reference",
                "recommendedQuant",
                "quantBasis",
                "fastestQuant",
                "speedRanking",
                "speed",
                "compileVerdict",
                "compileReasons",
            )
        },
        "notes": doc["quality"]["notes"],
    }


def main() -> int:
    args = _args()
    os.environ["HF_HOME"] = str(args.root / "hf-home")  # before huggingface_hub is imported
    os.environ["HF_HUB_OFFLINE"] = "1"
    import faulthandler

    import torch

    from fluxaudit_runner.local import quiet_libraries

    # the runner's phase and cell records, one line each, as a pod's log shows them
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stdout, force=True)
    logging.getLogger("fluxaudit").setLevel(logging.INFO)
    if args.stacks_every:
        faulthandler.dump_traceback_later(args.stacks_every, repeat=True)

    quiet_libraries()
    if not torch.cuda.is_available():
        print("a CUDA GPU is required", file=sys.stderr)
        return 2
    build_seconds = build(args.root, args.weights_dir)
    print(f"built: {build_seconds}", flush=True)
    if args.build_only:
        return 0
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(args.cap_gib * 2**30 / total)
    for i in range(args.runs):  # one line per run, written as it ends: a device lease may end before the next
        write_record(args, [one_run(args.root, i, args.reference_first)], build_seconds)
    if args.baseline_tree:
        from benchmarks.baseline_audit import run_baseline

        folder = args.root / "out-baseline"
        shutil.rmtree(folder, ignore_errors=True)
        baseline = run_baseline(args.baseline_tree, audit_document(args.root), folder, args.cap_gib)
        print(f"baseline {args.baseline_tree}: {baseline}", flush=True)
        write_record(args, [], build_seconds, baseline)
    return 0


def write_record(
    args: argparse.Namespace, runs: list[dict], build_seconds: dict[str, float], baseline: dict | None = None
) -> None:
    import torch

    record = {
        "benchmark": "default_audit",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "gpu": torch.cuda.get_device_name(0),
        "capGiB": args.cap_gib,
        "torch": torch.__version__,
        "diffusers": __import__("diffusers").__version__,
        "build": build_seconds,
        "runs": runs,
        **({"baseline": baseline} if baseline is not None else {}),
    }
    path = append_jsonl(args.out, f"default_audit-{torch.cuda.get_device_name(0).replace(' ', '_')}", record)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
