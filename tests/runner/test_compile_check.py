"""The compile check explains the pipeline small: that must find what a full-size trace finds.

Which block lists it may shorten (a block unlike the others keeps its list whole) is tested without a
trace, in test_repeated_blocks."""

from __future__ import annotations

from typing import Any

import torch

from fluxaudit.results import ExplainResult, TracedBlocks
from fluxaudit.spec import parse_document
from fluxaudit_runner import fastpath, loading
from fluxaudit_runner.dynamo_explain import explain, explain_pipeline
from fluxaudit_runner.inference import call_kwargs, infer
from fluxaudit_runner.pipeline_inputs import PreparedInputs, prepare_inputs, shrunk
from tests.support.helpers import audit_doc


def test_a_small_pipeline_trace_finds_the_same_graphs_breaks_and_reasons_as_the_full_size_one(tiny_model) -> None:
    audit = parse_document(audit_doc(tiny_model, quants=[{"label": "Q4_0", "file": tiny_model.gguf_files["Q4_0"]}],
                                     maxSide=128))  # fmt: skip
    spec = audit.spec
    device = torch.device("cpu")
    inputs = prepare_inputs(tiny_model.image.read_bytes(), tiny_model.mask.read_bytes(), spec.max_side)
    small = shrunk(inputs, 64)
    assert max(small.width, small.height) == 64 and max(inputs.width, inputs.height) == 128
    plan = fastpath.plan(spec.fast_path, "cpu", False)
    loaded = loading.load_group(spec, spec.quants[0], device, plan, (inputs.height, inputs.width), [inputs.prompt])

    def traced(at: PreparedInputs) -> ExplainResult:
        kwargs = call_kwargs(loaded, at, spec, spec.guidance_scales[0], spec.seeds[0])
        kwargs["num_inference_steps"] = 1
        return explain_pipeline(loaded.pipe, kwargs)[0]

    full, reduced = traced(inputs), traced(small)
    assert full.error is None and reduced.error is None
    assert full.graph_count > 1 and full.graph_break_count > 0  # the pipeline does break: the comparison has content
    assert (reduced.graph_count, reduced.graph_break_count, reduced.op_count) == (
        full.graph_count,
        full.graph_break_count,
        full.op_count,
    )
    assert reduced.break_reasons == full.break_reasons


def _loaded_tiny(tiny_model) -> tuple:
    audit = parse_document(audit_doc(tiny_model, quants=[{"label": "Q4_0", "file": tiny_model.gguf_files["Q4_0"]}],
                                     maxSide=64))  # fmt: skip
    spec = audit.spec
    inputs = prepare_inputs(tiny_model.image.read_bytes(), tiny_model.mask.read_bytes(), spec.max_side)
    plan = fastpath.plan(spec.fast_path, "cpu", False)
    loaded = loading.load_group(spec, spec.quants[0], torch.device("cpu"), plan, (inputs.height, inputs.width),
                                [inputs.prompt])  # fmt: skip
    kwargs = call_kwargs(loaded, inputs, spec, spec.guidance_scales[0], spec.seeds[0])
    kwargs["num_inference_steps"] = 1
    captured: dict = {}
    infer(loaded, inputs, spec, torch.device("cpu"), spec.guidance_scales[0], spec.seeds[0], capture=captured)
    return loaded, kwargs, captured


def _deepened(transformer: torch.nn.Module, double: int = 4, single: int = 4) -> None:
    """The tiny transformer at more depth: its second block of each list repeated (the same module), so
    each list has one block (the third) that a three-block trace leaves out."""
    for name, depth in (("transformer_blocks", double), ("single_transformer_blocks", single)):
        blocks = getattr(transformer, name)
        while len(blocks) < depth:
            blocks.append(blocks[1])


def _findings(e: ExplainResult) -> tuple:
    return e.graph_count, e.graph_break_count, e.op_count, e.break_reasons


def _alone(loaded, captured: dict) -> ExplainResult:
    with torch.inference_mode():
        return explain("transformer", loaded.transformer, **captured)


def test_one_trace_with_three_blocks_of_each_list_finds_what_explaining_everything_apart_finds(tiny_model) -> None:
    """The compile check pins ``_execution_device`` and runs the stateful-cache reset eagerly (they
    walk every submodule: most of a full-size trace's seconds), reads the transformer's findings from
    the transformer's frames of that one trace, and traces the first, second and last of each list of
    interchangeable blocks, counting the second one's ops for every block left out.  Graphs, breaks,
    ops and reasons must be those of explaining the pipeline plainly (every block traced) and the
    transformer alone (the last block has an op less than the middle ones: both ends must be traced)."""
    loaded, kwargs, captured = _loaded_tiny(tiny_model)
    _deepened(loaded.transformer)
    pipe_class = type(loaded.pipe)

    plain = explain("pipeline", loaded.pipe, **kwargs)
    pipeline, transformer = explain_pipeline(loaded.pipe, kwargs, loaded.transformer)
    assert plain.error is None and pipeline.error is None and plain.graph_break_count > 0
    kept = [TracedBlocks(name="transformer_blocks", traced=3, of=4),
            TracedBlocks(name="single_transformer_blocks", traced=3, of=4)]  # fmt: skip
    assert pipeline.traced_blocks == kept  # the shortened trace is the one that ran
    assert _findings(pipeline) == _findings(plain)
    assert type(loaded.pipe) is pipe_class  # the pipeline is handed back as it was
    assert all("_reset_stateful_cache" not in getattr(c, "__dict__", {}) for c in loaded.pipe.components.values())
    assert [len(loaded.transformer.transformer_blocks), len(loaded.transformer.single_transformer_blocks)] == [4, 4]

    alone = _alone(loaded, captured)
    assert transformer is not None and transformer.traced_in == "pipeline" and transformer.traced_blocks == kept
    assert alone.graph_count == 1 and alone.op_count > 100
    assert _findings(transformer) == _findings(alone)


def test_a_break_inside_every_block_has_every_block_traced(tiny_model, monkeypatch) -> None:
    """Blocks that match but break: scaled counts would be a guess, so the check traces them all, and the
    breaks are the transformer's in the pipeline's trace too."""
    loaded, kwargs, captured = _loaded_tiny(tiny_model)
    _deepened(loaded.transformer)
    block_class = type(loaded.transformer.transformer_blocks[0])
    forward = block_class.forward

    def with_a_break(self: torch.nn.Module, *args: Any, **kw: Any) -> Any:
        torch._dynamo.graph_break()
        return forward(self, *args, **kw)

    monkeypatch.setattr(block_class, "forward", with_a_break)
    alone = _alone(loaded, captured)
    pipeline, transformer = explain_pipeline(loaded.pipe, kwargs, loaded.transformer)
    assert alone.graph_break_count >= 4
    assert transformer is not None and _findings(transformer) == _findings(alone)
    assert transformer.traced_blocks is None and pipeline.traced_blocks is None
    assert pipeline.graph_count > transformer.graph_count


def test_a_pipeline_trace_that_fails_is_reported_and_leaves_the_transformer_to_a_trace_of_its_own(tiny_model) -> None:
    loaded, kwargs, _ = _loaded_tiny(tiny_model)
    pipe_class = type(loaded.pipe)
    pipeline, transformer = explain_pipeline(loaded.pipe, {**kwargs, "no_such_argument": 1}, loaded.transformer)
    assert pipeline.error is not None and "no_such_argument" in pipeline.error and pipeline.graph_count == 0
    assert transformer is None  # run_check then explains the transformer alone
    assert type(loaded.pipe) is pipe_class
