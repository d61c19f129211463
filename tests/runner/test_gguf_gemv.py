"""Dequantization inside a one-row product (``fluxaudit::gguf_gemv``), run by Triton's interpreter on CPU:
the weight's values are the exact path's (rounded to bf16 as it stores them), so each output is the
bf16 rounding of the exact float64 product but where fp32 sums land on a rounding boundary.  Its speed
is a GPU question (benchmarks/dequant_matmul.py, the ``gemv`` forms); no timing here."""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # as tests/conftest.py sets it, for a run of this file alone

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor
from gguf import GGMLQuantizationType as QType

from fluxaudit_runner import fastpath, gguf_kernels
from fluxaudit_runner.tiny.gguf_export import random_blocks

#: row lengths with a partial last step of GEMV_CHUNK blocks (Q8_0, Q4_0), and one Q5_K block more than two.
COLS = {QType.Q8_0: 640, QType.Q4_0: 640, QType.Q5_K: 768}
ROWS = 37  # not a multiple of any launch's rows per program


def _raw(rows: int, cols: int, qtype: QType, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(random_blocks(rows, cols, qtype, np.random.default_rng(seed))).reshape(rows, -1)


def _bf16_ulps(got: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Distance in bf16 steps (same sign assumed away: both are roundings of one value)."""
    a = got.view(torch.int16).to(torch.int32)
    b = exact.view(torch.int16).to(torch.int32)
    return (a - b).abs()


@pytest.mark.parametrize("qtype", gguf_kernels.SUPPORTED, ids=lambda q: q.name)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_gemv_is_the_rounded_exact_product_for_every_launch(qtype: QType, with_bias: bool) -> None:
    cols = COLS[qtype]
    raw = _raw(ROWS, cols, qtype)
    weight = dequantize_gguf_tensor(GGUFParameter(raw, quant_type=qtype)).to(torch.bfloat16)  # the exact path's
    x = torch.randn(1, 1, cols, generator=torch.Generator().manual_seed(1)).bfloat16()
    bias = torch.linspace(-1, 1, ROWS).bfloat16() if with_bias else None
    exact = x.double() @ weight.double().T + (bias.double() if bias is not None else 0)
    rounded = exact.float().bfloat16()
    configs = gguf_kernels.gemv_kernel(qtype).configs  # type: ignore[attr-defined]
    for config in configs if with_bias else configs[:1]:  # every launch once; the bias switch on one
        launch = (config.kwargs["ROWS"], config.num_warps)
        got = gguf_kernels.gemv(x, raw, int(qtype), ROWS, cols, bias, torch.bfloat16, launch=launch)
        assert got.shape == (1, 1, ROWS) and got.dtype == torch.bfloat16
        ulps = _bf16_ulps(got, rounded)
        assert int(ulps.max()) <= 1, (launch, ulps)
        assert float((ulps == 0).double().mean()) >= 0.9, (launch, ulps)
    # and it agrees with the exact path itself (dequantize, then the matmul) to a bf16 step
    assert int(_bf16_ulps(got, F.linear(x, weight, bias)).max()) <= 1


def test_known_answer_gemv_fails_on_fp16_weights_it_must_round_to_bf16() -> None:
    """What the ulps test separates: the same product over the fp16 weights (not the exact path's
    bf16) lands off the rounded exact product on many outputs."""
    qtype, cols = QType.Q8_0, COLS[QType.Q8_0]
    raw = _raw(256, cols, qtype, seed=3)
    fp16 = dequantize_gguf_tensor(GGUFParameter(raw, quant_type=qtype)).to(torch.float16)
    x = torch.randn(1, cols, generator=torch.Generator().manual_seed(4)).bfloat16()
    exact = (x.double() @ fp16.bfloat16().double().T).float().bfloat16()
    wrong = (x.double() @ fp16.double().T).float().bfloat16()
    assert float((_bf16_ulps(wrong, exact) == 0).double().mean()) < 0.9
    got = gguf_kernels.gemv(x, raw, int(qtype), 256, cols, None, torch.bfloat16)
    assert float((_bf16_ulps(got, exact) == 0).double().mean()) >= 0.9


def test_gemv_refuses_a_matrix_and_bytes_of_the_wrong_size() -> None:
    raw = _raw(4, 256, QType.Q8_0)
    with pytest.raises(ValueError, match=r"one row of 256 values, not a \(2, 256\) tensor"):
        gguf_kernels.gemv(torch.zeros(2, 256).bfloat16(), raw, int(QType.Q8_0), 4, 256, None, torch.bfloat16)
    with pytest.raises(ValueError, match=r"Q8_0: .* do not hold a 5×256 weight"):
        gguf_kernels.gemv(torch.zeros(1, 256).bfloat16(), raw, int(QType.Q8_0), 5, 256, None, torch.bfloat16)


def test_fused_linear_takes_rows_through_gemv_and_matrices_through_the_kernels_compiled_fullgraph() -> None:
    qtype, cols, rows = QType.Q4_0, 512, 64
    raw = _raw(rows, cols, qtype, seed=5)
    bias = torch.linspace(-2, 2, rows)
    kernel = fastpath.KernelGGUFLinear(raw, qtype, rows, cols, bias, torch.bfloat16)
    fused = fastpath.FusedGGUFLinear(raw, qtype, rows, cols, bias, torch.bfloat16)
    g = torch.Generator().manual_seed(6)
    row, matrix = torch.randn(1, cols, generator=g).bfloat16(), torch.randn(3, cols, generator=g).bfloat16()
    assert torch.equal(fused(matrix), kernel(matrix))  # the same dequantize-then-matmul path
    assert int(_bf16_ulps(fused(row), kernel(row)).max()) <= 1
    compiled = torch.compile(fused, fullgraph=True, backend="aot_eager")  # one opaque op per call
    assert torch.equal(compiled(row), fused(row)) and torch.equal(compiled(matrix), fused(matrix))
