"""The compile check's trace cost at FLUX's depth, on CPU: where dynamo's seconds go without a GPU.

    python -m benchmarks.compile_check_depth --root /tmp/fluxaudit-deep --out benchmarks/results

Dynamo's cost is Python work per traced op and per visited module, not arithmetic, so the tiny
model widened to FLUX.1-Fill's 19 + 38 transformer blocks (narrow layers, real GGUF Q4_0 file)
traces like the full model does.  Times the pipeline explain as dynamo does it plainly and as the
compile check does it (module bookkeeping kept untraced; the transformer's findings read from its
frames of that trace), and the transformer explained alone, and checks that each pair finds the same
graphs, breaks, ops and reasons.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.records import append_jsonl


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/fluxaudit-deep"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args()
    os.environ["HF_HOME"] = str(args.root / "hf-home")  # before huggingface_hub is imported
    os.environ["HF_HUB_OFFLINE"] = "1"

    import torch

    from fluxaudit.spec import parse_document
    from fluxaudit_runner import fastpath, loading
    from fluxaudit_runner.dynamo_explain import explain, explain_pipeline
    from fluxaudit_runner.inference import call_kwargs, infer
    from fluxaudit_runner.pipeline_inputs import prepare_inputs
    from fluxaudit_runner.tiny import builder
    from tests.support.helpers import audit_doc

    # the builder reads its module-level architecture; FLUX's depth, the tiny model's widths
    builder.TINY = dataclasses.replace(builder.TINY, layers=19, single_layers=38)
    model = builder.build_tiny_model(args.root)
    audit = parse_document(audit_doc(model, quants=[{"label": "Q4_0", "file": model.gguf_files["Q4_0"]}], maxSide=64))
    spec = audit.spec
    cpu = torch.device("cpu")
    inputs = prepare_inputs(model.image.read_bytes(), model.mask.read_bytes(), spec.max_side)
    plan = fastpath.plan(spec.fast_path, "cpu", False)
    loaded = loading.load_group(spec, spec.quants[0], cpu, plan, (inputs.height, inputs.width), [inputs.prompt])
    kwargs = call_kwargs(loaded, inputs, spec, spec.guidance_scales[0], spec.seeds[0])
    kwargs["num_inference_steps"] = 1
    captured: dict = {}
    infer(loaded, inputs, spec, cpu, spec.guidance_scales[0], spec.seeds[0], capture=captured)

    def findings(e: Any) -> tuple:
        return e.graph_count, e.graph_break_count, e.op_count, e.break_reasons

    start = time.perf_counter()
    untraced, share = explain_pipeline(loaded.pipe, kwargs, loaded.transformer)
    plain = explain("pipeline", loaded.pipe, **kwargs)
    with torch.inference_mode():
        transformer = explain("transformer", loaded.transformer, **captured)
    same = findings(untraced) == findings(plain) and share is not None and findings(share) == findings(transformer)
    record = {
        "benchmark": "compile_check_depth",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "diffusers": __import__("diffusers").__version__,
        "blocks": [builder.TINY.layers, builder.TINY.single_layers],
        "before": {"pipeline": plain.to_json(), "transformer": transformer.to_json()},
        "after": {"pipeline": untraced.to_json(), "transformer": share.to_json() if share else None},
        "sameFindings": same,
        "seconds": time.perf_counter() - start,
    }
    print(
        f"before: pipeline {plain.seconds:.1f} s + transformer alone {transformer.seconds:.1f} s; "
        f"after: one pipeline trace {untraced.seconds:.1f} s ({untraced.graph_count} graphs, "
        f"{untraced.graph_break_count} breaks, {untraced.op_count} ops; transformer's share "
        f"{share.graph_count if share else '?'} graph, {share.op_count if share else '?'} ops); same findings: {same}",
        flush=True,
    )
    print(f"wrote {append_jsonl(args.out, 'compile_check_depth-cpu', record)}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
