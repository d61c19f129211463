"""The path real files take: GGUF with the original BFL tensor names at full width.

Public FLUX GGUF files (city96, YarvixPA) name tensors as BFL's checkpoint does
(``double_blocks.0.img_attn.qkv.weight``), and diffusers converts them with a
converter that assumes width 3072.  The tiny model cannot use those names, so this
test builds a full-width file with one double and one single block and loads it
through the production loader.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import torch

from fluxaudit_runner.tiny.gguf_export import random_blocks

W, HEADS, HEAD_DIM, MLP = 3072, 24, 128, 4 * 3072
Q8 = gguf.GGMLQuantizationType.Q8_0


def _linear(name: str, out: int, inp: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (out, inp), f"{name}.bias": (out,)}


def bfl_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    shapes |= _linear("img_in", W, 384) | _linear("txt_in", W, 4096)
    for emb, inp in (("time_in", 256), ("vector_in", 768), ("guidance_in", 256)):
        shapes |= _linear(f"{emb}.in_layer", W, inp) | _linear(f"{emb}.out_layer", W, W)
    for side in ("img", "txt"):
        b = f"double_blocks.0.{side}"
        shapes |= _linear(f"{b}_mod.lin", 6 * W, W) | _linear(f"{b}_attn.qkv", 3 * W, W)
        shapes |= _linear(f"{b}_attn.proj", W, W) | _linear(f"{b}_mlp.0", MLP, W) | _linear(f"{b}_mlp.2", W, MLP)
        shapes[f"{b}_attn.norm.query_norm.scale"] = (HEAD_DIM,)
        shapes[f"{b}_attn.norm.key_norm.scale"] = (HEAD_DIM,)
    s = "single_blocks.0"
    shapes |= _linear(f"{s}.linear1", 3 * W + MLP, W) | _linear(f"{s}.linear2", W, W + MLP)
    shapes |= _linear(f"{s}.modulation.lin", 3 * W, W)
    shapes[f"{s}.norm.query_norm.scale"] = (HEAD_DIM,)
    shapes[f"{s}.norm.key_norm.scale"] = (HEAD_DIM,)
    shapes |= _linear("final_layer.linear", 64, W) | _linear("final_layer.adaLN_modulation.1", 2 * W, W)
    return shapes


def test_full_width_bfl_named_gguf_loads_as_fill(tmp_path: Path) -> None:
    from diffusers import FluxTransformer2DModel, GGUFQuantizationConfig

    rng = np.random.default_rng(0)
    path = tmp_path / "flux1-fill-dev-1block-Q8_0.gguf"
    writer = gguf.GGUFWriter(path=None, arch="flux")
    for name, shape in sorted(bfl_shapes().items()):
        blocks = name.startswith(("double_blocks", "single_blocks")) and len(shape) == 2
        if blocks:  # quantized like the public files; embedders, final layer and 1-D tensors stay float
            writer.add_tensor(name, random_blocks(shape[0], shape[1], Q8, rng), raw_dtype=Q8)
        else:
            writer.add_tensor(name, (rng.standard_normal(shape, dtype=np.float32) * 0.02))
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    config_dir = tmp_path / "base" / "transformer"
    config_dir.mkdir(parents=True)
    config = {
        "_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 384, "out_channels": 64,
        "num_layers": 1, "num_single_layers": 1, "attention_head_dim": HEAD_DIM, "num_attention_heads": HEADS,
        "joint_attention_dim": 4096, "pooled_projection_dim": 768, "guidance_embeds": True,
        "axes_dims_rope": [16, 56, 56],
    }  # fmt: skip
    (config_dir / "config.json").write_text(json.dumps(config))

    model = FluxTransformer2DModel.from_single_file(
        str(path),
        quantization_config=GGUFQuantizationConfig(compute_dtype=torch.bfloat16),
        config=str(tmp_path / "base"),
        subfolder="transformer",
        dtype=torch.bfloat16,
    )
    assert model.config.in_channels == 384  # what the runner asserts: a Fill checkpoint
    assert type(model.transformer_blocks[0].attn.to_q).__name__ == "GGUFLinear"
    assert type(model.single_transformer_blocks[0].proj_out).__name__ == "GGUFLinear"
    out = model(
        hidden_states=torch.randn(1, 4, 384, dtype=torch.bfloat16),
        encoder_hidden_states=torch.randn(1, 2, 4096, dtype=torch.bfloat16),
        pooled_projections=torch.randn(1, 768, dtype=torch.bfloat16),
        timestep=torch.tensor([0.5]),
        img_ids=torch.zeros(4, 3),
        txt_ids=torch.zeros(2, 3),
        guidance=torch.tensor([30.0]),
    ).sample
    assert out.shape == (1, 4, 64) and torch.isfinite(out.float()).all()
