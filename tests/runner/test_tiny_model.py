"""The tiny model's GGUF files are real: gguf-py and diffusers read them, and the
dequantized weights sit close to the fp32 originals in the expected order."""

from __future__ import annotations

import hashlib
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGUFReader
from gguf.quants import dequantize

from fluxaudit_runner.tiny.builder import build_tiny_model
from fluxaudit_runner.tiny.gguf_export import KEEP_FLOAT_PREFIXES
from fluxaudit_runner.tiny.hubcache import repo_cache_dir
from fluxaudit_runner.tiny.q5k import quantize_q5_k
from tests.support.helpers import tiny_fp32_state_dict as fp32_state_dict_for_checks

QT = gguf.GGMLQuantizationType


def _gguf_path(model, label: str) -> Path:
    repo = repo_cache_dir(model.hub_cache, model.gguf_repo)
    commit = (repo / "refs" / "main").read_text()
    return repo / "snapshots" / commit / model.gguf_files[label]


def test_q5_k_round_trip_through_gguf_py() -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((16, 512)) * 0.05).astype(np.float32)
    blocks = quantize_q5_k(x)
    assert blocks.shape == (16, 2 * 176) and blocks.dtype == np.uint8
    y = dequantize(blocks, QT.Q5_K)
    # 5 bits over each 32-value sub-block's range, 6-bit scale rounding on top.
    sub = x.reshape(-1, 32)
    step = (sub.max(1) - np.minimum(sub.min(1), 0)) / 31
    assert np.all(np.abs(y - x).reshape(-1, 32).max(1) <= step * 1.6 + 1e-6)
    q4 = dequantize(gguf.quantize(x, QT.Q4_0), QT.Q4_0)
    q8 = dequantize(gguf.quantize(x, QT.Q8_0), QT.Q8_0)
    err = {k: float(np.abs(v - x).mean()) for k, v in {"q8": q8, "q5k": y, "q4": q4}.items()}
    assert err["q8"] < err["q5k"] < err["q4"], err


def test_q5_k_matches_diffusers_dequantizer() -> None:
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor

    x = (np.random.default_rng(2).standard_normal((4, 256)) * 0.1).astype(np.float32)
    blocks = quantize_q5_k(x)
    ours = dequantize(blocks, QT.Q5_K)
    theirs = dequantize_gguf_tensor(GGUFParameter(torch.from_numpy(blocks), quant_type=QT.Q5_K)).float().numpy()
    np.testing.assert_allclose(theirs, ours, atol=2e-3 * np.abs(x).max())


def test_q5_k_rejects_short_rows() -> None:
    with pytest.raises(ValueError, match="multiple of 256"):
        quantize_q5_k(np.zeros((2, 128), np.float32))


def test_gguf_files_are_close_to_fp32_and_ordered(tiny_model) -> None:
    originals = fp32_state_dict_for_checks(seed=0)
    errors: dict[str, float] = {}
    for label, qtype in (("Q8_0", QT.Q8_0), ("Q5_K_S", QT.Q5_K), ("Q4_0", QT.Q4_0)):
        reader = GGUFReader(_gguf_path(tiny_model, label))
        diffs, quantized = [], 0
        for t in reader.tensors:
            ref = originals[t.name].numpy()
            if t.name.startswith(KEEP_FLOAT_PREFIXES) or ref.ndim == 1:
                assert t.tensor_type == QT.F32, t.name  # embedders, final layer, 1-D stay float
                np.testing.assert_array_equal(np.asarray(t.data).reshape(ref.shape), ref)
                continue
            assert t.tensor_type == qtype, (t.name, t.tensor_type)
            quantized += 1
            deq = dequantize(np.asarray(t.data), t.tensor_type).reshape(ref.shape)
            diffs.append(np.abs(deq - ref).mean() / (np.abs(ref).mean() + 1e-12))
        assert quantized >= 30
        assert set(originals) == {t.name for t in reader.tensors}
        errors[label] = float(np.mean(diffs))
    assert errors["Q8_0"] < errors["Q5_K_S"] < errors["Q4_0"], errors
    assert errors["Q8_0"] < 0.01 and errors["Q4_0"] < 0.15, errors


def test_production_loader_reads_every_file_as_fill(tiny_model) -> None:
    from diffusers import FluxTransformer2DModel, GGUFQuantizationConfig
    from huggingface_hub import hf_hub_download

    for label, file in tiny_model.gguf_files.items():
        path = hf_hub_download(tiny_model.gguf_repo, file)  # HF_HUB_OFFLINE=1: from the hand-built cache
        model = FluxTransformer2DModel.from_single_file(
            path,
            quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32),
            config=tiny_model.base_repo,
            subfolder="transformer",
        )
        assert model.config.in_channels == 384, label
        assert type(model.transformer_blocks[0].attn.to_q).__name__ == "GGUFLinear"


def test_same_seed_same_bytes(tiny_model, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again", seed=0)

    def digests(root: Path) -> dict[str, str]:
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    assert digests(again.root) == digests(tiny_model.root)
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert _gguf_path(other, "Q8_0").read_bytes() != _gguf_path(tiny_model, "Q8_0").read_bytes()
