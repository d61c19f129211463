"""Per-forward benchmark of the FLUX.1-Fill transformer: eager vs torch.compile, bf16 vs GGUF.

One process measures one weights variant (``bf16`` or a GGUF quant made of well-formed random
blocks, loaded through diffusers' native GGUF path) at FLUX.1-Fill-dev's shapes, one forward
at 1024×1024 (4096 image + 512 text tokens), median of ``--repeats`` CUDA-event timings:

- ``eager``;
- ``regional``: diffusers' dequantization (``PlainGGUFLinear``) under
  ``compile_repeated_blocks(fullgraph=True)`` — one graph per block class,
  shared by the 19 double and 38 single blocks — with its compile time (the first call);
- ``kernels``: eager, with GGUF dequantization through the fast path's Triton kernels
  (``fluxaudit_runner.fastpath.swap_gguf_linears``);
- ``fast``: the runner's fast path: the kernels, then regional compilation;
- ``autotune``: diffusers' dequantization compiled regionally with
  ``mode="max-autotune-no-cudagraphs"`` (Triton GEMM templates, which can fuse the
  dequantization into the matmul's prologue);
- ``whole``: ``torch.compile`` of the whole transformer, the reference the fast path is held to.

A mode starts from a freshly loaded model whenever the one before it compiled or swapped
modules (``fast`` right after ``kernels`` continues with the swapped model).  ``--profile MODE`` adds the ten
most expensive CUDA kernels of one forward of that mode.

Run it twice with the same ``TORCHINDUCTOR_CACHE_DIR`` to see a warm persistent cache: the
result line says whether the cache held anything before the compile.  Each run appends one
JSON line to ``OUT/regional_compile.jsonl``.

    python -m benchmarks.regional_compile --variant Q8_0 --modes eager,regional --out benchmarks/results
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
from typing import Any

import torch

from benchmarks.records import append_jsonl

ROOT = Path(__file__).resolve().parents[1]
MODES = ("eager", "regional", "kernels", "fast", "autotune", "whole")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="Q8_0", help="bf16, Q8_0, Q4_0 or Q5_K_S")
    p.add_argument("--modes", default="eager,regional,kernels,fast", help="comma-separated: " + ", ".join(MODES))
    p.add_argument("--profile", default="", help="comma-separated modes to profile one forward of")
    p.add_argument("--backend", default="inductor", help="torch.compile backend (aot_eager: a quick CPU smoke run)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--text-tokens", type=int, default=512)
    p.add_argument("--arch", choices=["full", "tiny"], default="full", help="tiny: a CPU smoke run of the harness")
    p.add_argument("--root", type=Path, default=Path("/tmp/fluxaudit-regional"))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    return p.parse_args()


def transformer_kwargs(arch: str) -> dict[str, Any]:
    from fluxaudit_runner.tiny.builder import FULL, TINY

    a = FULL if arch == "full" else TINY
    return {
        "patch_size": 1,
        "in_channels": 384,
        "out_channels": 64,
        "num_layers": a.layers,
        "num_single_layers": a.single_layers,
        "attention_head_dim": 128,
        "num_attention_heads": a.heads,
        "joint_attention_dim": a.t5_d_model,
        "pooled_projection_dim": a.clip_hidden,
        "guidance_embeds": True,
        "axes_dims_rope": (16, 56, 56),
    }


def load(variant: str, arch: str, root: Path, device: torch.device) -> torch.nn.Module:
    from diffusers import FluxTransformer2DModel, GGUFQuantizationConfig

    from fluxaudit_runner.tiny.gguf_export import write_random_transformer_gguf

    config_dir = root / arch
    with torch.device("meta"):
        skeleton = FluxTransformer2DModel(**transformer_kwargs(arch))
    skeleton.save_config(config_dir / "transformer")
    if variant == "bf16":
        torch.manual_seed(0)  # the same weights on every load: modes compare like with like
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)  # random init straight in bf16: 24 GB, not 48
        try:
            with torch.device(device):
                model = FluxTransformer2DModel(**transformer_kwargs(arch))
        finally:
            torch.set_default_dtype(previous)
        return model.eval()
    path = config_dir / f"{variant}.gguf"
    if not path.exists():
        shapes = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
        write_random_transformer_gguf(shapes, variant, path)
    model = FluxTransformer2DModel.from_single_file(
        str(path),
        quantization_config=GGUFQuantizationConfig(compute_dtype=torch.bfloat16),
        config=str(config_dir),
        subfolder="transformer",
        torch_dtype=torch.bfloat16,
    )
    return model.to(device).eval()


def inputs(model: torch.nn.Module, size: int, text_tokens: int, device: torch.device) -> dict[str, torch.Tensor]:
    cfg = model.config
    image_tokens = (size // 16) ** 2
    g = torch.Generator(device="cpu").manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device, torch.bfloat16)

    return {
        "hidden_states": randn(1, image_tokens, cfg.in_channels),
        "encoder_hidden_states": randn(1, text_tokens, cfg.joint_attention_dim),
        "pooled_projections": randn(1, cfg.pooled_projection_dim),
        "timestep": torch.tensor([0.5], device=device, dtype=torch.bfloat16),
        "guidance": torch.tensor([30.0], device=device, dtype=torch.bfloat16),
        "img_ids": torch.zeros(image_tokens, 3, device=device, dtype=torch.bfloat16),
        "txt_ids": torch.zeros(text_tokens, 3, device=device, dtype=torch.bfloat16),
        "return_dict": False,  # type: ignore[dict-item]
    }


def forward_ms(model: torch.nn.Module, kwargs: dict[str, Any], device: torch.device) -> tuple[float, torch.Tensor]:
    """One forward: CUDA-event milliseconds on a GPU, wall milliseconds elsewhere."""
    with torch.inference_mode():
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = model(**kwargs)[0]
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end), out
        t0 = time.perf_counter()
        out = model(**kwargs)[0]
        return (time.perf_counter() - t0) * 1000, out


def cache_entries() -> int:
    cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not cache or not Path(cache).exists():
        return 0
    return sum(1 for _ in Path(cache).rglob("*") if _.is_file())


def prepare(model: torch.nn.Module, mode: str, entry: dict[str, Any], backend: str = "inductor") -> Any:
    """The callable a mode times; records which linears took the kernels and how full the cache was."""
    from fluxaudit_runner import fastpath

    if mode == "eager":
        return model
    if mode == "kernels" or (
        mode == "fast" and not any(isinstance(m, fastpath.KernelGGUFLinear) for m in model.modules())
    ):
        entry["kernels"] = fastpath.swap_gguf_linears(model, kernels=True).to_json()
    if mode == "kernels":
        return model
    entry["cacheFilesBefore"] = cache_entries()
    if mode != "fast":  # diffusers' formulas, minus the tensor subclass dynamo cannot trace
        entry["kernels"] = fastpath.swap_gguf_linears(model, kernels=False).to_json()
    if mode == "whole":
        return torch.compile(model, fullgraph=True, backend=backend)
    if mode == "autotune":
        model.compile_repeated_blocks(fullgraph=True, mode="max-autotune-no-cudagraphs")
    else:
        fastpath.compile_regions(model, backend)
    return model


def top_kernels(target: Any, kwargs: dict[str, Any], count: int = 10) -> list[dict[str, Any]]:
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        target(**kwargs)
        torch.cuda.synchronize()
    rows = sorted(prof.key_averages(), key=lambda e: e.device_time_total, reverse=True)[:count]
    return [{"kernel": r.key[:120], "calls": r.count, "ms": r.device_time_total / 1000} for r in rows]


def main() -> int:
    args = _args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.arch == "full" and device.type != "cuda":
        print("the full-size run needs a CUDA GPU (use --arch tiny for a CPU smoke run)", file=sys.stderr)
        return 2
    import diffusers

    t0 = time.perf_counter()
    model = load(args.variant, args.arch, args.root, device)
    load_s = time.perf_counter() - t0
    kwargs = inputs(model, args.size, args.text_tokens, device)
    result: dict[str, Any] = {
        "benchmark": "regional_compile",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python -m benchmarks.regional_compile " + " ".join(sys.argv[1:]),
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "variant": args.variant,
        "arch": args.arch,
        "size": args.size,
        "textTokens": args.text_tokens,
        "repeats": args.repeats,
        "backend": args.backend,
        "loadSeconds": load_s,
        "modes": {},
    }
    reference: torch.Tensor | None = None
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in MODES:
            raise SystemExit(f"--modes: unknown mode {mode!r}; use {', '.join(MODES)}")
    changed: str | None = None  # what the last mode did to the model in place: None, "swapped", "compiled"
    for mode in modes:
        if changed == "compiled" or (changed == "swapped" and mode != "fast"):
            model = target = None  # type: ignore[assignment]
            torch.compiler.reset()  # compiled graphs hold the old weights alive otherwise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            model = load(args.variant, args.arch, args.root, device)
        changed = None if mode == "eager" else "swapped" if mode == "kernels" else "compiled"
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        entry: dict[str, Any] = {}
        target = prepare(model, mode, entry, args.backend)
        first_ms, out = forward_ms(target, kwargs, device)
        if mode not in ("eager", "kernels"):
            entry["compileSeconds"] = first_ms / 1000
            entry["cacheFilesAfter"] = cache_entries()
        times = [forward_ms(target, kwargs, device)[0] for _ in range(args.repeats)]
        entry["forwardMs"] = {"median": statistics.median(times), "all": times}
        if device.type == "cuda":
            entry["peakMemoryGiB"] = torch.cuda.max_memory_allocated() / 2**30
        if reference is None:
            reference = out.float()
        else:
            diff = (out.float() - reference).abs()
            entry["maxAbsDiffVsFirstMode"] = float(diff.max())
        if mode in args.profile.split(",") and device.type == "cuda":
            entry["topKernels"] = top_kernels(target, kwargs)
        result["modes"][mode] = entry
        print(json.dumps({"variant": args.variant, "mode": mode, **entry}), flush=True)
    append_jsonl(args.out, "regional_compile", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
