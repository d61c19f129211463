"""The GGUF fast path on CPU: the Triton dequant kernels (run by Triton's interpreter) against
diffusers' dequantization, the custom op under torch.compile, the plan for each machine, and
the runner's fast path on the tiny model against its eager path.  No timing assertions: the
speed is proven on a GPU in benchmarks/ (BENCHMARKS.md §7)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.quantizers.gguf.utils import GGUFLinear, GGUFParameter, dequantize_gguf_tensor
from gguf import GGMLQuantizationType as QType

from fluxaudit.quality import psnr
from fluxaudit.spec import FastPathSpec, parse_document
from fluxaudit.storage import LocalStorage
from fluxaudit_runner import fastpath, gguf_kernels, gguf_triton
from fluxaudit_runner.tiny.gguf_export import random_blocks
from tests.support.helpers import audit_doc


def _raw(rows: int, cols: int, qtype: QType, seed: int = 0) -> torch.Tensor:
    blocks = random_blocks(rows, cols, qtype, np.random.default_rng(seed))
    return torch.from_numpy(blocks).reshape(rows, -1)


@pytest.mark.parametrize("qtype", gguf_kernels.SUPPORTED, ids=lambda q: q.name)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
def test_kernels_equal_diffusers_dequantization_bit_for_bit(qtype: QType, dtype: torch.dtype) -> None:
    rows, cols = 6, 1024
    raw = _raw(rows, cols, qtype)
    expected = dequantize_gguf_tensor(GGUFParameter(raw, quant_type=qtype)).to(dtype)
    got = torch.ops.fluxaudit.gguf_dequantize(raw, int(qtype), rows, cols, dtype)
    assert got.dtype == dtype and got.shape == (rows, cols)
    assert torch.equal(got, expected)
    # every launch shape the autotuner may pick computes the same thing, a partial last program included
    for config in gguf_triton.CONFIGS[qtype.name.lower()]:
        launch = (config.kwargs["BLOCKS"], config.num_warps)
        assert torch.equal(gguf_kernels.dequantize(raw, int(qtype), rows, cols, dtype, launch=launch), expected)


def test_kernel_refuses_bytes_of_the_wrong_size() -> None:
    raw = _raw(2, 256, QType.Q8_0)
    with pytest.raises(ValueError, match=r"Q8_0: .* do not hold a 3×256 weight"):
        gguf_kernels.dequantize(raw, int(QType.Q8_0), 3, 256, torch.bfloat16)


def _q6_k(rows: int, cols: int, seed: int) -> torch.Tensor:
    """Q6_K blocks (no kernel here): random quants and scales, a sane fp16 ``d`` in the last two bytes."""
    raw = np.random.default_rng(seed).integers(0, 256, (rows * cols // 256, 210), dtype=np.uint8)
    raw[:, 208:210] = np.frombuffer(np.float16(0.0005).tobytes(), np.uint8)
    return torch.from_numpy(raw).reshape(rows, -1)


def _gguf_linear(qtype: QType, out_features: int, in_features: int, seed: int) -> GGUFLinear:
    linear = GGUFLinear(in_features, out_features, bias=True, compute_dtype=torch.bfloat16)
    if qtype == QType.Q6_K:
        raw = _q6_k(out_features, in_features, seed)
    else:
        raw = _raw(out_features, in_features, qtype, seed)
    linear.weight = GGUFParameter(raw, quant_type=qtype)
    linear.bias = torch.nn.Parameter(torch.linspace(-1, 1, out_features), requires_grad=False)
    return linear


def _three_linears() -> torch.nn.Sequential:
    return torch.nn.Sequential(
        _gguf_linear(QType.Q5_K, 256, 256, 1),
        _gguf_linear(QType.Q6_K, 256, 256, 2),  # no kernel for Q6_K: diffusers' formulas
        _gguf_linear(QType.Q4_0, 32, 256, 3),
    )


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "plain"])
def test_swap_keeps_the_bytes_and_the_result_and_compiles_fullgraph(kernels: bool) -> None:
    model = _three_linears()
    x = torch.randn(4, 256, generator=torch.Generator().manual_seed(0)).bfloat16()
    expected = model(x)
    q5_bytes = model[0].weight.data_ptr()
    swap = fastpath.swap_gguf_linears(model, kernels=kernels)
    if kernels:
        assert swap.kernel == 2 and swap.plain == {"Q6_K": 1}
        assert swap.kernel_bytes == 256 * 256 // 256 * 176 + 32 * 256 // 32 * 18
        assert isinstance(model[0], fastpath.KernelGGUFLinear)
    else:
        assert swap.kernel == 0 and swap.plain == {"Q5_K": 1, "Q6_K": 1, "Q4_0": 1}
    assert type(model[1]) is fastpath.PlainGGUFLinear
    assert model[0].weight_bytes.data_ptr() == q5_bytes  # the loaded bytes themselves, not a copy
    assert "qtype=Q5_K" in repr(model[0])
    assert torch.equal(model(x), expected)
    # fullgraph: no tensor subclass left to trace, and the kernel op is one opaque call
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x), expected)


@pytest.mark.parametrize(
    ("spec", "device", "triton", "kernels", "compiled", "note"),
    [
        ({}, "cuda", True, True, True, None),
        ({}, "cpu", True, False, False, "no CUDA GPU"),
        ({}, "cuda", False, False, True, "Triton is not installed"),
        ({"dequantKernels": "off", "compile": "off"}, "cuda", True, False, False, None),
        ({"dequantKernels": "on", "compile": "regional"}, "cpu", True, True, True, None),
    ],
)
def test_plan_resolves_auto_per_machine_and_says_why(spec, device, triton, kernels, compiled, note) -> None:
    plan = fastpath.plan(FastPathSpec.model_validate(spec), device, triton)
    assert (plan.kernels, plan.compile) == (kernels, compiled)
    if note:
        assert any(note in n for n in plan.notes)


def test_plan_refuses_kernels_on_where_triton_cannot_run() -> None:
    with pytest.raises(fastpath.FastPathUnavailable, match=r"fastPath.dequantKernels is 'on'.*'auto' or 'off'"):
        fastpath.plan(FastPathSpec(dequant_kernels="on"), "cpu", triton=False)


@pytest.mark.parametrize(
    ("spec", "device", "starts"),
    [
        ({}, "cuda", True),
        ({}, "cpu", False),
        ({"compile": "off"}, "cuda", False),
        ({"compileBackend": "aot_eager"}, "cuda", False),
    ],
)
def test_compile_workers_start_early_only_for_inductor_on_a_gpu_and_see_the_cache(
    spec, device, starts, tmp_path: Path, monkeypatch
) -> None:
    """The workers read the cache directories from the environment they start with: set before the pool."""
    import torch._inductor.async_compile as async_compile

    seen: list[tuple[str | None, str | None]] = []
    monkeypatch.setattr(
        async_compile,
        "maybe_warm_pool",
        lambda: seen.append((os.environ.get("TORCHINDUCTOR_CACHE_DIR"), os.environ.get("TRITON_CACHE_DIR"))),
    )
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    plan = fastpath.plan(FastPathSpec.model_validate(spec), device, triton=True)
    assert fastpath.start_compile_workers(plan, device, str(tmp_path / "cache")) is starts
    assert seen == ([(str(tmp_path / "cache" / "inductor"), str(tmp_path / "cache" / "triton"))] if starts else [])


def _transformer(tiny_model, label: str) -> torch.nn.Module:
    from huggingface_hub import hf_hub_download

    from fluxaudit_runner.loading import load_transformer

    audit = parse_document(audit_doc(tiny_model))
    path = Path(hf_hub_download(tiny_model.gguf_repo, tiny_model.gguf_files[label]))
    return load_transformer(path, audit.spec)


def _forward_kwargs() -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "hidden_states": torch.randn(1, 16, 384, generator=g).bfloat16(),
        "encoder_hidden_states": torch.randn(1, 8, 32, generator=g).bfloat16(),
        "pooled_projections": torch.randn(1, 32, generator=g).bfloat16(),
        "timestep": torch.tensor([0.5]).bfloat16(),
        "img_ids": torch.zeros(16, 3),
        "txt_ids": torch.zeros(8, 3),
        "guidance": torch.tensor([30.0]).bfloat16(),
        "return_dict": False,
    }


@pytest.mark.slow
def test_regional_inductor_compile_matches_eager_within_tolerance(tiny_model) -> None:
    """The production compiler (Inductor, C++ on CPU) on the tiny transformer's repeated blocks."""
    transformer = _transformer(tiny_model, "Q8_0")
    kwargs = _forward_kwargs()
    with torch.inference_mode():
        eager = transformer(**kwargs)[0].float().numpy()
        assert fastpath.compile_regions(transformer, "inductor") == 4  # 2 double + 2 single blocks
        compiled = transformer(**kwargs)[0].float().numpy()
    torch.compiler.reset()
    span = float(eager.max() - eager.min())
    assert psnr(compiled, eager, data_range=span) > 40  # bf16 reassociation, not a different model
    assert np.abs(compiled - eager).max() < 0.05 * span


@pytest.mark.slow
def test_measured_compile_check_times_the_regional_path_against_force_eager(tiny_model) -> None:
    from fluxaudit_runner.compile_check import measure_speedup

    transformer = _transformer(tiny_model, "Q5_K_S")
    fastpath.swap_gguf_linears(transformer, kernels=False)
    fastpath.compile_regions(transformer, "aot_eager")
    kwargs = _forward_kwargs()
    with torch.inference_mode():
        transformer(**kwargs)  # the warm-up that compiles, as the runner's
        out = measure_speedup(transformer, kwargs, torch.device("cpu"), 2, "aot_eager", compiled_seconds=1.5)
    torch.compiler.reset()
    assert out["mode"] == "regional" and out["backend"] == "aot_eager" and out["compileSeconds"] == 1.5
    assert out["eagerStepSeconds"] > 0 and out["compiledStepSeconds"] > 0
    assert out["speedup"] == pytest.approx(out["eagerStepSeconds"] / out["compiledStepSeconds"])
    assert out["outputMaxAbsDiff"] == 0 or out["outputPsnrDb"] > 40


@pytest.mark.slow
def test_runner_fast_path_records_itself_and_matches_the_eager_run(tiny_model, tmp_path: Path) -> None:
    """A group through the real pipeline with regional compilation (aot_eager: the same graph
    capture as production without the CPU C++ build) against the same group run eagerly."""
    from fluxaudit.layout import RunLayout
    from fluxaudit.results import Partial
    from fluxaudit_runner.group import run_group

    one = [{"label": "Q4_0", "file": tiny_model.gguf_files["Q4_0"]}]
    runs = {}
    for name, fast in (("eager", {"compile": "off"}), ("fast", {"compile": "regional", "compileBackend": "aot_eager"})):
        audit = parse_document(audit_doc(tiny_model, quants=one, runId=name, fastPath=fast, warmup=0))
        storage = LocalStorage(tmp_path / name)
        os.environ["FLUXAUDIT_COMPILE_CACHE"] = str(tmp_path / "compile-cache")
        try:
            run_group(audit, "Q4_0", storage)
        finally:
            os.environ.pop("FLUXAUDIT_COMPILE_CACHE")
        runs[name] = (Partial.from_json(storage.read_json(RunLayout("audit", name).partial("Q4_0"))), storage)
    eager, fast = runs["eager"][0], runs["fast"][0]
    assert eager.fast_path is not None and eager.fast_path.compile == "off" and not eager.fast_path.dequant_kernels
    assert any("no CUDA GPU" in n for n in eager.fast_path.notes)
    record = fast.fast_path
    assert record is not None and record.compile == "regional" and record.compile_backend == "aot_eager"
    assert record.compile_seconds is not None and record.compile_seconds >= 0
    assert record.cache_dir == str(tmp_path / "compile-cache") and record.cache_files_before is not None
    assert fast.status == eager.status == "complete" and len(fast.cells) == len(eager.cells) == 2
    for a, b in zip(eager.cells, fast.cells, strict=True):
        la = np.load(io.BytesIO(runs["eager"][1].read_bytes(a.latents)))
        lb = np.load(io.BytesIO(runs["fast"][1].read_bytes(b.latents)))
        assert np.allclose(la, lb, atol=0.05 * float(np.abs(la).max())), (a.guidance, np.abs(la - lb).max())
    from fluxaudit.report import build_report

    doc = audit_doc(
        tiny_model, quants=one, runId="fast", fastPath={"compile": "regional", "compileBackend": "aot_eager"}, warmup=0
    )
    markdown = build_report(parse_document(doc), runs["fast"][1]).markdown
    section = markdown[markdown.find("### Fast path") :]
    row = next(
        (line for line in section.splitlines() if line.startswith("| Q4\\_0 | off | regional, aot\\_eager |")), None
    )
    assert row is not None, section[:800]
    assert f"| {record.compile_seconds:.1f} |" in row


@pytest.mark.slow
def test_kernels_on_without_triton_fails_the_group_with_the_field_to_change(
    tiny_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluxaudit.layout import RunLayout
    from fluxaudit.results import Partial
    from fluxaudit_runner import group
    from fluxaudit_runner.errors import GroupInputError

    one = [{"label": "Q8_0", "file": tiny_model.gguf_files["Q8_0"]}]
    audit = parse_document(audit_doc(tiny_model, quants=one, runId="nok", fastPath={"dequantKernels": "on"}))
    storage = LocalStorage(tmp_path)
    monkeypatch.setattr(gguf_kernels, "triton_usable", lambda: False)  # a machine without Triton
    with pytest.raises(GroupInputError, match=r"fastPath\.dequantKernels"):
        group.run_group(audit, "Q8_0", storage)
    failed = Partial.from_json(storage.read_json(RunLayout("audit", "nok").partial("Q8_0")))
    assert failed.status == "failed" and "fastPath.dequantKernels" in (failed.error or "")


@pytest.mark.slow
def test_a_compiler_failure_costs_the_speedup_not_the_group(
    tiny_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend that crashes while compiling (as Inductor does on its bugs): the group must
    run eager and say why, not fail."""
    from fluxaudit.layout import RunLayout
    from fluxaudit.results import Partial
    from fluxaudit_runner.group import run_group

    def crashing_backend(graph: torch.fx.GraphModule, example_inputs: list) -> None:
        raise RuntimeError("backend crashed while compiling")

    real = fastpath.compile_regions
    monkeypatch.setattr(fastpath, "compile_regions", lambda model, backend: real(model, crashing_backend))
    one = [{"label": "Q8_0", "file": tiny_model.gguf_files["Q8_0"]}]
    fast = {"compile": "regional", "compileBackend": "aot_eager"}
    audit = parse_document(audit_doc(tiny_model, quants=one, runId="fallback", fastPath=fast))
    storage = LocalStorage(tmp_path)
    run_group(audit, "Q8_0", storage)
    partial = Partial.from_json(storage.read_json(RunLayout("audit", "fallback").partial("Q8_0")))
    assert partial.status == "complete" and len(partial.cells) == 2
    record = partial.fast_path
    assert record is not None and record.compile == "off" and record.compile_seconds is None
    failed = [n for n in record.notes if n.startswith("regional compile failed, ran eager:")]
    assert failed and "backend crashed while compiling" in failed[0]
