"""The compile check explains the pipeline small: that must find what a full-size trace finds."""

from __future__ import annotations

import torch

from fluxaudit.results import ExplainResult
from fluxaudit.spec import parse_document
from fluxaudit_runner import fastpath, loading
from fluxaudit_runner.compile_check import explain
from fluxaudit_runner.inference import call_kwargs
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
        return explain("pipeline", loaded.pipe, **kwargs)

    full, reduced = traced(inputs), traced(small)
    assert full.error is None and reduced.error is None
    assert full.graph_count > 1 and full.graph_break_count > 0  # the pipeline does break: the comparison has content
    assert (reduced.graph_count, reduced.graph_break_count, reduced.op_count) == (
        full.graph_count,
        full.graph_break_count,
        full.op_count,
    )
    assert reduced.break_reasons == full.break_reasons
