"""The full-size benchmark's building blocks, checked at tiny size on CPU."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import torch
from gguf import GGUFReader
from gguf.quants import dequantize

from fluxaudit_runner.tiny.gguf_export import QUANT_TYPES, random_blocks, write_random_transformer_gguf
from tests.support.helpers import tiny_fp32_state_dict as fp32_state_dict_for_checks


def test_random_blocks_decode_to_sane_weights() -> None:
    rng = np.random.default_rng(0)
    for qtype in (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q5_K):
        values = dequantize(random_blocks(16, 512, qtype, rng), qtype)
        assert values.shape == (16, 512) and np.isfinite(values).all()
        assert 0.003 < float(np.abs(values).mean()) < 0.05, qtype.name


def test_random_full_size_style_file_loads_through_the_production_path(tmp_path: Path, tiny_model) -> None:
    from diffusers import FluxTransformer2DModel, GGUFQuantizationConfig

    shapes = {k: tuple(v.shape) for k, v in fp32_state_dict_for_checks(seed=0).items()}
    for quant, qtype in QUANT_TYPES.items():
        path = tmp_path / f"{quant}.gguf"
        write_random_transformer_gguf(shapes, quant, path)
        types = {t.name: t.tensor_type for t in GGUFReader(path).tensors}
        assert types["transformer_blocks.0.attn.to_q.weight"] == qtype
        assert types["x_embedder.weight"] == gguf.GGMLQuantizationType.F32
        model = FluxTransformer2DModel.from_single_file(
            str(path),
            quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32),
            config=tiny_model.base_repo,
            subfolder="transformer",
        )
        out = model(
            hidden_states=torch.randn(1, 16, 384),
            encoder_hidden_states=torch.randn(1, 8, 32),
            pooled_projections=torch.randn(1, 32),
            timestep=torch.tensor([0.5]),
            img_ids=torch.zeros(16, 3),
            txt_ids=torch.zeros(8, 3),
            guidance=torch.tensor([30.0]),
        ).sample
        assert out.shape == (1, 16, 64) and torch.isfinite(out).all(), quant


def test_per_forward_harness_runs_every_cpu_mode_and_writes_its_result(tmp_path: Path, tiny_model) -> None:
    """The GPU harness's own code path on the tiny model: a smoke run, not a timing."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "benchmarks.regional_compile", "--arch", "tiny", "--variant", "Q4_0",
           "--modes", "eager,regional", "--backend", "aot_eager", "--size", "64", "--text-tokens", "16",
           "--repeats", "1", "--out", str(tmp_path / "out"), "--root", str(tmp_path / "root")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = (tmp_path / "out" / "regional_compile.jsonl").read_text().splitlines()
    result = json.loads(line)
    assert result["variant"] == "Q4_0" and result["backend"] == "aot_eager" and result["gpu"] is None
    modes = result["modes"]
    assert list(modes) == ["eager", "regional"]
    assert all(m["forwardMs"]["median"] > 0 for m in modes.values())
    assert modes["regional"]["kernels"] == {"kernelLinears": 0, "kernelBytes": 0, "keptLinears": {"Q4_0": 40}}
    # aot_eager replays the captured graph: the compiled mode computes what eager does
    assert modes["regional"]["maxAbsDiffVsFirstMode"] == 0.0 and modes["regional"]["compileSeconds"] > 0


def test_baseline_harness_runs_a_trees_audit_in_a_child_and_reads_its_timings(tmp_path: Path, tiny_model) -> None:
    """The before/after harness of benchmarks/baseline_audit.py, with this checkout as the "other" tree: the
    child imports that tree's packages, runs its audit into the folder given, and reports wall and denoising."""
    from benchmarks.baseline_audit import REPO, run_baseline
    from tests.support.helpers import audit_doc

    doc = audit_doc(tiny_model, quants=[{"label": "Q4_0", "file": tiny_model.gguf_files["Q4_0"]}], guidanceScales=[2])
    out = run_baseline(REPO, doc, tmp_path / "baseline", cap_gib=22.0, timeout=600)
    assert "error" not in out, out.get("stderrTail")
    assert out["groups"] == ["Q4_0"] and out["failures"] == {}
    assert 0 < out["denoiseSeconds"] < out["auditWallSeconds"]
    assert out["wallOverDenoise"] == out["auditWallSeconds"] / out["denoiseSeconds"]
    assert list((tmp_path / "baseline").rglob("partials/Q4_0.json"))
