"""FLOPs per step from the transformer config, and the GPU peak table."""

from __future__ import annotations

import pytest

from fluxaudit.utilisation import FluxShape, bf16_peak_tflops, tokens, transformer_flops, utilisation

FULL = FluxShape(
    hidden=3072, double_blocks=19, single_blocks=38, in_channels=384, joint_attention_dim=4096, out_channels=64
)


def test_full_size_step_is_74_4_tflop() -> None:
    assert tokens(1024, 1024, 512) == (4096, 512)
    assert transformer_flops(FULL, 4096, 512) / 1e12 == pytest.approx(74.4, abs=0.1)


def test_flops_grow_with_tokens_and_blocks() -> None:
    base = transformer_flops(FULL, 1024, 512)
    assert transformer_flops(FULL, 4096, 512) > 3 * base  # linear terms ×~2.9, attention ×~7
    half = FluxShape(3072, 10, 19, 384, 4096, 64)
    assert transformer_flops(half, 4096, 512) == pytest.approx(transformer_flops(FULL, 4096, 512) / 2, rel=0.02)
    cfg = {"num_attention_heads": 24, "attention_head_dim": 128, "num_layers": 19, "num_single_layers": 38,
           "in_channels": 384, "joint_attention_dim": 4096, "out_channels": 64}  # fmt: skip
    assert FluxShape.from_config(cfg) == FULL


@pytest.mark.parametrize(
    ("name", "peak"),
    [("NVIDIA H200", 989.0), ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0),
     ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA L4", 121.0), ("NVIDIA L40S", 362.0), ("Tesla T4", None), (None, None)],
)  # fmt: skip
def test_gpu_peaks(name: str | None, peak: float | None) -> None:
    assert bf16_peak_tflops(name) == peak


def test_utilisation_of_a_measured_step() -> None:
    u = utilisation(74.4e12, 0.2386, "NVIDIA H200")
    assert u.achieved_tflops == pytest.approx(311.8, abs=0.1) and u.fraction_of_peak == pytest.approx(0.315, abs=0.001)
    cpu = utilisation(1e9, 0.5, None)
    assert cpu.achieved_tflops == pytest.approx(0.002) and cpu.peak_tflops is None and cpu.fraction_of_peak is None
