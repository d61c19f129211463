"""The Triton kernels behind ``fluxaudit::gguf_dequantize`` (see ``gguf_kernels``).

Kept apart because importing this module needs Triton; ``gguf_kernels`` imports it only when
a kernel is about to run.  Each kernel handles ``BLOCKS`` GGUF blocks per program, shaped by
the block's structure so scales are decoded once per (block, sub-block), and reproduces
diffusers' fp16 arithmetic step by step.
"""

# No `from __future__ import annotations`: Triton reads the `tl.constexpr` annotations as objects.
from collections.abc import Callable

import triton
import triton.language as tl
import triton.testing


def _configs(*launches: tuple[int, int]) -> list[triton.Config]:
    return [triton.Config({"BLOCKS": blocks}, num_warps=warps) for blocks, warps in launches]


#: launch shapes each kernel's autotuner tries, per weight size (the best differs by GPU:
#: an L4 has 58 SMs and 300 GB/s, an H200 132 SMs and 4.8 TB/s).
CONFIGS = {
    "q8_0": _configs((32, 4), (64, 4), (64, 8), (128, 8)),
    "q4_0": _configs((32, 4), (64, 4), (64, 8), (128, 8)),
    "q5_k": _configs((16, 4), (32, 4), (64, 4), (64, 8)),
}


def quick_bench(kernel_call: Callable[[], None], quantiles: tuple[float, ...]) -> list[float]:
    """Each launch shape timed for 20 ms after 5 ms of warm-up instead of Triton's 100 + 25.

    The autotuner times every shape once per weight size and process, inside the group's warm-up: FLUX's
    blocks hold five weight sizes, four shapes each, 2.5 s at Triton's default to choose among kernels
    that each take well under a millisecond (20 ms is still a hundred launches or more)."""
    return triton.testing.do_bench(kernel_call, warmup=5, rep=20, quantiles=quantiles)


#: the choice is also kept on disk, in Triton's cache (the compile cache's volume in Kubernetes),
#: so a later process on the same GPU skips the timing.
AUTOTUNE = {"key": ["n_blocks"], "do_bench": quick_bench, "cache_results": True}


@triton.jit
def bf16_bits(value):
    """``value``'s bf16 bits (in the low 16 of a uint32), rounded to nearest even by hand, so the
    result is the same on a GPU and under the interpreter (which truncates)."""
    bits = value.to(tl.float32).to(tl.uint32, bitcast=True)
    return (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16


@triton.jit
def store(out, offsets, value, live, BF16_BITS: tl.constexpr):
    """Store fp16 ``value``; into bf16 as its bits (``bf16_bits``)."""
    if BF16_BITS:
        tl.store(out + offsets, bf16_bits(value).to(tl.uint16).to(tl.int16, bitcast=True), mask=live)
    else:
        tl.store(out + offsets, value.to(out.dtype.element_ty), mask=live)


# -- one type's values: fp16, diffusers' arithmetic; b (block), and the in-block indices broadcast --------


@triton.jit
def q8_0_values(raw, half, b, j, live):
    # block: d fp16 | 32 × int8  (34 bytes = 17 halves)
    d = tl.load(half + b * 17, mask=live, other=0.0)
    q = tl.load(raw + b * 34 + 2 + j, mask=live, other=0).to(tl.int8, bitcast=True)
    return (d * q.to(tl.float16)).to(tl.float16)


@triton.jit
def q4_0_values(raw, half, b, h, j, live):
    # block: d fp16 | 16 bytes; value h·16 + j is byte j's low (h = 0) or high (h = 1) nibble
    d = tl.load(half + b * 9, mask=live, other=0.0)
    byte = tl.load(raw + b * 18 + 2 + j, mask=live, other=0)
    q = ((byte >> (h * 4).to(tl.uint8)) & 0x0F).to(tl.int8) - 8
    return (d * q.to(tl.float16)).to(tl.float16)


@triton.jit
def q5_k_values(raw, half, b, s, lane, live):
    # block: d fp16 | dmin fp16 | 12 bytes of 6-bit scales and mins | qh 32 | qs 128  (176 bytes);
    # s: sub-block of 32 values, lane: value within it
    base = raw + b * 176
    d = tl.load(half + b * 88, mask=live, other=0.0)
    dmin = tl.load(half + b * 88 + 1, mask=live, other=0.0)
    low4 = s < 4
    k = s % 4
    a = tl.load(base + 4 + k, mask=live, other=0)  # scales[0:4]
    m = tl.load(base + 8 + k, mask=live, other=0)  # scales[4:8]
    md = tl.load(base + 12 + k, mask=live, other=0)  # scales[8:12]
    sc = tl.where(low4, a & 0x3F, (md & 0x0F) | ((a >> 2) & 0x30))
    mn = tl.where(low4, m & 0x3F, (md >> 4) | ((m >> 2) & 0x30))
    # diffusers rounds each product to fp16: d·sc and dmin·m, then d·q and the difference
    scale = (d * sc.to(tl.float16)).to(tl.float16)
    offset = (dmin * mn.to(tl.float16)).to(tl.float16)
    qs = tl.load(base + 48 + (s // 2) * 32 + lane, mask=live, other=0)
    qh = tl.load(base + 16 + lane, mask=live, other=0)
    low = (qs >> ((s % 2) * 4).to(tl.uint8)) & 0x0F
    high = (qh >> s.to(tl.uint8)) & 0x01
    q = (low | (high << 4)).to(tl.float16)
    return ((scale * q).to(tl.float16) - offset).to(tl.float16)


@triton.autotune(configs=CONFIGS["q8_0"], **AUTOTUNE)
@triton.jit
def q8_0(raw, half, out, n_blocks, BLOCKS: tl.constexpr, BF16_BITS: tl.constexpr):
    b = tl.program_id(0) * BLOCKS + tl.arange(0, BLOCKS)[:, None]
    j = tl.arange(0, 32)[None, :]
    live = b < n_blocks
    store(out, b * 32 + j, q8_0_values(raw, half, b, j, live), live, BF16_BITS)


@triton.autotune(configs=CONFIGS["q4_0"], **AUTOTUNE)
@triton.jit
def q4_0(raw, half, out, n_blocks, BLOCKS: tl.constexpr, BF16_BITS: tl.constexpr):
    b = tl.program_id(0) * BLOCKS + tl.arange(0, BLOCKS)[:, None, None]
    h = tl.arange(0, 2)[None, :, None]
    j = tl.arange(0, 16)[None, None, :]
    live = b < n_blocks
    store(out, b * 32 + h * 16 + j, q4_0_values(raw, half, b, h, j, live), live, BF16_BITS)


@triton.autotune(configs=CONFIGS["q5_k"], **AUTOTUNE)
@triton.jit
def q5_k(raw, half, out, n_blocks, BLOCKS: tl.constexpr, BF16_BITS: tl.constexpr):
    b = tl.program_id(0) * BLOCKS + tl.arange(0, BLOCKS)[:, None, None]
    s = tl.arange(0, 8)[None, :, None]  # sub-block of 32 values
    lane = tl.arange(0, 32)[None, None, :]
    live = b < n_blocks
    store(out, b * 256 + s * 32 + lane, q5_k_values(raw, half, b, s, lane, live), live, BF16_BITS)
