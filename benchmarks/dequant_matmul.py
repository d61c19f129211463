"""Dequantization inside the matmul (#18 item 4): one FLUX block per kind, compiled, against compiled bf16.

    python -m benchmarks.dequant_matmul --out benchmarks/results --side 1024

One FLUX.1-Fill double block and one single block at FLUX's widths (3072, 24 heads of 128), random
weights, the audit's token counts at ``--side``² (``side/16``² image tokens, 512 text tokens), each
compiled whole (fullgraph) as the runner's regional compile does, in these forms:

- ``bf16``: the block's own bf16 linears — the issue's "compiled bf16";
- ``kernels:<type>``: the runner's fast path today (``KernelGGUFLinear``: the Triton kernel writes
  each weight in bf16, cuBLAS multiplies);
- ``bf16-autotune``, ``fused:<type>``: the same under ``max-autotune-no-cudagraphs``; ``fused`` holds
  the GGUF bytes with diffusers' dequantization formulas (``PlainGGUFLinear``), so Inductor may move
  the dequantization into its Triton matmul templates (prologue fusion), keeping it only where its
  own benchmark says the fused kernel is faster.

Each form: the first call's wall time (the compile), then the median and p10–p90 of ``--repeats``
samples timed with CUDA events, each sample as many calls back to back as FLUX has blocks of that kind
(19 or 38), divided by that count.  A step is estimated as 19 double + 38 single blocks.  ``fused``'s
output is compared with ``kernels``' on the same bytes (its dequantization is bit-exact), as PSNR over
the output's range and the largest absolute difference.  One JSON line per form is appended to
``OUT/dequant_matmul.jsonl`` as soon as it is measured (a run cut short keeps what it measured), and a
summary line at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.records import append_jsonl

ROOT = Path(__file__).resolve().parents[1]
DIM, HEADS, HEAD_DIM, TEXT_TOKENS = 3072, 24, 128, 512
#: FLUX.1-Fill's depth: the per-step estimate weighs each block kind by its count.
COUNTS = {"double": 19, "single": 38}
AUTOTUNE = "max-autotune-no-cudagraphs"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--types", default="Q8_0,Q4_0,Q5_K", help="GGUF types for the kernels forms")
    p.add_argument("--fused-types", default="Q8_0,Q4_0", help="GGUF types for the fused forms")
    p.add_argument("--bf16-autotune", action=argparse.BooleanOptionalAction, default=True,
                   help="also bf16 under max-autotune (the fused forms' own baseline; 1–2 min of autotuning)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--budget-s", type=float, default=420.0, help="forms not started by then are skipped")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    return p.parse_args()


def make_block(kind: str) -> torch.nn.Module:
    from diffusers.models.transformers.transformer_flux import FluxSingleTransformerBlock, FluxTransformerBlock

    cls = FluxTransformerBlock if kind == "double" else FluxSingleTransformerBlock
    torch.manual_seed(0)
    with torch.device("cuda"):
        return cls(dim=DIM, num_attention_heads=HEADS, attention_head_dim=HEAD_DIM).to(torch.bfloat16).eval()


def to_gguf(block: torch.nn.Module, qtype_name: str, kernels: bool) -> torch.nn.Module:
    """Every linear of ``block`` replaced by a GGUF linear of ``qtype_name`` holding random well-formed
    blocks (the same bytes for the same type: seeded per layer name)."""
    from gguf import GGMLQuantizationType

    from fluxaudit_runner.fastpath import KernelGGUFLinear, PlainGGUFLinear
    from fluxaudit_runner.tiny.gguf_export import random_blocks

    qtype = GGMLQuantizationType[qtype_name]
    cls = KernelGGUFLinear if kernels else PlainGGUFLinear
    for i, (name, linear) in enumerate([(n, m) for n, m in block.named_modules() if isinstance(m, torch.nn.Linear)]):
        raw = random_blocks(linear.out_features, linear.in_features, qtype, np.random.default_rng(i))
        new = cls(torch.from_numpy(raw).cuda(), qtype, linear.out_features, linear.in_features, linear.bias,
                  torch.bfloat16)  # fmt: skip
        parent, _, child = name.rpartition(".")
        setattr(block.get_submodule(parent) if parent else block, child, new)
    return block


def block_inputs(side: int) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    from diffusers.models.transformers.transformer_flux import FluxPosEmbed

    image_tokens = (side // 16) ** 2
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(1, image_tokens, DIM, device="cuda", dtype=torch.bfloat16, generator=g)
    ctx = torch.randn(1, TEXT_TOKENS, DIM, device="cuda", dtype=torch.bfloat16, generator=g)
    temb = torch.randn(1, DIM, device="cuda", dtype=torch.bfloat16, generator=g)
    ids = torch.zeros(image_tokens + TEXT_TOKENS, 3, device="cuda")
    ids[:, 1:] = torch.rand(image_tokens + TEXT_TOKENS, 2, device="cuda", generator=g) * 64
    rotary = FluxPosEmbed(theta=10000, axes_dim=[16, 56, 56])(ids)
    return (x, ctx, temb), {"image_rotary_emb": rotary}


def time_forward(fn: Callable[[], Any], repeats: int, chain: int) -> dict[str, Any]:
    """Each sample is ``chain`` calls back to back, as a step runs its blocks, divided by ``chain``: a
    synchronize after every call would leave the GPU idle while the CPU launches the next block's
    first kernels, and charge that to the forms with more host-side work per block."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()  # compiles
    torch.cuda.synchronize()
    first = time.perf_counter() - start
    for _ in range(chain):
        fn()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(chain):
            fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / chain)
    q = np.percentile(times, [10, 90])
    return {"firstCallSeconds": first, "medianMs": statistics.median(times), "p10Ms": float(q[0]),
            "p90Ms": float(q[1]), "samples": repeats, "callsPerSample": chain}  # fmt: skip


def flat_output(out: Any) -> torch.Tensor:
    parts = out if isinstance(out, tuple) else (out,)
    return torch.cat([p.float().flatten() for p in parts])


def drift(got: torch.Tensor, exact: torch.Tensor) -> dict[str, float | None]:
    """PSNR over the exact output's range, as the compile check reports its drift (None: identical)."""
    from fluxaudit.quality import psnr

    span = float(exact.max() - exact.min()) or 1.0
    db = psnr(got.cpu().numpy(), exact.cpu().numpy(), data_range=span)
    return {"psnrDb": None if db == float("inf") else db, "maxAbsDiff": float((got - exact).abs().max()),
            "outputSpan": span}  # fmt: skip


def forms(kind: str, args: argparse.Namespace) -> list[tuple[str, Callable[[], torch.nn.Module], str | None]]:
    """(name, block builder, compile mode), most important first."""
    out: list[tuple[str, Callable[[], torch.nn.Module], str | None]] = [("bf16", lambda: make_block(kind), None)]
    for t in args.types.split(","):
        out.append((f"kernels:{t}", lambda t=t: to_gguf(make_block(kind), t, kernels=True), None))
    if args.bf16_autotune:
        out.append(("bf16-autotune", lambda: make_block(kind), AUTOTUNE))
    for t in filter(None, args.fused_types.split(",")):
        out.append((f"fused:{t}", lambda t=t: to_gguf(make_block(kind), t, kernels=False), AUTOTUNE))
    return out


def measure_form(build: Callable[[], torch.nn.Module], mode: str | None, args_in: tuple[torch.Tensor, ...],
                 kwargs_in: dict[str, Any], repeats: int, chain: int) -> tuple[dict[str, Any], torch.Tensor]:  # fmt: skip
    """One form compiled afresh and timed; its output, for the drift."""
    torch._dynamo.reset()
    compiled = torch.compile(build(), fullgraph=True, mode=mode)
    with torch.inference_mode():
        record = time_forward(lambda: compiled(*args_in, **kwargs_in), repeats, chain)
        return record, flat_output(compiled(*args_in, **kwargs_in))


def main() -> int:
    args = _args()
    if not torch.cuda.is_available():
        print("a CUDA GPU is required", file=sys.stderr)
        return 2
    import fluxaudit_runner.gguf_kernels  # noqa: F401  (registers fluxaudit::gguf_dequantize)

    head = {
        "benchmark": "dequant_matmul",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python -m benchmarks.dequant_matmul " + " ".join(sys.argv[1:]),
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "side": args.side,
    }
    began = time.perf_counter()
    args_in, kwargs_in = block_inputs(args.side)
    results: dict[str, dict[str, dict[str, Any]]] = {"single": {}, "double": {}}
    exact: dict[tuple[str, str], torch.Tensor] = {}
    # the single blocks first: 38 of 57, the larger share of a step
    for kind in ("single", "double"):
        for name, build, mode in forms(kind, args):
            if time.perf_counter() - began > args.budget_s:
                print(f"{kind} {name}: skipped (budget)", flush=True)
                continue
            record, output = measure_form(build, mode, args_in, kwargs_in, args.repeats, COUNTS[kind])
            qtype = name.split(":")[1] if ":" in name else None
            if name.startswith("kernels:"):
                exact[(kind, qtype)] = output
            elif name.startswith("fused:") and (kind, qtype) in exact:
                record["driftVsKernels"] = drift(output, exact[(kind, qtype)])
            results[kind][name] = record
            base = results[kind].get("bf16-autotune" if mode else "bf16")
            if base:  # against bf16 compiled the same way
                record["overBf16"] = record["medianMs"] / base["medianMs"]
            record["overBf16Default"] = record["medianMs"] / results[kind]["bf16"]["medianMs"]
            append_jsonl(args.out, "dequant_matmul", {**head, "block": kind, "form": name, "mode": mode, **record})
            print(f"{kind} {name} ({mode or 'default'}): {record['medianMs']:.3f} ms "
                  f"[{record['p10Ms']:.3f}, {record['p90Ms']:.3f}], ×{record['overBf16Default']:.3f} of bf16, "
                  f"compile {record['firstCallSeconds']:.1f} s {record.get('driftVsKernels', '')}", flush=True)  # fmt: skip
            torch.cuda.empty_cache()
    step = {}
    for name in results["single"]:
        if name in results["double"]:
            ms = sum(COUNTS[k] * results[k][name]["medianMs"] for k in COUNTS)
            bf16 = sum(COUNTS[k] * results[k]["bf16"]["medianMs"] for k in COUNTS)
            step[name] = {"blocksMs": ms, "overBf16": ms / bf16}
            print(f"step (blocks) {name}: {ms:.1f} ms, ×{step[name]['overBf16']:.3f} of compiled bf16", flush=True)
    append_jsonl(args.out, "dequant_matmul", {**head, "summary": step, "seconds": time.perf_counter() - began})
    return 0


if __name__ == "__main__":
    sys.exit(main())
