"""Every ``spec.memory`` mode through the real runner on the tiny model, on a CUDA GPU.

    python -m benchmarks.memory_modes --root /tmp/tiny-modes --out benchmarks/results

One group (Q8_0, plus the bf16 reference where ``--reference``), two guidance values, for
each of auto, resident, modelCpuOffload, groupOffload and sequentialCpuOffload: the placement
the runner recorded and why, the step time per runtime, and peak memory.  The tiny model's
figures say nothing about full-size speed; they prove each mode's code path on a GPU (the CPU
tests cannot: diffusers' offloading needs an accelerator).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from benchmarks.records import append_jsonl

MODES = ("auto", "resident", "modelCpuOffload", "groupOffload", "sequentialCpuOffload")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/fluxaudit-tiny-modes"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args()
    os.environ["HF_HOME"] = str(args.root / "hf-home")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    from fluxaudit.report import build_report
    from fluxaudit.spec import parse_document
    from fluxaudit.storage import LocalStorage
    from fluxaudit_runner.group import run_group
    from fluxaudit_runner.local import quiet_libraries
    from fluxaudit_runner.tiny.builder import build_tiny_model

    quiet_libraries()
    model = build_tiny_model(args.root, seed=0)
    results = {}
    for mode in MODES:
        doc = {
            "apiVersion": "fluxaudit.dev/v1alpha1",
            "kind": "FluxAudit",
            "metadata": {"name": f"modes-{mode.lower()}"},
            "spec": {
                "input": {"image": model.image.resolve().as_uri(), "mask": model.mask.resolve().as_uri()},
                "model": {"ggufRepo": model.gguf_repo, "baseRepo": model.base_repo},
                "quants": [{"label": "Q8_0", "file": model.gguf_files["Q8_0"]}],
                "guidanceScales": [2, 30],
                "steps": 4,
                "maxSide": 128,
                "maxSequenceLength": 64,
                "memory": mode,
                "compileCheck": {"enabled": False},
            },
        }
        audit = parse_document(doc)
        storage = LocalStorage(args.root / "out")
        groups = {}
        for label in audit.spec.group_labels():
            cuda = torch.cuda.is_available()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            try:
                partial = run_group(audit, label, storage)
            except Exception as exc:
                groups[label] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
                print(f"{mode} {label}: FAILED {exc}", flush=True)
                continue
            groups[label] = {
                "placement": partial.placement.to_json() if partial.placement else None,
                "sweepRuntime": partial.sweep_runtime,
                "stockImages": len(partial.stock_sample.images) if partial.stock_sample else 0,
                "fastPath": partial.fast_path.to_json() if partial.fast_path else None,
                "peakGiB": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
            }
        built = build_report(audit, storage)
        for g in built.json["groups"]:
            if g["label"] in groups:
                groups[g["label"]]["timings"] = g["timings"]
        results[mode] = {"groups": groups, "summary": built.json["summary"]["speed"]}
        print(
            mode, {k: (v.get("placement") or {}).get("mode") or v.get("error") for k, v in groups.items()}, flush=True
        )
    record = {
        "benchmark": "memory_modes",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "results": results,
    }
    path = append_jsonl(args.out, f"memory_modes-{record['gpu'].replace(' ', '_')}", record)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
