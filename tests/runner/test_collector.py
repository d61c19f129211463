"""Full collections deferred while compiling, never while timing; the collector's cost measured."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import pytest

from fluxaudit.spec import parse_document
from fluxaudit.storage import LocalStorage
from fluxaudit_runner import collector
from tests.support.helpers import audit_doc


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


@pytest.mark.slow
def test_group_compiles_and_traces_deferred_and_times_cells_with_the_default_collector(
    tiny_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from fluxaudit_runner import compile_check, group

    seen: dict[str, list[int]] = {}

    def spy(name: str, real):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            seen.setdefault(name, []).append(gc.get_threshold()[2])
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(group, "warm_up", spy("warm_up", group.warm_up))
    monkeypatch.setattr(group, "timed_cell", spy("timed_cell", group.timed_cell))
    monkeypatch.setattr(compile_check, "run_check", spy("compile_check", compile_check.run_check))
    before = gc.get_threshold()
    one = [{"label": "Q8_0", "file": tiny_model.gguf_files["Q8_0"]}]
    fast = {"compile": "regional", "compileBackend": "aot_eager"}
    doc = audit_doc(tiny_model, quants=one, runId="gc", fastPath=fast, compileCheck={"enabled": True}, warmup=0)
    with caplog.at_level(logging.INFO, logger="fluxaudit"):
        group.run_group(parse_document(doc), "Q8_0", LocalStorage(tmp_path))
    deferred = collector.DEFERRED_GEN2_THRESHOLD
    assert seen["warm_up"] == [deferred] and seen["compile_check"] == [deferred]
    assert seen["timed_cell"] and all(t == before[2] for t in seen["timed_cell"]), seen
    assert gc.get_threshold() == before
    done = {r.event: r.fields for r in caplog.records if getattr(r, "event", "").endswith(".done")}  # type: ignore[attr-defined]
    for name in ("warm_up.done", "compile_check.done"):
        assert done[name]["gc_seconds"] >= 0 and isinstance(done[name]["gc_full"], int), done[name]
