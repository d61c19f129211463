"""FLOPs of a FLUX transformer forward, and how close a measured step runs to the GPU's peak.

Counted from the transformer's own config and the step's token counts, multiply-adds
as 2 FLOPs: per token and block the linear layers cost 24·D² (double blocks: qkv 3D²,
out D², MLP 8D² for each stream; single blocks: linear1 7D², linear2 5D²), and
attention 4·N·D over the joint sequence of N tokens.  At FLUX.1-Fill's shapes
(D = 3072, 19 + 38 blocks) and 1024×1024 (4096 image + 512 text tokens) that is
≈ 74.4 TFLOP per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

#: Dense bf16 tensor-core peaks from NVIDIA's datasheets, TFLOP/s (sparsity not counted).
#: Matched against torch.cuda.get_device_name(); the first matching key wins.
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)


@dataclass(frozen=True)
class FluxShape:
    hidden: int
    double_blocks: int
    single_blocks: int
    in_channels: int
    joint_attention_dim: int
    out_channels: int

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> FluxShape:
        return cls(
            hidden=int(cfg["num_attention_heads"]) * int(cfg["attention_head_dim"]),
            double_blocks=int(cfg["num_layers"]),
            single_blocks=int(cfg["num_single_layers"]),
            in_channels=int(cfg["in_channels"]),
            joint_attention_dim=int(cfg["joint_attention_dim"]),
            out_channels=int(cfg.get("out_channels") or 64),
        )


def tokens(height: int, width: int, max_sequence_length: int) -> tuple[int, int]:
    """Image tokens (2×2 packed latents of an 8× VAE: one per 16×16 pixels) and text tokens."""
    return (height // 16) * (width // 16), max_sequence_length


def transformer_flops(shape: FluxShape, image_tokens: int, text_tokens: int) -> float:
    d, n = shape.hidden, image_tokens + text_tokens
    per_block = 24.0 * n * d * d + 4.0 * n * n * d
    modulation = 2.0 * d * (6 * d * 2 * shape.double_blocks + 3 * d * shape.single_blocks + 2 * d)
    embed = 2.0 * (image_tokens * shape.in_channels * d + text_tokens * shape.joint_attention_dim * d)
    out = 2.0 * image_tokens * d * shape.out_channels
    return per_block * (shape.double_blocks + shape.single_blocks) + modulation + embed + out


def bf16_peak_tflops(gpu_name: str | None) -> float | None:
    if not gpu_name:
        return None
    for key, peak in BF16_PEAK_TFLOPS:
        if key in gpu_name and not (key == "L4" and "L40" in gpu_name):
            return peak
    return None


class Utilisation(BaseModel):
    """How close a measured step ran to the GPU's datasheet peak (None where unknown)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)
    flops_per_step: float
    achieved_tflops: float | None
    peak_tflops: float | None
    fraction_of_peak: float | None


def utilisation(flops_per_step: float, step_seconds: float, gpu_name: str | None) -> Utilisation:
    achieved = flops_per_step / step_seconds / 1e12 if step_seconds > 0 else None
    peak = bf16_peak_tflops(gpu_name)
    return Utilisation(
        flops_per_step=flops_per_step,
        achieved_tflops=achieved,
        peak_tflops=peak,
        fraction_of_peak=achieved / peak if achieved is not None and peak else None,
    )
