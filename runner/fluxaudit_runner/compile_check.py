"""torch.compile viability: what dynamo sees in the pipeline and in the transformer.

Run after the timed matrix so compilation state cannot leak into the timings.
The whole pipeline call breaks many times (generator-driven randn, PIL, the
progress bar) and that is expected; the transformer is what gets compiled in
practice, so both are reported and the verdict reads the transformer's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch._dynamo

from fluxaudit.quality import psnr
from fluxaudit.results import CompileCheck
from fluxaudit.spec import FluxAuditSpec

from .dynamo_explain import explain, explain_pipeline
from .inference import call_kwargs, infer
from .loading import LoadedGroup
from .pipeline_inputs import PreparedInputs, shrunk

#: the pipeline is explained at this long side: dynamo traces the same graphs and breaks at any size
#: (tests/runner/test_compile_check.py), and a full-size trace took 74–81 s on an H200.
EXPLAIN_MAX_SIDE = 256


def measure_speedup(
    transformer: torch.nn.Module,
    kwargs: dict[str, Any],
    device: torch.device,
    iterations: int = 5,
    backend: str = "inductor",
    compiled_seconds: float | None = None,
) -> dict[str, Any]:
    """Eager vs compiled on the transformer forward the pipeline makes: medians of
    ``iterations`` forwards each, the compile time, and how far the compiled output drifts
    from eager (PSNR over the eager output's range; inf when bit-identical).

    With ``compiled_seconds`` the transformer's blocks were already compiled by the fast path
    (regional compilation, timed during the warm-up): it is measured as the audit ran it, and
    eager under ``torch.compiler.set_stance("force_eager")``.  Without, the whole transformer
    is compiled here and its first call's extra time is the compile time."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def series(fn: Callable[[], Any], n: int) -> tuple[list[float], np.ndarray]:
        """``n`` timed calls, and the last one's output for the drift (no extra forward to get it)."""
        seconds, out = [], None
        for _ in range(n):
            sync()
            start = time.perf_counter()
            with torch.no_grad():
                out = fn()
            sync()
            seconds.append(time.perf_counter() - start)
        out = out[0] if isinstance(out, tuple) else getattr(out, "sample", out)
        return seconds, out.detach().float().cpu().numpy()

    if compiled_seconds is not None:
        with torch.compiler.set_stance("force_eager"):
            eager, reference = series(lambda: transformer(**kwargs), iterations)
        series(lambda: transformer(**kwargs), 1)  # untimed: the first compiled call after the stance change
        steady, drift = series(lambda: transformer(**kwargs), iterations)
        mode, compile_s = "regional", compiled_seconds
    else:
        eager, reference = series(lambda: transformer(**kwargs), iterations)
        torch._dynamo.reset()
        compiled = torch.compile(transformer, backend=backend)
        try:
            (first,), _ = series(lambda: compiled(**kwargs), 1)
            steady, drift = series(lambda: compiled(**kwargs), iterations)
        finally:
            torch._dynamo.reset()
        mode, compile_s = "whole", max(first - statistics.median(steady), 0.0)
    eager_s = statistics.median(eager)
    compiled_s = statistics.median(steady)
    span = float(reference.max() - reference.min()) or 1.0
    return {
        "mode": mode,
        "backend": backend,
        "eagerStepSeconds": eager_s,
        "compiledStepSeconds": compiled_s,
        "compileSeconds": compile_s,
        "speedup": eager_s / compiled_s if compiled_s > 0 else None,
        "outputPsnrDb": psnr(drift, reference, data_range=span),  # inf (stored as null) when identical
        "outputMaxAbsDiff": float(np.abs(drift - reference).max()),
    }


def run_check(
    loaded: LoadedGroup,
    inputs: PreparedInputs,
    spec: FluxAuditSpec,
    device: torch.device,
    label: str,
    transformer_inputs: dict[str, Any],
    backend: str,
) -> CompileCheck:
    """Explain a small 1-step pipeline call, the transformer's frames read from the same trace (or, if
    it compiled none, the transformer forward at the audit's shapes); with ``measureSpeedup``, time them.

    The timing comes first: the blocks the warm-up compiled are still in dynamo's cache then, and the
    explain resets dynamo (timed after it, the compiled call reloaded every graph first)."""
    measure = spec.compile_check.measure_speedup
    if measure is None:  # by default whenever the blocks run compiled: both forms are at hand, it takes seconds
        measure = loaded.fast_path.compile == "regional"
    tkwargs = dict(transformer_inputs)

    def capture() -> None:
        if not tkwargs:
            infer(loaded, inputs, spec, device, spec.guidance_scales[0], spec.seeds[0], capture=tkwargs)

    speedup = None
    if measure:
        capture()
        speedup = measure_speedup(
            loaded.transformer,
            tkwargs,
            device,
            backend=backend,
            compiled_seconds=loaded.fast_path.compile_seconds,  # None unless the blocks run compiled
        )
    small = shrunk(inputs, EXPLAIN_MAX_SIDE)
    kwargs = call_kwargs(loaded, small, spec, spec.guidance_scales[0], spec.seeds[0])
    kwargs["num_inference_steps"] = 1
    pipeline, transformer = explain_pipeline(loaded.pipe, kwargs, loaded.transformer)
    at_size = {"width": small.width, "height": small.height}
    if transformer is None:  # the pipeline's trace compiled none of its frames: trace it alone
        capture()
        with torch.inference_mode():
            transformer = explain("transformer", loaded.transformer, **tkwargs)
    results = [pipeline.model_copy(update=at_size), transformer]
    return CompileCheck(quant=label, torch=torch.__version__, device=device.type, explain=results, speedup=speedup)
