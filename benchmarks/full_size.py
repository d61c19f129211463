"""Full-size audit benchmark: the real runner on FLUX.1-Fill-shaped random weights.

Builds, on the GPU machine and with no hub access, a base repo with FLUX.1-Fill-dev's
shapes (T5-XXL, CLIP-L, the 16-channel VAE, a 19 + 38 block transformer config) and
full-size GGUF files of well-formed random blocks, publishes both into a local hub
cache, then runs each quant group through ``run_group`` — the production path
(hf_hub_download → from_single_file → FluxFillPipeline) — and writes what it measured.

    python -m benchmarks.full_size --root /tmp/full --out benchmarks/results \\
        --quants Q8_0,Q4_0,Q5_K_S --guidance 2,30 --steps 28 --size 1024

Timing does not depend on weight values, so the step times are those of the real
model; image quality is meaningless here and not reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

from benchmarks.full_size_repos import BASE_REPO, GGUF_REPO, build_repos, gguf_file


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/fluxaudit-full"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--quants", default="Q8_0,Q4_0,Q5_K_S")
    p.add_argument("--guidance", default="2,30")
    p.add_argument("--steps", type=int, default=28)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--compile-check", action="store_true", help="also run the dynamo explain check (minutes)")
    p.add_argument("--measure-speedup", action="store_true", help="with --compile-check: time eager vs compiled")
    p.add_argument("--kernels", choices=["auto", "on", "off"], default="auto", help="spec.fastPath.dequantKernels")
    p.add_argument("--compile", choices=["auto", "regional", "off"], default="auto", help="spec.fastPath.compile")
    return p.parse_args()


def main() -> int:
    args = _args()
    os.environ["HF_HOME"] = str(args.root / "hf-home")  # before huggingface_hub is imported
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    from fluxaudit.results import Partial
    from fluxaudit.spec import parse_document
    from fluxaudit.storage import LocalStorage
    from fluxaudit_runner.group import run_group
    from fluxaudit_runner.local import quiet_libraries
    from fluxaudit_runner.tiny.builder import demo_image_and_mask

    quiet_libraries()
    if not torch.cuda.is_available():
        print("a CUDA GPU is required", file=sys.stderr)
        return 2
    quants = args.quants.split(",")
    built, params = build_repos(args.root, quants)
    build = {f"{part}Seconds": value for part, value in built.items()}
    image, mask = demo_image_and_mask(args.size)
    image.save(args.root / "image.png")
    mask.save(args.root / "mask.png")

    doc = {
        "apiVersion": "fluxaudit.dev/v1alpha1",
        "kind": "FluxAudit",
        "metadata": {"name": "bench"},
        "spec": {
            "input": {"image": (args.root / "image.png").as_uri(), "mask": (args.root / "mask.png").as_uri()},
            "model": {"ggufRepo": GGUF_REPO, "baseRepo": BASE_REPO},
            "quants": [{"label": q, "file": gguf_file(q)} for q in quants],
            "guidanceScales": [float(g) for g in args.guidance.split(",")],
            "steps": args.steps,
            "maxSide": args.size,
            "warmup": 1,
            "compileCheck": {
                "enabled": args.compile_check,
                "quant": quants[0],
                "measureSpeedup": args.measure_speedup,
            },
            "fastPath": {"dequantKernels": args.kernels, "compile": args.compile},
        },
    }
    audit = parse_document(doc)
    storage = LocalStorage(args.root / "out")
    groups = {}
    for q in quants:
        t1 = time.perf_counter()
        partial: Partial = run_group(audit, q, storage)
        wall = time.perf_counter() - t1
        denoise = sum(sum(c.step_seconds) for c in partial.cells)
        steps = [s for c in partial.cells for s in c.step_seconds]
        assert partial.load is not None and partial.quant is not None
        groups[q] = {
            "groupWallSeconds": wall,
            "denoiseSeconds": denoise,
            "overheadRatio": wall / denoise,
            "medianStepMs": statistics.median(steps) * 1000,
            "medianCellWallSeconds": statistics.median(c.wall_seconds for c in partial.cells),
            "medianCellCudaSeconds": statistics.median(c.cuda_seconds or 0 for c in partial.cells),
            "peakVramGiB": max(c.peak_memory_bytes for c in partial.cells) / 2**30,
            "ggufBytes": partial.quant.bytes,
            "transformerLoadSeconds": partial.load.transformer_load_seconds,
            "ggufLoadGBps": partial.quant.bytes / partial.load.transformer_load_seconds / 1e9,
            "load": partial.load.to_json(),
            "fastPath": partial.fast_path.to_json() if partial.fast_path else None,
            "cleanup": partial.cleanup.to_json() if partial.cleanup else None,
            "compileCheck": partial.compile_check.to_json() if partial.compile_check else None,
        }
        print(
            f"{q}: group {wall:.1f} s, denoise {denoise:.1f} s (×{wall / denoise:.2f}), "
            f"median step {groups[q]['medianStepMs']:.1f} ms, peak {groups[q]['peakVramGiB']:.1f} GiB, "
            f"GGUF {partial.quant.bytes / 1e9:.1f} GB loaded at {groups[q]['ggufLoadGBps']:.2f} GB/s, "
            f"fast path {groups[q]['fastPath']}",
            flush=True,
        )
    props = torch.cuda.get_device_properties(0)
    result = {
        "benchmark": "full_size",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "gpu": props.name,
        "torch": torch.__version__,
        "diffusers": __import__("diffusers").__version__,
        "transformerParameters": params,
        "size": args.size,
        "steps": args.steps,
        "guidance": doc["spec"]["guidanceScales"],
        "fastPathSpec": doc["spec"]["fastPath"],
        "build": build,
        "groups": groups,
        "environment": partial.environment.to_json() if partial.environment else None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "" if (args.kernels, args.compile) == ("auto", "auto") else f"-kernels_{args.kernels}-compile_{args.compile}"
    path = args.out / f"full_size-{props.name.replace(' ', '_')}-{dt.date.today().isoformat()}{tag}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
