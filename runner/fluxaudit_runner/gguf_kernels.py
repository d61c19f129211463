"""Triton kernels that dequantize GGUF blocks to bf16 at memory speed, as a torch custom op.

Why hand-written: on an H200, Inductor's code for diffusers' dequantization runs at about a
tenth of the memory bandwidth (its kernels do a gather and the bit arithmetic per output
element; BENCHMARKS.md §7 has the profile), which costs a compiled Q5_K_S forward ~40 ms
over compiled bf16.  These kernels lay the work out by the block's structure instead: per
(block, sub-block) the scales are decoded once and broadcast over its 32 values, every byte
of the quants is read once, and the bf16 output is written contiguously.

The op reads the GGUF bytes exactly as diffusers holds them (no repacking, no extra memory)
and reproduces diffusers' fp16 arithmetic, so its output equals ``dequantize_gguf_tensor``
bit for bit; ``TRITON_INTERPRET=1`` runs the same kernels on CPU, which is how CI checks it.
Registered with ``torch.library.custom_op`` so ``torch.compile(fullgraph=True)`` treats a
dequantization as one opaque call and the matmul stays cuBLAS's.
"""

from __future__ import annotations

import functools
import os

import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

#: types with a kernel here; any other keeps diffusers' dequantization.
SUPPORTED = (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q5_K)


@functools.cache
def triton_usable() -> bool:
    """Triton imports, and there is something to run it on (a CUDA GPU, or the interpreter)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


def _blocks(raw: torch.Tensor, kind: GGMLQuantizationType, rows: int, cols: int) -> torch.Tensor:
    """``raw`` as flat bytes, checked to hold whole rows of ``kind`` blocks for a ``rows × cols`` weight."""
    block_size, type_size = GGML_QUANT_SIZES[kind]
    flat = raw.contiguous().view(torch.uint8).reshape(-1)
    if cols % block_size or flat.numel() != rows * (cols // block_size) * type_size:
        raise ValueError(f"{kind.name}: {flat.numel()} bytes do not hold a {rows}×{cols} weight")
    return flat


def dequantize(raw: torch.Tensor, qtype: int, rows: int, cols: int, dtype: torch.dtype,
               launch: tuple[int, int] | None = None) -> torch.Tensor:  # fmt: skip
    """Run the kernel of ``qtype``: autotuned per weight size on a GPU; ``launch`` (blocks and
    warps per program) pins one shape, as the interpreter needs (it cannot time configs)."""
    import triton

    from . import gguf_triton

    kind = GGMLQuantizationType(qtype)
    flat = _blocks(raw, kind, rows, cols)
    n_blocks = flat.numel() // GGML_QUANT_SIZES[kind][1]
    out = torch.empty((rows, cols), dtype=dtype, device=raw.device)
    tuned = getattr(gguf_triton, kind.name.lower())
    bf16 = dtype == torch.bfloat16
    args = (flat, flat.view(torch.float16), out.view(torch.int16) if bf16 else out, n_blocks)
    if launch is None and os.environ.get("TRITON_INTERPRET") == "1":
        first = tuned.configs[0]
        launch = (first.kwargs["BLOCKS"], first.num_warps)
    # No FMA contraction: diffusers rounds d·q to fp16 before subtracting the min (K-quants), and
    # a fused multiply-add would round once, differing from it in the last bit.
    if launch is None:
        grid = lambda meta: (triton.cdiv(n_blocks, meta["BLOCKS"]),)  # noqa: E731
        tuned[grid](*args, BF16_BITS=bf16, enable_fp_fusion=False)
    else:
        per_program, warps = launch
        tuned.fn[(triton.cdiv(n_blocks, per_program),)](
            *args, BLOCKS=per_program, BF16_BITS=bf16, num_warps=warps, enable_fp_fusion=False
        )
    return out


@torch.library.custom_op("fluxaudit::gguf_dequantize", mutates_args=())
def gguf_dequantize(raw: torch.Tensor, qtype: int, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
    """GGUF bytes ``raw`` of type ``qtype`` → a ``rows × cols`` tensor of ``dtype``."""
    return dequantize(raw, qtype, rows, cols, dtype)


@gguf_dequantize.register_fake
def _(raw: torch.Tensor, qtype: int, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
    return raw.new_empty((rows, cols), dtype=dtype)
