"""GGUF → bf16 dequantization throughput: diffusers eager, diffusers under Inductor, the fast path's kernels.

One full-size FLUX weight (3072 × 12288, a single block's MLP input) of well-formed random
blocks per type; each way is timed with CUDA events, median of ``--repeats``, and reported as
effective bandwidth: bytes read (the quantized weight) plus bytes written (bf16), per second.
The kernels run at every ``(blocks per program, warps)`` launch in ``--launches`` so the
table in ``gguf_kernels.LAUNCH`` can be chosen from measurements.  Appends one JSON line to
``OUT/dequant_kernels.jsonl``.

    python -m benchmarks.dequant_kernels --out benchmarks/results
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.records import append_jsonl

ROOT = Path(__file__).resolve().parents[1]
LAUNCHES = "4x4,8x4,8x8,16x4,16x8,32x4,32x8,64x4,64x8,128x8"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--types", default="Q8_0,Q4_0,Q5_K")
    p.add_argument("--rows", type=int, default=3072)
    p.add_argument("--cols", type=int, default=12288)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--launches", default=LAUNCHES, help="comma-separated BLOCKSxWARPS")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    return p.parse_args()


def time_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def measure_type(name: str, args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_functions, dequantize_gguf_tensor
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    from fluxaudit_runner import gguf_kernels
    from fluxaudit_runner.tiny.gguf_export import random_blocks

    qtype = GGMLQuantizationType[name]
    raw = torch.from_numpy(random_blocks(args.rows, args.cols, qtype, rng)).reshape(args.rows, -1).cuda()
    moved = raw.numel() + args.rows * args.cols * 2  # quantized bytes in, bf16 bytes out
    param = GGUFParameter(raw, quant_type=qtype)
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    blocks = raw.reshape(-1, type_size)
    formula = dequantize_functions[qtype]  # the graph a compiled GGUFLinear holds for its weight
    compiled_fn = torch.compile(lambda b: formula(b, block_size, type_size).to(torch.bfloat16), fullgraph=True)
    reference = dequantize_gguf_tensor(param).to(torch.bfloat16)

    def way(fn: Callable[[], Any]) -> dict[str, float]:
        ms = time_ms(fn, args.repeats)
        return {"ms": ms, "GBps": moved / ms / 1e6}

    entry: dict[str, Any] = {
        "bytesMoved": moved,
        "diffusersEager": way(lambda: dequantize_gguf_tensor(param).to(torch.bfloat16)),
        "diffusersInductor": way(lambda: compiled_fn(blocks)),
        "kernel": {},
    }
    for launch in args.launches.split(","):
        per_program, warps = (int(x) for x in launch.split("x"))

        def run(per_program: int = per_program, warps: int = warps) -> torch.Tensor:
            return gguf_kernels.dequantize(
                raw, int(qtype), args.rows, args.cols, torch.bfloat16, launch=(per_program, warps)
            )

        entry["kernel"][launch] = {**way(run), "equalsDiffusers": bool(torch.equal(run(), reference))}
    entry["best"] = min(entry["kernel"], key=lambda k: entry["kernel"][k]["ms"])
    return entry


def main() -> int:
    args = _args()
    if not torch.cuda.is_available():
        print("a CUDA GPU is required", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    result: dict[str, Any] = {
        "benchmark": "dequant_kernels",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python -m benchmarks.dequant_kernels " + " ".join(sys.argv[1:]),
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": __import__("triton").__version__,
        "shape": [args.rows, args.cols],
        "types": {},
    }
    for name in args.types.split(","):
        entry = measure_type(name, args, rng)
        result["types"][name] = entry
        summary = {k: round(v["GBps"]) for k, v in entry["kernel"].items()}
        print(
            f"{name}: eager {entry['diffusersEager']['GBps']:.0f} GB/s, inductor "
            f"{entry['diffusersInductor']['GBps']:.0f} GB/s, kernel {summary} (best {entry['best']})",
            flush=True,
        )
    append_jsonl(args.out, "dequant_kernels", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
