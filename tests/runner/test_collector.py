"""Full collections deferred while compiling, never while timing; the collector's cost measured.
(A group through the runner with this in place: tests/runner/test_runner.py's compile-check test;
the trace itself: dynamo_explain, under tests/runner/test_compile_check.py.)"""

from __future__ import annotations

import gc

import pytest

from fluxaudit_runner import collector


def _churn() -> list[list[object]]:
    """Tracked objects that survive into gen 2, as a compile's FX nodes and guards do: more than
    half the heap already there, since CPython holds a full collection back until the survivors
    pending exceed a quarter of it (a test process late in a run holds millions)."""
    return [[] for _ in range(max(400_000, len(gc.get_objects()) // 2 + 100_000))]


def test_deferral_raises_the_gen2_threshold_and_restores_it_even_on_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), collector.full_collections_deferred():
        assert gc.get_threshold() == (before[0], before[1], collector.DEFERRED_GEN2_THRESHOLD)
        with collector.full_collections_deferred():  # reentrant: the inner block does not restore
            pass
        assert gc.get_threshold()[2] == collector.DEFERRED_GEN2_THRESHOLD
        raise RuntimeError("compile failed")
    assert gc.get_threshold() == before


def test_known_answer_deferred_heap_growth_makes_no_full_collection_and_the_plain_one_does() -> None:
    """The cost the deferral removes: a growing heap set off full collections without it."""
    gc.collect()
    with collector.collector_cost() as plain:
        kept = _churn()
    del kept
    gc.collect()
    with collector.collector_cost() as deferred, collector.full_collections_deferred():
        kept = _churn()
    del kept
    assert plain.collections[2] >= 1, plain
    assert deferred.collections[2] == 0 and deferred.collections[0] > 0, deferred  # gen 0 keeps collecting
    assert plain.fields()["gc_full"] == plain.collections[2] and plain.seconds > 0


def test_cost_counts_each_collection_by_generation_and_unhooks() -> None:
    hooks = len(gc.callbacks)
    with collector.collector_cost() as cost:
        gc.collect(0)
        gc.collect()
    assert cost.collections[0] >= 1 and cost.collections[2] >= 1
    assert len(gc.callbacks) == hooks


def test_dynamos_trace_runs_deferred() -> None:
    """dynamo_explain's trace (the compile check's, and every explain) defers full collections itself."""
    import torch

    from fluxaudit_runner.dynamo_explain import explain

    seen: list[int] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(gc.get_threshold()[2])  # read while dynamo traces (or runs) this line
        return x + 1

    before = gc.get_threshold()
    result = explain("transformer", fn, torch.ones(2))
    assert result.error is None and seen and all(t == collector.DEFERRED_GEN2_THRESHOLD for t in seen), seen
    assert gc.get_threshold() == before
