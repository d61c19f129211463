"""What dynamo sees when it traces a call: graphs, breaks, ops and why.

``torch._dynamo.explain`` does this for a whole call.  The compile check also needs the same facts
for the transformer alone, and tracing the transformer a second time cost as much as everything
else in the check, so one trace of the pipeline is split: a graph belongs to the transformer when
the frame dynamo compiled it from, or an eager caller of that frame, is a method of the transformer
or of one of its submodules.  tests/runner/test_compile_check.py holds the split to the
transformer's own explain, with and without a break inside it.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch._dynamo
from torch._dynamo.symbolic_convert import InstructionTranslator

from fluxaudit.results import BreakReason, ExplainResult, TracedBlocks

from .collector import full_collections_deferred
from .repeated_blocks import kept_blocks, op_count

MAX_REASONS = 5


@dataclass
class _Graphs:
    count: int = 0
    ops: int = 0
    reasons: list[Any] = field(default_factory=list)

    def add(self, gm: torch.fx.GraphModule, kept: dict[str, TracedBlocks]) -> None:
        self.count += 1
        self.ops += op_count(gm, kept)
        reason = gm.compile_subgraph_reason  # type: ignore[union-attr]
        if reason.graph_break:
            self.reasons.append(reason)


def _where(reason: Any) -> str | None:
    stack = getattr(reason, "user_stack", None) or []
    if not stack:
        return None
    frame = stack[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"


def _result(target: str, graphs: _Graphs, seconds: float, **extra: Any) -> ExplainResult:
    grouped: Counter[tuple[str, str | None]] = Counter(
        (str(r.reason).strip().splitlines()[0][:300], _where(r)) for r in graphs.reasons
    )
    return ExplainResult(
        target=target,  # type: ignore[arg-type]
        graph_count=graphs.count,
        graph_break_count=max(graphs.count - 1, 0),  # dynamo's own count: graphs less one
        op_count=graphs.ops,
        break_reasons=[BreakReason(reason=r, where=w, count=n) for (r, w), n in grouped.most_common(MAX_REASONS)],
        seconds=seconds,
        **extra,
    )


def _failed(target: str, exc: Exception, seconds: float) -> ExplainResult:
    last = traceback.format_exception_only(exc)[-1].strip()
    return ExplainResult(target=target, graph_count=0, graph_break_count=0, op_count=0, break_reasons=[],  # type: ignore[arg-type]
                         seconds=seconds, error=last[:500])  # fmt: skip


def _compiling_for(owned: set[int]) -> bool:
    """Whether the frame dynamo is compiling, or a frame running it eagerly, is a method of an owned module."""
    tx = InstructionTranslator.current_tx()
    if tx is not None and id(tx.f_locals.get("self")) in owned:
        return True
    frame = sys._getframe(1)
    while frame is not None:
        if id(frame.f_locals.get("self")) in owned:
            return True
        frame = frame.f_back
    return False


def _trace(
    fn: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    owner: torch.nn.Module | None,
    kept: dict[str, TracedBlocks] | None = None,
) -> tuple[_Graphs, _Graphs]:
    everything, owners = _Graphs(), _Graphs()
    owned = {id(m) for m in owner.modules()} if owner is not None else set()
    kept = kept or {}

    def accumulate(gm: torch.fx.GraphModule, example_inputs: Any) -> Callable[..., Any]:
        everything.add(gm, kept)
        if owned and _compiling_for(owned):
            owners.add(gm, kept)
        return gm.forward

    torch._dynamo.reset()
    try:
        with full_collections_deferred():  # tracing grows the heap as compiling does (collector.py)
            torch._dynamo.optimize(accumulate, nopython=False)(fn)(*args, **kwargs)
    finally:
        torch._dynamo.reset()
    return everything, owners


def explain(target: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ExplainResult:
    """``torch._dynamo.explain`` of one call; a dynamo failure is itself a finding, reported, not raised."""
    start = time.perf_counter()
    try:
        everything, _ = _trace(fn, args, kwargs, None)
    except Exception as exc:
        return _failed(target, exc, time.perf_counter() - start)
    return _result(target, everything, time.perf_counter() - start)


def _pinned_class(obj: Any, **values: Any) -> type:
    """A subclass of ``obj``'s class with ``values`` as plain class attributes (properties shadowed)."""
    cls = type(obj)
    return type(cls.__name__, (cls,), {**values, "__module__": cls.__module__})


@contextmanager
def bookkeeping_untraced(pipe: Any) -> Iterator[None]:
    """Keep dynamo out of the pipeline's module bookkeeping while it explains the call.

    ``_execution_device``, each model's ``dtype`` and ``maybe_free_model_hooks`` walk every submodule
    in Python; traced, those walks made no graph yet took most of the explain (traced again after each
    restart), so the device and the dtypes are pinned as class attributes, read once eagerly, and each
    component's ``_reset_stateful_cache`` runs eagerly.  tests/runner/test_compile_check.py holds that
    graphs, breaks, ops and reasons are unchanged."""
    swapped: list[tuple[Any, type]] = [(pipe, type(pipe))]
    pipe.__class__ = _pinned_class(pipe, _execution_device=pipe._execution_device)
    components = [c for c in pipe.components.values() if isinstance(c, torch.nn.Module)]
    for component in components:
        if isinstance(getattr(type(component), "dtype", None), property):
            swapped.append((component, type(component)))
            component.__class__ = _pinned_class(component, dtype=component.dtype)
        if hasattr(component, "_reset_stateful_cache"):
            component.__dict__["_reset_stateful_cache"] = torch.compiler.disable(component._reset_stateful_cache)
    try:
        yield
    finally:
        for obj, cls in swapped:
            obj.__class__ = cls
        for component in components:
            component.__dict__.pop("_reset_stateful_cache", None)


def explain_pipeline(
    pipe: Any, kwargs: dict[str, Any], transformer: torch.nn.Module | None = None
) -> tuple[ExplainResult, ExplainResult | None]:
    """The pipeline call explained, and with ``transformer`` that module's share of the same trace
    (None when the trace failed or compiled no frame of it: then it needs a trace of its own).

    The transformer's interchangeable blocks are traced by three of each list (``repeated_blocks``) when
    that trace finds the transformer whole, one graph without a break; else every block is traced."""
    start = time.perf_counter()
    try:
        with bookkeeping_untraced(pipe), kept_blocks(transformer) as kept:
            everything, owners = _trace(pipe, (), kwargs, transformer, kept)
        if kept and (owners.count != 1 or owners.reasons):  # a block may break: scaling would guess
            kept = {}
            with bookkeeping_untraced(pipe):
                everything, owners = _trace(pipe, (), kwargs, transformer)
    except Exception as exc:
        return _failed("pipeline", exc, time.perf_counter() - start), None
    seconds = time.perf_counter() - start
    blocks = list(kept.values()) or None
    own = _result("transformer", owners, 0.0, traced_in="pipeline", traced_blocks=blocks) if owners.count else None
    return _result("pipeline", everything, seconds, traced_blocks=blocks), own
