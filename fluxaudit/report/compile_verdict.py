"""Is torch.compile worth it: the compile check's traces and measured speed-up → a verdict and its reasons (pure)."""

from __future__ import annotations

from ..results import CompileCheck, ExplainResult

#: compile verdicts: at least this measured speed-up is a "go", at least 1.0 "marginal".
COMPILE_GO_SPEEDUP = 1.05

COMPILE_RULE = (
    "go when the transformer traces as one graph with no breaks and the measured speed-up (when measured) is "
    f"≥ {COMPILE_GO_SPEEDUP:.2f}×; marginal between 1.00× and {COMPILE_GO_SPEEDUP:.2f}×; no-go on any transformer "
    "graph break, trace error or slow-down"
)


def break_even_images(cc: CompileCheck, steps: int) -> float | None:
    """Images after which compiling has paid for itself: compile seconds ÷ seconds saved per image."""
    sp = cc.speedup
    if sp is None or sp.compile_seconds is None:
        return None
    saved = (sp.eager_step_seconds - sp.compiled_step_seconds) * steps
    return sp.compile_seconds / saved if saved > 0 else None


def how_traced(e: ExplainResult) -> str:
    """What the trace behind ``e`` covered, where it was not simply ``e.target`` traced alone."""
    parts = ["its frames in the pipeline's trace"] if e.traced_in == "pipeline" else []
    if e.traced_blocks:
        kept = " and ".join(f"{b.traced} of {b.of} {b.name}" for b in e.traced_blocks)
        parts.append(f"{kept} traced, the middle one's ops counted for each block left out")
    return "; ".join(parts)


def compile_decision(cc: CompileCheck | None, steps: int = 28) -> tuple[str, list[str]]:
    if cc is None:
        return "not run", ["compileCheck.enabled is false, or its group did not finish"]
    t = next((e for e in cc.explain if e.target == "transformer"), None)
    reasons: list[str] = []
    if t is None or t.error:
        return "no-go", [f"dynamo could not trace the transformer: {t.error if t else 'no trace'}"]
    how = how_traced(t)
    where = f" ({how})" if how else ""
    reasons.append(f"transformer: {t.graph_count} graph(s), {t.graph_break_count} break(s){where}")
    pipe = next((e for e in cc.explain if e.target == "pipeline"), None)
    if pipe is not None and not pipe.error:
        reasons.append(
            f"whole pipeline: {pipe.graph_count} graphs, {pipe.graph_break_count} breaks "
            "(expected: generator-driven randn, PIL, progress bar; compile the transformer, not the pipeline)"
        )
    if t.graph_break_count > 0:
        reasons += [f"break: {r.reason}" for r in t.break_reasons]
        return "no-go", reasons
    sp = cc.speedup
    if sp is None or sp.speedup is None:
        reasons.append(
            "speed-up not measured: nothing was compiled here (the fast path compiles on a CUDA GPU; "
            "compileCheck.measureSpeedup: true compiles the whole transformer to time it)"
        )
        return "go (traceable; speed-up unmeasured)", reasons
    reasons.append(
        f"measured {sp.speedup:.2f}× ({sp.eager_step_seconds * 1000:.1f} → {sp.compiled_step_seconds * 1000:.1f} ms "
        f"per forward) after {sp.compile_seconds or 0:.0f} s of compiling"
    )
    images = break_even_images(cc, steps)
    if images is not None:
        reasons.append(
            f"break-even after {images:.1f} images of {steps} steps (compile seconds ÷ seconds saved per image)"
        )
    if sp.speedup >= COMPILE_GO_SPEEDUP:
        return "go", reasons
    if sp.speedup >= 1.0:
        return "marginal", reasons
    return "no-go", reasons
