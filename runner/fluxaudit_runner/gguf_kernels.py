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

``fluxaudit::gguf_gemv`` is the other form: one input row times the GGUF weight, dequantized inside
the product (same values, rounded to bf16 as the exact path stores them; only the order of the fp32
sums differs from cuBLAS's).  With one row the product is all weight reads, so writing the bf16 weight
and reading it back is the whole cost it removes (FLUX's modulation linears: a quarter of its weights).
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


def gemv_kernel(kind: GGMLQuantizationType) -> object:
    """The autotuned Triton kernel that multiplies a row by weights of ``kind``."""
    from . import gguf_triton

    return gguf_triton.q5_k_gemv if kind == GGMLQuantizationType.Q5_K else gguf_triton.q32_gemv


def gemv(inputs: torch.Tensor, raw: torch.Tensor, qtype: int, rows: int, cols: int, bias: torch.Tensor | None,
         dtype: torch.dtype, launch: tuple[int, int] | None = None) -> torch.Tensor:  # fmt: skip
    """``inputs`` (one row of ``cols`` values, any leading shape) times the ``rows × cols`` GGUF weight,
    plus ``bias``, in ``dtype``; ``launch`` (rows and warps per program) pins one shape, as in ``dequantize``."""
    import triton

    from . import gguf_triton

    kind = GGMLQuantizationType(qtype)
    if inputs.numel() != cols:
        raise ValueError(f"gguf_gemv takes one row of {cols} values, not a {tuple(inputs.shape)} tensor")
    flat = _blocks(raw, kind, rows, cols)
    out = torch.empty((*inputs.shape[:-1], rows), dtype=dtype, device=raw.device)
    bf16 = dtype == torch.bfloat16
    tuned = gemv_kernel(kind)
    row_blocks = cols // GGML_QUANT_SIZES[kind][0]
    args = (flat, flat.view(torch.float16), inputs.contiguous().reshape(cols),
            bias if bias is not None else out, out.view(torch.int16) if bf16 else out, rows, row_blocks)  # fmt: skip
    meta = {"HAS_BIAS": bias is not None, "BF16_BITS": bf16, "Q4_0": kind == GGMLQuantizationType.Q4_0,
            "CHUNK": gguf_triton.GEMV_CHUNK}  # fmt: skip
    if launch is None and os.environ.get("TRITON_INTERPRET") == "1":
        first = tuned.configs[0]
        launch = (first.kwargs["ROWS"], first.num_warps)
    if launch is None:
        grid = lambda meta: (triton.cdiv(rows, meta["ROWS"]),)  # noqa: E731
        tuned[grid](*args, **meta, enable_fp_fusion=False)
    else:
        per_program, warps = launch
        tuned.fn[(triton.cdiv(rows, per_program),)](
            *args, **meta, ROWS=per_program, num_warps=warps, enable_fp_fusion=False
        )
    return out


@torch.library.custom_op("fluxaudit::gguf_gemv", mutates_args=())
def gguf_gemv(inputs: torch.Tensor, raw: torch.Tensor, qtype: int, rows: int, cols: int,
              bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:  # fmt: skip
    """One row ``inputs`` times the GGUF weight ``raw`` (``rows × cols``, type ``qtype``), plus ``bias``."""
    return gemv(inputs, raw, qtype, rows, cols, bias, dtype)


@gguf_gemv.register_fake
def _(inputs: torch.Tensor, raw: torch.Tensor, qtype: int, rows: int, cols: int, bias: torch.Tensor | None,
      dtype: torch.dtype) -> torch.Tensor:  # fmt: skip
    return inputs.new_empty((*inputs.shape[:-1], rows), dtype=dtype)
