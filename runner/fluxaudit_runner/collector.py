"""Python's garbage collector around compiling: full collections deferred, and what it cost.

Compiling creates on the order of a million objects the collector tracks (FX nodes, sympy
expressions, guards, dynamo's variable trackers).  With CPython's default thresholds every tenth
gen-1 collection is a full one, and each full collection walks the whole heap while it is still
growing: the same traversal paid over and over (pytorch/pytorch#193289 measured 4.2 s of one cold
compile in 16 full collections; this runner's own figures are in BENCHMARKS.md §8.13).  While a
compile or the compile check's trace runs, the gen-2 threshold is raised: gen 0 and 1 keep
collecting, refcounting still frees non-cyclic garbage at once, and the deferred full collection
comes soon after the threshold is restored, because its counter is already past it.

Never used around a timed cell: a service collects on its own schedule, and a timing should
include that as it does in production.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: gen-2 threshold while deferred: far above the gen-1 collections one compile makes (hundreds).
DEFERRED_GEN2_THRESHOLD = 1_000_000

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, ...] | None = None


@dataclass
class CollectorCost:
    """Collections run (per generation) and their seconds, over a ``collector_cost`` block."""

    seconds: float = 0.0
    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    _started: float = 0.0

    def fields(self) -> dict[str, Any]:
        """For a phase's closing record."""
        return {"gc_seconds": round(self.seconds, 3), "gc_full": self.collections[2]}


@contextmanager
def full_collections_deferred() -> Iterator[None]:
    """Raise the gen-2 threshold for the block; reentrant (the outermost block restores it)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(_saved[0], _saved[1], DEFERRED_GEN2_THRESHOLD)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None


@contextmanager
def collector_cost() -> Iterator[CollectorCost]:
    """Measure the collector over the block, through ``gc.callbacks`` (every collection, any thread)."""
    cost = CollectorCost()

    def hook(stage: str, info: dict[str, Any]) -> None:
        if stage == "start":
            cost._started = time.perf_counter()
        else:
            cost.seconds += time.perf_counter() - cost._started
            cost.collections[min(int(info.get("generation", 2)), 2)] += 1

    gc.callbacks.append(hook)
    try:
        yield cost
    finally:
        gc.callbacks.remove(hook)


@contextmanager
def compiling() -> Iterator[CollectorCost]:
    """Full collections deferred and the collector's cost measured: for a phase that compiles."""
    with collector_cost() as cost, full_collections_deferred():
        yield cost
