"""Three blocks of each repeated kind stand for all of them in the compile check's trace.

Dynamo inlines every block call, so tracing FLUX's 19 double and 38 single blocks was three quarters
of the check (31 of 42 s at FLUX's depth on CPU, BENCHMARKS.md §8.11).  Blocks whose code, structure,
parameter kinds, processors and hooks all match trace alike, so while the trace runs each list of
matching blocks holds its first, second and last only, and every op traced under the second counts
once for each block between the first and the last.  That holds only when the blocks trace whole:
``dynamo_explain`` keeps the scaled counts when the transformer came out as one graph, and traces
every block otherwise.  A list whose blocks differ in any of those respects (a block patched alone,
mixed tensor types) is traced whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from fluxaudit.results import TracedBlocks

_PRIMITIVE = (bool, int, float, str, bytes, type(None), torch.dtype, torch.device)
_HANDLED = {"_parameters", "_buffers", "_modules"}


def _kind(value: Any) -> Any:
    """What an attribute contributes to how dynamo traces a block: the value where it is a plain value,
    the function's name where it is code, the type otherwise (hook handles' ids differ per block)."""
    if isinstance(value, _PRIMITIVE):
        return value
    if isinstance(value, tuple | list):
        return tuple(_kind(v) for v in value)
    if isinstance(value, dict):
        return tuple(_kind(v) for v in value.values())
    if callable(value) and hasattr(value, "__qualname__"):
        return getattr(value, "__module__", None), value.__qualname__
    return type(value).__module__, type(value).__qualname__


def _tensor_kind(name: str, t: torch.Tensor | None) -> Any:
    if t is None:
        return name, None
    return name, type(t).__qualname__, t.dtype, tuple(t.shape), str(getattr(t, "quant_type", ""))


def signature(block: torch.nn.Module) -> tuple:
    """Everything about ``block`` that decides dynamo's trace of it, with nothing that differs between
    two interchangeable blocks (their weights' values, their hook handles' ids)."""
    parts = []
    for path, module in block.named_modules():
        attrs = tuple(sorted((k, _kind(v)) for k, v in vars(module).items() if k not in _HANDLED))
        tensors = tuple(_tensor_kind(n, t) for n, t in [*module._parameters.items(), *module._buffers.items()])
        parts.append((path, type(module).__module__, type(module).__qualname__, attrs, tensors))
    return tuple(parts)


#: blocks kept per list: the first, one from the middle, and the last.  The ends can trace differently from
#: the middle (measured: the last single block has one op less, its unused text output left out of the
#: graph), so the middle one stands for the others.
KEPT = 3


def interchangeable(transformer: torch.nn.Module) -> dict[str, torch.nn.ModuleList]:
    """The model's lists of repeated blocks (diffusers names their classes in ``_repeated_blocks``) longer
    than ``KEPT`` whose blocks all match the first."""
    names = set(getattr(type(transformer), "_repeated_blocks", None) or ())
    lists = {}
    for name, child in transformer.named_children():
        if not isinstance(child, torch.nn.ModuleList) or len(child) <= KEPT:
            continue
        if type(child[0]).__name__ not in names:
            continue
        first = signature(child[0])
        if all(type(b) is type(child[0]) and signature(b) == first for b in child[1:]):
            lists[name] = child
    return lists


@contextmanager
def kept_blocks(transformer: torch.nn.Module | None) -> Iterator[dict[str, TracedBlocks]]:
    """While inside, each interchangeable list holds its first, second and last blocks only; yields, by
    list name, what was kept of how many (empty when there is nothing to shorten)."""
    lists = interchangeable(transformer) if transformer is not None else {}
    kept = {name: TracedBlocks(name=name, traced=KEPT, of=len(blocks)) for name, blocks in lists.items()}
    for name, blocks in lists.items():
        setattr(transformer, name, torch.nn.ModuleList([blocks[0], blocks[1], blocks[-1]]))
    try:
        yield kept
    finally:
        for name, blocks in lists.items():
            setattr(transformer, name, blocks)


def _weight(node: torch.fx.Node, patterns: dict[str, tuple[re.Pattern[str], TracedBlocks]]) -> int:
    """How many blocks this op stands for: the middle kept block's ops count for every middle block.
    Dynamo's module stack names the block by its path, the list's name and then its index."""
    for path, _ in (node.meta.get("nn_module_stack") or {}).values():
        for pattern, blocks in patterns.values():
            found = pattern.search(str(path))
            if found:
                return blocks.of - blocks.traced + 1 if int(found.group(1)) == 1 else 1
    return 1


def op_count(gm: torch.fx.GraphModule, kept: dict[str, TracedBlocks]) -> int:
    """The graph's call_function ops, each op of the middle kept block counted once per block it stands for."""
    patterns = {n: (re.compile(rf"\b{re.escape(n)}\W{{1,4}}(\d+)\b"), b) for n, b in kept.items()}
    return sum(_weight(node, patterns) if kept else 1 for node in gm.graph.nodes if node.op == "call_function")
