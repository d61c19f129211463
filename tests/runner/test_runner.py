"""The runner on the tiny model through the real diffusers pipeline (CPU)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from fluxaudit.inputs import InputError
from fluxaudit.layout import RunLayout
from fluxaudit.results import Partial, ResumeConflict
from fluxaudit.spec import parse_document
from fluxaudit.storage import LocalStorage
from fluxaudit_runner.group import run_group
from fluxaudit_runner.local import run_audit
from tests.support.helpers import audit_doc, run_cli

pytestmark = pytest.mark.slow


def _partial(storage: LocalStorage, audit, label: str) -> Partial:
    lay = RunLayout(audit.spec.storage.prefix, audit.run_id())
    return Partial.from_json(storage.read_json(lay.partial(label)))


def test_all_three_quants_and_report(tiny_model, tmp_path: Path) -> None:
    audit = parse_document(audit_doc(tiny_model))
    storage = LocalStorage(tmp_path)
    outcome = run_audit(audit, storage)
    assert outcome.ok, outcome.failures
    for q in audit.spec.quants:
        p = _partial(storage, audit, q.label)
        assert p.status == "complete" and p.cells_done == p.cells_total == 2
        gguf_file = Path(tiny_model.hub_cache).rglob(q.file).__next__()
        assert p.quant is not None and p.quant.sha256 == hashlib.sha256(gguf_file.read_bytes()).hexdigest()
        assert p.quant.bytes == gguf_file.stat().st_size
        assert p.environment is not None and p.environment.device == "cpu" and p.environment.torch
        assert p.load is not None and p.load.transformer_load_seconds > 0 and p.load.memory_after_load_bytes > 0
        assert p.cleanup is not None and p.cleanup.kind == "process_rss"
        for c in p.cells:
            assert c.cuda_seconds is None  # no CUDA here: never estimated
            assert len(c.step_seconds) == audit.spec.steps and all(s > 0 for s in c.step_seconds)
            assert c.wall_seconds >= sum(c.step_seconds)
            assert c.peak_memory_kind == "process_peak_rss" and c.peak_memory_bytes > 50_000_000
            png = storage.read_bytes(c.image)
            assert hashlib.sha256(png).hexdigest() == c.image_sha256
            assert Image.open(io.BytesIO(png)).size == (64, 64)
            assert storage.exists(c.latents)
    report = outcome.report
    assert report is not None and report.data.complete
    md = storage.read_bytes(report.paths["report"]).decode()
    assert "## Results matrix" in md and md.count("| Q5\\_K\\_S | ") >= 3
    doc = json.loads(storage.read_bytes(report.paths["json"]))
    assert doc["schemaVersion"] == 3 and len(doc["cells"]) == 6 and doc["complete"] is True
    util = doc["groups"][0]["utilisation"]
    assert util["flopsPerStep"] > 1e6 and util["achievedTflops"] > 0 and util["fractionOfPeak"] is None  # CPU
    assert "### Utilisation" in md and "CPU run: no GPU peak" in md
    # Quants differ in weights, so their images differ; the same quant twice does not.
    shas = {c["imageSha256"] for c in doc["cells"]}
    assert len(shas) == 6


def test_compile_check_reports_graphs_and_breaks_traced_with_full_collections_deferred(
    tiny_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Also: the warm-up and the compile check run with the collector's full collections deferred
    (collector.py), every timed cell with the default collector, and their records say what it cost."""
    import gc
    import logging

    from fluxaudit_runner import collector, compile_check, group

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
    audit = parse_document(
        audit_doc(
            tiny_model,
            quants=[{"label": "Q8_0", "file": tiny_model.gguf_files["Q8_0"]}],
            guidanceScales=[4],
            steps=1,
            compileCheck={"enabled": True},
        )
    )
    with caplog.at_level(logging.INFO, logger="fluxaudit"):
        p = run_group(audit, "Q8_0", LocalStorage(tmp_path))
    deferred = collector.DEFERRED_GEN2_THRESHOLD
    assert seen["warm_up"] == [deferred] and seen["compile_check"] == [deferred]
    assert seen["timed_cell"] and all(t == before[2] for t in seen["timed_cell"]), seen
    assert gc.get_threshold() == before
    done = {r.event: r.fields for r in caplog.records if getattr(r, "event", "").endswith(".done")}  # type: ignore[attr-defined]
    for name in ("warm_up.done", "compile_check.done"):
        assert done[name]["gc_seconds"] >= 0 and isinstance(done[name]["gc_full"], int), done[name]
    assert p.compile_check is not None
    by_target = {e.target: e for e in p.compile_check.explain}
    t = by_target["transformer"]
    assert t.error is None and t.graph_count == 1 and t.graph_break_count == 0 and t.op_count > 50
    assert t.traced_in == "pipeline"  # read from the pipeline's one trace, not traced twice
    pipe = by_target["pipeline"]
    assert pipe.error is None and pipe.graph_break_count >= 1 and pipe.graph_count == pipe.graph_break_count + 1
    assert pipe.break_reasons and len(pipe.break_reasons) <= 5 and all(r.count >= 1 for r in pipe.break_reasons)


def test_resume_after_sigkill(tiny_model, tmp_path: Path) -> None:
    spec_file = tmp_path / "a.yaml"
    doc = audit_doc(
        tiny_model,
        quants=[{"label": "Q4_0", "file": tiny_model.gguf_files["Q4_0"]}],
        guidanceScales=[1, 2, 3, 4, 5, 6, 7, 8],
        steps=4,
        maxSide=128,
    )
    spec_file.write_text(yaml.safe_dump(doc))
    audit = parse_document(doc)
    out = tmp_path / "out"
    partial_file = out / RunLayout("audit", audit.run_id()).partial("Q4_0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fluxaudit_cli", "run", str(spec_file), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if partial_file.exists():
            done = len(json.loads(partial_file.read_text())["cells"])
            if done >= 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = json.loads(partial_file.read_text())
    assert 2 <= len(before["cells"]) < 8 and before["status"] == "running"
    kept = {c["image"]: (c, (out / c["image"]).stat().st_mtime_ns) for c in before["cells"]}

    res = run_cli("run", str(spec_file), "--out", str(out))
    assert res.returncode == 0, res.stderr
    after = json.loads(partial_file.read_text())
    keys = [(c["guidance"], c["seed"], c["repeat"]) for c in after["cells"]]
    assert len(keys) == len(set(keys)) == 8 and after["status"] == "complete"
    assert after["attempts"] == 2
    for image, (cell, mtime) in kept.items():
        assert cell in after["cells"]  # recorded cells are untouched...
        assert (out / image).stat().st_mtime_ns == mtime  # ...and their images were not rewritten

    # A third run finds everything done and changes nothing.
    res = run_cli("run", str(spec_file), "--out", str(out))
    assert res.returncode == 0 and json.loads(partial_file.read_text()) == after


def test_changed_spec_does_not_resume_into_old_run(tiny_model, tmp_path: Path) -> None:
    one = [{"label": "Q4_0", "file": tiny_model.gguf_files["Q4_0"]}]
    storage = LocalStorage(tmp_path)
    run_group(parse_document(audit_doc(tiny_model, quants=one, guidanceScales=[2], runId="fixed")), "Q4_0", storage)
    changed = parse_document(audit_doc(tiny_model, quants=one, guidanceScales=[2], steps=3, runId="fixed"))
    with pytest.raises(ResumeConflict, match="new runId"):
        run_group(changed, "Q4_0", storage)


def test_wrong_gguf_fails_its_group_only(tiny_model, tmp_path: Path) -> None:
    quants = [
        {"label": "Q4_0", "file": tiny_model.gguf_files["Q4_0"], "sha256": "0" * 64},
        {"label": "Q8_0", "file": tiny_model.gguf_files["Q8_0"]},
    ]
    audit = parse_document(audit_doc(tiny_model, quants=quants, guidanceScales=[2]))
    storage = LocalStorage(tmp_path)
    outcome = run_audit(audit, storage)
    assert set(outcome.failures) == {"Q4_0"} and outcome.input_failures == {"Q4_0"}
    msg = outcome.failures["Q4_0"]
    assert tiny_model.gguf_files["Q4_0"] in msg and "0" * 64 in msg and "bytes" in msg
    assert _partial(storage, audit, "Q4_0").status == "failed"
    assert _partial(storage, audit, "Q8_0").status == "complete"
    md = storage.read_bytes(outcome.report.paths["report"]).decode()
    assert "INCOMPLETE" in md and "failed" in md


def test_missing_asset_names_the_path(tiny_model, tmp_path: Path) -> None:
    doc = audit_doc(tiny_model)
    doc["spec"]["input"]["image"] = (tmp_path / "nope.png").as_uri()
    with pytest.raises(InputError, match=r"input\.image: .*nope\.png does not exist"):
        run_audit(parse_document(doc), LocalStorage(tmp_path / "out"))
    session = audit_doc(tiny_model)
    session["spec"]["input"] = {"userId": "u1", "sessionId": "s9"}
    with pytest.raises(InputError, match=re.escape("users/u1/sessions/s9/original.jpg")):
        run_audit(parse_document(session), LocalStorage(tmp_path / "out"))


def test_session_assets_from_storage(tiny_model, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    jpg = io.BytesIO()
    Image.open(tiny_model.image).convert("RGB").save(jpg, format="JPEG", quality=95)
    storage.write_bytes("users/u1/sessions/D1A406F5/original.jpg", jpg.getvalue())
    storage.write_bytes("users/u1/sessions/D1A406F5/mask_auto.png", tiny_model.mask.read_bytes())
    doc = audit_doc(tiny_model, quants=[{"label": "Q8_0", "file": tiny_model.gguf_files["Q8_0"]}], guidanceScales=[2])
    doc["spec"]["input"] = {"userId": "u1", "sessionId": "D1A406F5"}
    p = run_group(parse_document(doc), "Q8_0", storage)
    assert p.status == "complete" and p.cells_done == 1


def test_cli_exit_codes(tiny_model, tmp_path: Path) -> None:
    spec = tmp_path / "a.yaml"
    doc = audit_doc(tiny_model)
    doc["spec"]["input"]["mask"] = (tmp_path / "missing-mask.png").as_uri()
    spec.write_text(yaml.safe_dump(doc))
    res = run_cli("run", str(spec), "--out", str(tmp_path / "o"))
    assert res.returncode == 3 and "missing-mask.png" in res.stderr
    res = run_cli("run", str(spec), "--out", str(tmp_path / "o"), "--quant", "Q9")
    assert res.returncode == 2 and "Q9" in res.stderr


def test_fp32_drift_orders_quants_against_unquantized_reference(tiny_model, tmp_path: Path) -> None:
    """docs/facts.md: bf16 compute hides quant differences; fp32 separates them."""
    audit = parse_document(
        audit_doc(tiny_model, dtype="float32", reference="bf16", quality={"minPsnrDb": 60}, guidanceScales=[2, 30])
    )
    assert audit.spec.group_labels() == ["Q4_0", "Q5_K_S", "Q8_0", "bf16"]
    outcome = run_audit(audit, LocalStorage(tmp_path))
    assert outcome.ok, outcome.failures
    q = outcome.report.json["quality"]
    assert q["reference"] == "bf16"
    by = {v["label"]: v for v in q["quants"]}
    assert by["Q8_0"]["medianPsnr"] > by["Q5_K_S"]["medianPsnr"] > by["Q4_0"]["medianPsnr"] > 40
    assert by["Q8_0"]["worstPsnr"] > by["Q5_K_S"]["worstPsnr"] > by["Q4_0"]["worstPsnr"]
    assert by["Q8_0"]["medianLatentMad"] < by["Q5_K_S"]["medianLatentMad"] < by["Q4_0"]["medianLatentMad"]
    assert by["bf16"]["worstPsnr"] == "inf"
    # Only Q8_0 clears a 60 dB bar in fp32 (≈65 dB vs ≈56 and ≈52): the rule picks it whatever the timings.
    assert outcome.report.json["summary"]["recommendedQuant"] == "Q8_0"
    md = outcome.report.markdown
    assert "**Recommended: Q8\\_0**" in md and "Q4\\_0 fails at: gs2/seed 0: PSNR" in md


def test_text_encoders_are_really_freed_after_encoding(tiny_model) -> None:
    """Embeddings must not carry autograd history: it would keep T5 alive (14.9 GB at full size)."""
    import gc
    import weakref

    import torch

    from fluxaudit_runner import loading

    audit = parse_document(audit_doc(tiny_model))
    pipe = loading.load_pipeline_without_transformer(audit.spec)
    t5 = weakref.ref(pipe.text_encoder_2)
    clip = weakref.ref(pipe.text_encoder)
    embeds, pooled = loading.encode_prompt(pipe, "empty ground", audit.spec, torch.device("cpu"))
    loading.free_text_encoders(pipe)
    gc.collect()
    assert not embeds.requires_grad and embeds.grad_fn is None
    assert t5() is None and clip() is None
    assert embeds.shape == (1, audit.spec.max_sequence_length, 32) and pooled.shape == (1, 32)


def test_measured_compile_speedup_has_every_figure(tiny_model) -> None:
    import torch
    from huggingface_hub import hf_hub_download

    from fluxaudit_runner.compile_check import measure_speedup
    from fluxaudit_runner.loading import load_transformer

    audit = parse_document(audit_doc(tiny_model, dtype="float32"))
    path = Path(hf_hub_download(tiny_model.gguf_repo, tiny_model.gguf_files["Q8_0"]))
    transformer = load_transformer(path, audit.spec)
    kwargs = {
        "hidden_states": torch.randn(1, 16, 384),
        "encoder_hidden_states": torch.randn(1, 8, 32),
        "pooled_projections": torch.randn(1, 32),
        "timestep": torch.tensor([0.5]),
        "img_ids": torch.zeros(16, 3),
        "txt_ids": torch.zeros(8, 3),
        "guidance": torch.tensor([30.0]),
        "return_dict": False,
    }
    # The "eager" dynamo backend keeps this fast on CPU; production uses inductor.
    out = measure_speedup(transformer, kwargs, torch.device("cpu"), iterations=2, backend="eager")
    assert out["eagerStepSeconds"] > 0 and out["compiledStepSeconds"] > 0 and out["compileSeconds"] >= 0
    assert out["speedup"] == pytest.approx(out["eagerStepSeconds"] / out["compiledStepSeconds"])
    assert out["outputPsnrDb"] > 60  # the eager backend runs the same ops: (near) identical output


def test_a_changed_gguf_file_does_not_resume_into_old_cells(tiny_model, tmp_path: Path) -> None:
    one = [{"label": "Q4_0", "file": tiny_model.gguf_files["Q4_0"]}]
    audit = parse_document(audit_doc(tiny_model, quants=one, guidanceScales=[2, 30], runId="sha"))
    storage = LocalStorage(tmp_path)
    run_group(audit, "Q4_0", storage)
    path = RunLayout("audit", "sha").partial("Q4_0")
    data = storage.read_json(path)
    data["quant"]["sha256"] = "f" * 64  # as if the cells had been computed from another file
    data["status"], data["cells"] = "running", data["cells"][:1]
    storage.write_json(path, data)
    with pytest.raises(ResumeConflict, match="changed since this run started"):
        run_group(audit, "Q4_0", storage)
